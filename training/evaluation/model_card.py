"""A TRIPOD+AI-structured model card for one registered model version.

:func:`render_model_card` writes the same content twice: Markdown (readable as
plain text in the MLflow artifact view) and a self-contained HTML page (inline CSS,
plots embedded as base64 ``data:`` URIs, no external assets). Both are rendered
from one list of blocks, so the two can never disagree, and every piece of text
from outside this module (data source, config values, report strings) is escaped:
HTML-escaped in the page, tag openers and table pipes neutralised in the Markdown.

The section headings are fixed (:data:`SECTION_HEADINGS`) so cards of different
versions can be compared side by side; the predictor table is generated from
:func:`data_schema.model_features`, never listed by hand. Items follow Collins et
al., TRIPOD+AI, BMJ 2024;385:e078378 (clinical.md §7).
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from data_schema import SMALL_CELL, feature_description, field_specs, model_features
from training.evaluation.metrics import metric_view

TRIAL = "NCT05585671"
SECTION_HEADINGS: tuple[str, ...] = (
    "Intended use",
    "Model",
    "Data",
    "Predictors",
    "Missing data",
    "Performance",
    "Subgroups",
    "Uncertainty band",
    "Limitations",
    "TRIPOD+AI checklist",
)
"""Level-2 headings of every card, in order."""

NONE_TEXT = "—"

PLOT_CAPTIONS: dict[str, str] = {
    "roc": "ROC curve with AUROC (95 % DeLong CI); dots mark the 0.5 gate.",
    "calibration": (
        "Calibration: LOWESS curve with 95 % bootstrap band, deciles with Wilson "
        "95 % CIs, distribution of predicted risk underneath."
    ),
    "decision_curve": "Decision curve: net benefit against threshold probability.",
    "risk_histogram": "Distribution of predicted 2-year risk (log count axis).",
    "feature_importance": "Feature importance (mean |contribution| to the log-odds).",
}
"""Captions of the standard plots of :func:`.plots.save_all_plots`."""

# TRIPOD+AI items this card covers, with where. Items 7-27 were listed from the
# statement in clinical.md §7 without the full text at hand; the card says so.
TRIPOD_COVERED: tuple[tuple[str, str, str], ...] = (
    ("1", "Title: development/evaluation, population, outcome, model type", "Title"),
    ("3a", "Healthcare context and existing models", "Intended use; Limitations"),
    ("3b", "Target population, place in the pathway, intended users", "Intended use"),
    ("4", "Objectives", "Intended use"),
    ("5a", "Data source", "Data"),
    ("6b", "Eligibility", "Data"),
    ("8a", "Outcome definition and time horizon", "Data"),
    ("9a", "Choice of predictors", "Predictors"),
    ("9b", "Predictor definitions and units", "Predictors"),
    ("11", "Missing data handling", "Missing data"),
    ("12a", "Data use and splitting", "Data"),
    ("12c", "Model type, building, hyper-parameters", "Model"),
    ("12e", "Performance measures", "Performance"),
    ("12g", "Fairness analyses (sex, age band)", "Subgroups"),
    ("15", "Model output and risk threshold", "Intended use; Performance"),
    ("18f", "Code availability (git commit)", "Model"),
    ("21", "Numbers of participants and events", "Data; Subgroups"),
    ("22", "Full model specification", "the registered model artifact"),
    ("23a", "Performance with confidence intervals", "Performance"),
    ("23b", "Performance in subgroups", "Subgroups"),
    ("26", "Limitations, including synthetic data", "Limitations"),
    ("27a", "Handling of missing or poor-quality input", "Missing data"),
    ("27b", "User interaction and required expertise", "Intended use"),
)
TRIPOD_NOT_COVERED: tuple[str, ...] = (
    "2",
    "3c",
    "5b",
    "6a",
    "6c",
    "7",
    "8b",
    "8c",
    "9c",
    "10",
    "12b",
    "12d",
    "12f",
    "13",
    "14",
    "16",
    "17",
    "18a–e",
    "19",
    "20a–c",
    "24",
    "25",
    "27c",
)


@dataclass
class ModelCardContext:
    """Everything a model card shows, gathered by the training run.

    Attributes:
        model_name: registered model name.
        model_version: registered version, None before registration.
        run_id: MLflow run that produced the model.
        model_family: ``xgboost``, ``logistic`` or ``rifle_ln``.
        calibration_method: ``platt`` or ``isotonic``.
        config: the training config as JSON data (``TrainingConfig.model_dump``).
        config_hash: hash of the config.
        git_commit: commit of the code that trained the model.
        data_source: where the cohort came from (``synthetic://...`` or a path).
        data_digest: MLflow dataset digest of the cohort.
        n_development: patients in the development set.
        n_test: patients in the held-out test set.
        events_development: outcomes in the development set.
        events_test: outcomes in the test set.
        report: the test-set report from :func:`.report.build_report`.
        uncertainty_method: one sentence on the band's method, None without one.
        plots: plot name (file stem, e.g. ``roc``) to PNG path.
        created: date of the card.
        selected_hyperparameters: hyperparameters chosen by the search, if any.
    """

    model_name: str
    model_version: str | None
    run_id: str
    model_family: str
    calibration_method: str
    config: dict[str, Any]
    config_hash: str
    git_commit: str
    data_source: str
    data_digest: str
    n_development: int
    n_test: int
    events_development: int
    events_test: int
    report: dict[str, Any]
    uncertainty_method: str | None
    plots: dict[str, Path] = field(default_factory=dict)
    created: date = field(default_factory=date.today)
    selected_hyperparameters: dict[str, Any] | None = None


# ── number formatting ────────────────────────────────────────────────────────


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def fmt_num(value: Any) -> str:
    """A number to 3 significant digits; counts with thousands separators.

    None, NaN and ±inf are "—"; strings (e.g. a suppressed "<10") pass through.
    """
    if _missing(value):
        return NONE_TEXT
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    x = float(value)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) < 1e-12:
        return "0"  # floating-point residue of a difference, e.g. a net benefit
    return f"{x:.3g}"


def fmt_pct(value: Any) -> str:
    """A proportion as a percentage with one decimal ("12.3%"); None is "—"."""
    if _missing(value):
        return NONE_TEXT
    if isinstance(value, str):
        return value
    return f"{100.0 * float(value):.1f}%"


def fmt_count(value: Any, total: Any = None) -> str:
    """A count, with its share of ``total`` when given ("1,234 (5.6%)")."""
    if _missing(value):
        return NONE_TEXT
    if isinstance(value, str):
        return value
    text = f"{int(value):,}"
    if not _missing(total) and not isinstance(total, str) and float(total) > 0:
        text += f" ({fmt_pct(float(value) / float(total))})"
    return text


# ── a tiny document model, rendered twice ────────────────────────────────────


@dataclass
class _Doc:
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h1(self, text: str) -> None:
        self.blocks.append(("h1", text))

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def h3(self, text: str) -> None:
        self.blocks.append(("h3", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: Iterable[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows])))

    def img(self, name: str, path: Path, caption: str) -> None:
        self.blocks.append(("img", (name, Path(path), caption)))


_TAG_OPENER = re.compile(r"<(?=[A-Za-z/!?])")


def threshold_table(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the threshold table.

    One definition for the model card and the evaluation report
    (``training/eval_report.py``).
    """
    n = (report.get("summary") or {}).get("n")
    header = [
        "Threshold",
        "Sensitivity",
        "Specificity",
        "PPV",
        "NPV",
        "TP",
        "FP",
        "TN",
        "FN",
        "Above",
        "Screened per patient above",
    ]
    rows = [
        [
            fmt_num(r.get("threshold")),
            fmt_pct(r.get("sensitivity")),
            fmt_pct(r.get("specificity")),
            fmt_pct(r.get("ppv")),
            fmt_pct(r.get("npv")),
            fmt_count(r.get("tp")),
            fmt_count(r.get("fp")),
            fmt_count(r.get("tn")),
            fmt_count(r.get("fn")),
            fmt_count(r.get("n_above"), n),
            fmt_num(r.get("screened_per_above")),
        ]
        for r in report.get("threshold_table") or []
    ]
    return header, rows


_FORMATS: dict[str, Callable[[Any], str]] = {
    "num": fmt_num,
    "pct": fmt_pct,
    "count": fmt_count,
}
_SUBGROUP_METRICS: tuple[tuple[str, str, Callable[[Any], str]], ...] = tuple(
    (spec.row_key, spec.column, _FORMATS[spec.fmt]) for spec in metric_view("subgroup")
)


def subgroup_table(
    report: Mapping[str, Any], min_cell: int, gate: float
) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows of the subgroup table, small cells suppressed.

    One definition for the model card and the evaluation report.
    """
    hidden = f"suppressed (<{min_cell})"
    rows = []
    for r in report.get("subgroups") or []:
        # A count is None only when withheld (n - events would reveal a small cell).
        counts = [
            "suppressed" if r.get(key) is None else fmt_count(r.get(key))
            for key in ("n", "events")
        ]
        values = [
            hidden if r.get("suppressed") else fmt(r.get(key))
            for key, _, fmt in _SUBGROUP_METRICS
        ]
        label = str(r.get("attribute", "")).replace("_", " ")
        rows.append([label, str(r.get("group", "")), *counts, *values])
    header = ["Attribute", "Group", "n", "Events"] + [
        title.format(gate=gate) for _, title, _ in _SUBGROUP_METRICS
    ]
    return header, rows


def _md_text(text: Any) -> str:
    """Markdown-safe text: no raw HTML tags, no line breaks.

    A "<" that could open a tag, comment or processing instruction becomes
    "&lt;", so "<script>" cannot run in a renderer that passes HTML through;
    "<10" stays readable.
    """
    return _TAG_OPENER.sub("&lt;", " ".join(str(text).split()))


def _md_cell(text: Any) -> str:
    return _md_text(text).replace("|", "\\|")


def _render_markdown(doc: _Doc, plot_prefix: str) -> str:
    out: list[str] = []
    for kind, body in doc.blocks:
        if kind in ("h1", "h2", "h3"):
            out.append(f"{'#' * int(kind[1])} {_md_text(body)}")
        elif kind == "p":
            out.append(_md_text(body))
        elif kind == "ul":
            out.append("\n".join(f"- {_md_text(item)}" for item in body))
        elif kind == "table":
            header, rows = body
            lines = [
                "| " + " | ".join(_md_cell(h) for h in header) + " |",
                "|" + "|".join("---" for _ in header) + "|",
            ]
            lines += [
                "| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows
            ]
            out.append("\n".join(lines))
        elif kind == "img":
            _, path, caption = body
            target = _md_text(f"{plot_prefix}{path.name}").replace(" ", "%20")
            out.append(f"![{_md_cell(caption)}]({target})\n\n*{_md_text(caption)}*")
    return "\n\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:60rem;
margin:2rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #0072B2;padding-bottom:.3rem}
h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
h3{font-size:1.05rem;margin-top:1.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef4fa}
tr:nth-child(even) td{background:#fafafa}
figure{margin:1rem 0}
img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.85rem;color:#555}
.missing{color:#a00}
""".strip()


def _render_html(doc: _Doc, title: str) -> str:
    esc = html.escape
    body: list[str] = []
    for kind, content in doc.blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{esc(str(content))}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{esc(str(content))}</p>")
        elif kind == "ul":
            items = "".join(f"<li>{esc(str(i))}</li>" for i in content)
            body.append(f"<ul>{items}</ul>")
        elif kind == "table":
            header, rows = content
            head = "".join(f"<th>{esc(str(h))}</th>" for h in header)
            trs = "".join(
                "<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>"
                for row in rows
            )
            body.append(
                f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"
            )
        elif kind == "img":
            name, path, caption = content
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img src="data:image/png;base64,{data}" '
                    f'alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption>'
                    "</figure>"
                )
            else:
                body.append(
                    f'<p class="missing">Plot {esc(name)} not available '
                    f"({esc(str(path))}).</p>"
                )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


# ── content ──────────────────────────────────────────────────────────────────


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, value))
    return rows


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value) or NONE_TEXT
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt_num(value)
    return NONE_TEXT if value is None else str(value)


def _is_synthetic(ctx: ModelCardContext) -> bool:
    return ctx.data_source.startswith("synthetic://") or bool(ctx.report.get("oracle"))


def _gate(ctx: ModelCardContext) -> float:
    settings = ctx.report.get("settings") or {}
    return float(settings.get("threshold", ctx.config.get("gate_threshold", 0.5)))


def _min_cell(ctx: ModelCardContext) -> int:
    return int((ctx.report.get("settings") or {}).get("min_cell", SMALL_CELL))


def _title(ctx: ModelCardContext) -> str:
    version = f" version {ctx.model_version}" if ctx.model_version else ""
    family = {
        "xgboost": "gradient-boosted trees (XGBoost, machine learning)",
        "logistic": "penalised logistic regression",
        "rifle_ln": "RIFLE-LN-style logistic regression (3 predictors)",
    }.get(ctx.model_family, ctx.model_family)
    return (
        f"Model card: {ctx.model_name}{version} — development and held-out "
        f"validation of a {family} model of the 2-year risk of new-onset lupus "
        "nephritis in adults with SLE"
    )


def _intended_use(doc: _Doc, ctx: ModelCardContext) -> None:
    gate = _gate(ctx)
    doc.h2("Intended use")
    doc.p(
        f"Purpose: the inclusion gate of trial {TRIAL} (Belimumab In Prevention of "
        "Lupus Nephritis, Renji Hospital). A predicted 2-year risk of new-onset "
        f"lupus nephritis higher than {gate:.0%} (p > {gate:g}, strictly) is ONE "
        "inclusion criterion, evaluated before the rule-based criteria (age ≥ 18, "
        "1997 ACR SLE classification, stable standard of care, and the trial's "
        "exclusions such as prior kidney involvement)."
    )
    doc.ul(
        [
            "Research screening support: the model helps a trial team find "
            "candidates. It is not a diagnostic device, does not diagnose lupus "
            "nephritis and must not guide the care of an individual patient.",
            "Intended users: trial investigators and research coordinators with "
            "rheumatology expertise, who review every flagged patient against the "
            "full protocol.",
            "Target population: adults (≥ 18 years) with SLE by the 1997 ACR "
            "criteria and no prior kidney involvement, at a screening visit.",
            "Output: a probability (0–1) of new-onset lupus nephritis within 24 "
            f"months; 'above the gate' means p > {gate:g}. Patients whose "
            "uncertainty band straddles the gate should be reviewed, not decided "
            "automatically.",
            "Existing models: no published model targets a 2-year window; the "
            "Renji model named in the trial registration is unpublished (see "
            "Limitations).",
        ]
    )


def _model_section(doc: _Doc, ctx: ModelCardContext) -> None:
    doc.h2("Model")
    doc.table(
        ["Item", "Value"],
        [
            ["Registered model", ctx.model_name],
            ["Version", ctx.model_version or "not registered"],
            ["Model family", ctx.model_family],
            ["Calibration", ctx.calibration_method],
            ["MLflow run id", ctx.run_id],
            ["Git commit", ctx.git_commit],
            ["Config hash", ctx.config_hash],
            ["Card created", ctx.created.isoformat()],
        ],
    )
    if ctx.selected_hyperparameters:
        doc.h3("Selected hyperparameters")
        doc.table(
            ["Parameter", "Value"],
            [[k, _value_text(v)] for k, v in ctx.selected_hyperparameters.items()],
        )
    model_cfg = ctx.config.get("model")
    doc.h3("Configured hyperparameters")
    if isinstance(model_cfg, Mapping):
        if (ctx.config.get("search") or {}).get("enabled"):
            doc.p(
                "A random search by cross-validation was enabled; these are its "
                "starting values and the search grid is listed under settings."
            )
        doc.table(
            ["Parameter", "Value"],
            [[k, _value_text(v)] for k, v in _flatten(model_cfg)],
        )
    else:
        doc.p("The config has no model section.")
    rest = {
        k: v for k, v in ctx.config.items() if k not in ("model", "tracking")
    }  # tracking names the MLflow store, not the model
    if rest:
        doc.h3("Other training settings")
        doc.table(
            ["Setting", "Value"], [[k, _value_text(v)] for k, v in _flatten(rest)]
        )


def _data_section(doc: _Doc, ctx: ModelCardContext) -> None:
    doc.h2("Data")
    if _is_synthetic(ctx):
        doc.p(
            "SYNTHETIC DATA. Every patient in the development and test sets is "
            "synthetic: generated by training/synthetic.py from the data-generating "
            "process of clinical.md §8 (a latent serological-activity factor driving "
            "correlated laboratory values, and a logistic 2-year outcome model). No "
            "real patient contributed. Effect sizes and marginal distributions are "
            "anchored in the literature: the SLICC inception cohort (incidence and "
            "timing), GLADEL (hypertension, SLEDAI-2K, antimalarials), the Danish "
            "cohorts (lymphopenia, anti-dsDNA, discoid rash), the Attikon cohort "
            "(male sex, age, low complement), RIFLE-LN (benchmark AUROC 0.70), CSTAR "
            "(distributions in Chinese SLE), Meyer et al. 2009 (anti-C1q) and the "
            "Korean wGRS study (anti-Sm, antiphospholipid antibodies). Each patient's "
            "true risk is known, so the model can be compared with an oracle."
        )
    else:
        doc.p(
            "Cohort file supplied by the user (source below). Its provenance, "
            "setting, centres and accrual dates are not recorded by the training "
            "run and must be documented separately."
        )
    dev, test = ctx.n_development, ctx.n_test
    doc.table(
        ["Item", "Value"],
        [
            ["Source", ctx.data_source],
            ["Dataset digest (MLflow)", ctx.data_digest],
            ["Development set: patients", fmt_count(dev)],
            ["Development set: events", fmt_count(ctx.events_development, dev)],
            ["Held-out test set: patients", fmt_count(test)],
            ["Held-out test set: events", fmt_count(ctx.events_test, test)],
        ],
    )
    split = ctx.config.get("split") or {}
    doc.ul(
        [
            "Outcome: new-onset lupus nephritis within 24 months of the screening "
            "record — the first of persistent proteinuria > 0.5 g/24 h, cellular "
            "casts, active sediment (> 5 RBC/hpf not otherwise explained) or "
            "biopsy-proven class II–V lupus nephritis (the ACR renal criterion).",
            "Time horizon: 24 months, analysed as a binary outcome (every patient "
            "has complete 24-month follow-up; no censoring).",
            "Eligibility: adults with SLE (1997 ACR criteria) without kidney "
            "involvement at the screening record.",
            "Splitting: patients were split once into development and held-out test "
            "sets, each patient in exactly one"
            + (
                f" (test fraction {fmt_pct(split.get('test_fraction'))}"
                + (", stratified by outcome" if split.get("stratify") else "")
                + ")."
                if split
                else "."
            )
            + " All performance figures below are on the held-out test set.",
        ]
    )


def _predictors_section(doc: _Doc, ctx: ModelCardContext) -> None:
    doc.h2("Predictors")
    features = model_features()
    doc.p(
        f"The model takes {len(features)} predictors, in this order, generated from "
        "the PatientRecord schema (data_schema). Booleans are coded 1/0; sex is "
        "coded as 'male' (1 for male)."
    )
    specs = field_specs()
    rows = []
    for name in features:
        description, unit = feature_description(name)
        kind = "bool" if name == "male" else specs[name].kind
        rows.append([name, description, unit or NONE_TEXT, kind])
    doc.table(["Feature", "Description", "Unit", "Type"], rows)
    if "feature_importance" in ctx.plots:
        doc.img(
            "feature_importance",
            ctx.plots["feature_importance"],
            PLOT_CAPTIONS["feature_importance"],
        )


def _missing_section(doc: _Doc, ctx: ModelCardContext) -> None:
    doc.h2("Missing data")
    if ctx.model_family == "xgboost":
        handling = (
            "No imputation: a missing predictor is passed to XGBoost as NaN and "
            "routed down the default branch that each split learned during training "
            "(native missing-value handling)."
        )
    else:
        handling = (
            "This logistic model fills a missing predictor with its development-set "
            "value (median; single imputation) and, for predictors missing in at "
            "least 1% of the development set, adds a missing-indicator term."
        )
    doc.ul(
        [
            handling,
            "A missing predictor is not an error: the model returns a risk for any "
            "pattern of recorded predictors.",
            "In the synthetic data-generating process missingness is MAR (e.g. "
            "anti-C1q and anti-nucleosome measured in about half the patients, more "
            "often when disease activity is high; clinical.md §8.6). Real-world "
            "missingness may differ and is not validated here.",
        ]
    )


def _metric_table(
    rows: Sequence[tuple[str, str, str]], values: Mapping[str, Any]
) -> list[list[str]]:
    out = []
    for label, key, ideal in rows:
        out.append([label, fmt_num(values.get(key)), ideal])
    return out


_CAL_ROWS: tuple[tuple[str, str, str], ...] = (
    ("Brier score", "brier", "0 (lower is better)"),
    ("Scaled Brier score", "brier_scaled", "1"),
    ("Calibration-in-the-large (log-odds)", "citl", "0"),
    ("Observed/expected ratio", "oe_ratio", "1"),
    ("Calibration intercept (log-odds)", "cal_intercept", "0"),
    ("Calibration slope", "cal_slope", "1"),
    ("ICI (probability)", "ici", "0"),
    ("E50 (probability)", "e50", "0"),
    ("E90 (probability)", "e90", "0"),
)


def _performance_section(doc: _Doc, ctx: ModelCardContext) -> None:
    report = ctx.report
    gate = _gate(ctx)
    summary = report.get("summary") or {}
    doc.h2("Performance")
    doc.p(
        f"Held-out test set: {fmt_count(summary.get('n'))} patients, "
        f"{fmt_count(summary.get('events'))} events (observed 2-year rate "
        f"{fmt_pct(summary.get('prevalence'))}, mean predicted risk "
        f"{fmt_pct(summary.get('mean_predicted'))})."
    )

    disc = report.get("discrimination") or {}
    doc.h3("Discrimination")
    doc.table(
        ["Measure", "Value", "95% CI"],
        [
            [
                "AUROC (C-statistic)",
                fmt_num(disc.get("auroc")),
                f"{fmt_num(disc.get('auroc_ci_low'))}–"
                f"{fmt_num(disc.get('auroc_ci_high'))} (DeLong)",
            ],
            [
                "AUPRC (average precision)",
                fmt_num(disc.get("auprc")),
                f"no-skill value = prevalence {fmt_pct(summary.get('prevalence'))}",
            ],
        ],
    )
    doc.h3("Calibration")
    cal = report.get("calibration") or {}
    doc.table(["Measure", "Value", "Ideal"], _metric_table(_CAL_ROWS, cal))
    if cal.get("curve"):
        doc.table(
            [
                "Tenth of p",
                "n",
                "Mean predicted",
                "Observed",
                "Observed 95% CI (Wilson)",
            ],
            [
                [
                    fmt_num(None if row.get("bin") is None else row["bin"] + 1),
                    fmt_count(row.get("n")),
                    fmt_pct(row.get("mean_predicted")),
                    fmt_pct(row.get("observed")),
                    f"{fmt_pct(row.get('ci_low'))}–{fmt_pct(row.get('ci_high'))}",
                ]
                for row in cal["curve"]
            ],
        )

    doc.h3(f"At the {gate:g} gate")
    table = report.get("threshold_table") or []
    gate_row = next(
        (r for r in table if math.isclose(float(r["threshold"]), gate)), None
    )
    if gate_row:
        doc.table(
            ["Measure", "Value"],
            [
                ["Sensitivity", fmt_pct(gate_row.get("sensitivity"))],
                ["Specificity", fmt_pct(gate_row.get("specificity"))],
                ["PPV", fmt_pct(gate_row.get("ppv"))],
                ["NPV", fmt_pct(gate_row.get("npv"))],
                [
                    f"Patients above the gate (p > {gate:g})",
                    fmt_count(gate_row.get("n_above"), summary.get("n")),
                ],
                [
                    "Patients screened per patient above the gate",
                    fmt_num(gate_row.get("screened_per_above")),
                ],
            ],
        )
    if table:
        doc.table(*threshold_table(report))

    utility = report.get("clinical_utility") or {}
    doc.h3("Net benefit and decision curve")
    doc.p(
        f"Net benefit at the gate (true positives per patient screened, Vickers & "
        f"Elkin 2006): model {fmt_num(utility.get('nb_at_gate'))}, admit-all "
        f"{fmt_num(utility.get('nb_treat_all_at_gate'))}, admit-none 0."
    )
    curve = utility.get("decision_curve") or []
    has_oracle = any(r.get("net_benefit_oracle") is not None for r in curve)
    if curve:
        header = ["Threshold", "Model", "Admit all", "Admit none"]
        header += ["True risk (oracle)"] if has_oracle else []
        doc.table(
            header,
            [
                [
                    fmt_num(r.get("threshold")),
                    fmt_num(r.get("net_benefit_model")),
                    fmt_num(r.get("net_benefit_all")),
                    fmt_num(r.get("net_benefit_none")),
                ]
                + ([fmt_num(r.get("net_benefit_oracle"))] if has_oracle else [])
                for r in curve
            ],
        )

    dist = report.get("prediction_distribution") or {}
    if dist:
        doc.h3("Distribution of predicted risk")
        quantiles = dist.get("quantiles") or {}
        doc.table(
            ["Mean", *quantiles.keys(), "Max", f"Above {gate:g}"],
            [
                [
                    fmt_pct(dist.get("mean")),
                    *(fmt_pct(v) for v in quantiles.values()),
                    fmt_pct(dist.get("max")),
                    fmt_count(dist.get("n_above_gate"), summary.get("n")),
                ]
            ],
        )

    oracle = report.get("oracle")
    if oracle:
        doc.h3("Comparison with the true risk (oracle)")
        doc.p(
            "On synthetic data each patient's true 2-year risk is known. Scored "
            "like a model on the same outcomes, it shows the best performance any "
            "model could reach on this test set."
        )
        keys = [
            ("AUROC", "auroc"),
            ("AUPRC", "auprc"),
            ("Brier score", "brier"),
            ("Calibration slope", "cal_slope"),
            ("ICI", "ici"),
            ("Net benefit at the gate", "nb_at_gate"),
        ]
        rows = [
            [label, fmt_num(summary.get(k)), fmt_num(oracle.get(k))]
            for label, k in keys
        ]
        rows += [
            [
                "Sensitivity at the gate",
                fmt_pct(summary.get("sens_at_gate")),
                fmt_pct(oracle.get("sens_at_gate")),
            ],
            [
                "PPV at the gate",
                fmt_pct(summary.get("ppv_at_gate")),
                fmt_pct(oracle.get("ppv_at_gate")),
            ],
            [
                "Share above the gate",
                fmt_pct(summary.get("share_above_gate")),
                fmt_pct(oracle.get("share_above_gate")),
            ],
        ]
        doc.table(["Measure", "Model", "True risk"], rows)
        doc.ul(
            [
                f"AUROC gap (model − oracle): {fmt_num(oracle.get('auroc_gap'))}.",
                "Net benefit at the gate, model / oracle: "
                f"{fmt_num(oracle.get('nb_ratio'))}.",
                f"Of patients whose true risk is above {gate:g}, the model puts "
                f"{fmt_pct(oracle.get('share_true_high_above_gate'))} above the gate.",
                f"Of patients the model puts above the gate, "
                f"{fmt_pct(oracle.get('share_above_gate_true_high'))} have a true "
                f"risk above {gate:g}.",
                "Mean absolute difference between predicted and true risk: "
                f"{fmt_num(oracle.get('mean_abs_error_vs_truth'))} (probability).",
            ]
        )

    for name in ("roc", "calibration", "decision_curve", "risk_histogram"):
        if name in ctx.plots:
            doc.img(name, ctx.plots[name], PLOT_CAPTIONS[name])
    for name, path in ctx.plots.items():
        if name not in PLOT_CAPTIONS:
            doc.img(name, path, name.replace("_", " ").capitalize() + ".")


def _subgroup_section(doc: _Doc, ctx: ModelCardContext) -> None:
    min_cell = _min_cell(ctx)
    doc.h2("Subgroups")
    doc.p(
        "Performance by sex and by age band (years) on the held-out test set, "
        "computed with fairlearn MetricFrame. Following OHDSI PatientLevelPrediction "
        f"(savePlpShareable), a group with fewer than {min_cell} patients, events or "
        f"non-events is suppressed: its metrics are not shown and its small counts "
        f"appear as <{min_cell}."
    )
    doc.table(*subgroup_table(ctx.report, min_cell, _gate(ctx)))


def _uncertainty_section(doc: _Doc, ctx: ModelCardContext) -> None:
    gate = _gate(ctx)
    band = ctx.report.get("uncertainty")
    doc.h2("Uncertainty band")
    doc.p(f"Method: {ctx.uncertainty_method or 'no uncertainty band for this model.'}")
    if not band:
        doc.p("No per-patient band was evaluated on the test set.")
        return
    n = (ctx.report.get("summary") or {}).get("n")
    coverage = band.get("band_coverage")
    doc.table(
        ["Measure", "Value"],
        [
            [
                f"Patients whose band straddles the gate (low ≤ {gate:g} < high)",
                fmt_count(band.get("n_in_band"), n),
            ],
            ["Mean band width (probability)", fmt_num(band.get("band_width_mean"))],
            [
                "Coverage of the true risk, all patients",
                fmt_pct(coverage) if coverage is not None else "unknown (no true risk)",
            ],
            [
                "Coverage of the true risk, straddling patients",
                fmt_pct(band.get("band_coverage_in_band"))
                if coverage is not None
                else "unknown (no true risk)",
            ],
        ],
    )
    doc.p(
        "A patient whose band straddles the gate cannot be placed on one side of "
        "it with confidence; such patients are flagged for review."
    )


def _limitations_section(doc: _Doc, ctx: ModelCardContext) -> None:
    doc.h2("Limitations")
    items = [
        "The Renji 'AI-constructed prediction model' named in the trial "
        "registration is unpublished: its predictors, cohort and performance are "
        "unknown, and this model is not a reproduction of it.",
        "Effect sizes behind the synthetic data come from heterogeneous, mostly "
        "non-Chinese and partly cross-sectional or case-control cohorts (attenuated "
        "for that reason); the 10% 2-year incidence in Chinese SLE is an assumption.",
        "Synthetic data cannot validate a real model: performance here shows only "
        "that the pipeline recovers a known data-generating process. A real cohort "
        "and external validation are needed before any use in screening.",
        "A 3-predictor RIFLE-LN-style model (male sex, age, anti-dsDNA) fitted to "
        "the same data reaches an AUROC of about 0.70 with a maximum risk near "
        "0.32, so it puts nobody above the 50% gate: passing the gate needs "
        "serology (titre, C3/C4, anti-C1q), subclinical urine findings and disease "
        "duration.",
        "No time-to-event analysis: the outcome is binary at 24 months, with no "
        "censoring, loss to follow-up or competing risk of death; a real cohort "
        "would need Kaplan–Meier / Aalen–Johansen estimates at 24 months.",
        "Validation is a single internal held-out split; there is no temporal, "
        "geographic or centre-level validation, and some subgroups (e.g. men) are "
        "small.",
    ]
    if not _is_synthetic(ctx):
        items.insert(
            2,
            "This run used a user-supplied cohort; its representativeness of the "
            "trial's screening population is not assessed by this card.",
        )
    doc.ul(items)


def _tripod_section(doc: _Doc) -> None:
    doc.h2("TRIPOD+AI checklist")
    doc.p(
        "Items of TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) this card "
        "reports, and where. Item wording is from clinical.md §7 and should be "
        "checked against tripod-statement.org before publication."
    )
    doc.table(["Item", "Content", "Where"], [list(row) for row in TRIPOD_COVERED])
    doc.p("Not covered by this card: items " + ", ".join(TRIPOD_NOT_COVERED) + ".")


def render_model_card(
    ctx: ModelCardContext, *, markdown_plot_prefix: str = "../plots/"
) -> tuple[str, str]:
    """Render the model card of one model version as Markdown and HTML.

    Args:
        ctx: what to show.
        markdown_plot_prefix: prefix of the plot file names in Markdown image
            links. The default matches the MLflow layout of
            :func:`.log_evidence` (card in ``model_card/``,
            plots in ``plots/``). The HTML embeds the PNG bytes instead.

    Returns:
        (markdown, html). The HTML is a complete, self-contained page.
    """
    doc = _Doc()
    title = _title(ctx)
    doc.h1(title)
    _intended_use(doc, ctx)
    _model_section(doc, ctx)
    _data_section(doc, ctx)
    _predictors_section(doc, ctx)
    _missing_section(doc, ctx)
    _performance_section(doc, ctx)
    _subgroup_section(doc, ctx)
    _uncertainty_section(doc, ctx)
    _limitations_section(doc, ctx)
    _tripod_section(doc)
    return _render_markdown(doc, markdown_plot_prefix), _render_html(doc, title)


__all__ = [
    "SECTION_HEADINGS",
    "ModelCardContext",
    "fmt_count",
    "fmt_num",
    "fmt_pct",
    "render_model_card",
]
