"""A TRIPOD+AI-structured model card for one registered model version.

:func:`render_model_card` writes the same content twice: Markdown (readable as
plain text in the MLflow artifact view) and a self-contained HTML page (inline CSS,
plots embedded as base64 ``data:`` URIs, no external assets). Both are rendered
from one template, ``templates/model_card.j2``, in the two dialects of
:mod:`.render`, so the two can never disagree, and every piece of text from outside
this module (data source, config values, report strings) is escaped: HTML-escaped
in the page, tag openers and table pipes neutralised in the Markdown. This module
gathers what the template shows; every number comes from the report.

The section headings are fixed (:data:`SECTION_HEADINGS`) so cards of different
versions can be compared side by side; the predictor table is generated from
:func:`data_schema.model_features`, never listed by hand. The card answers every
item of TRIPOD+AI (Collins et al., BMJ 2024;385:e078378) by number: the items are
data (:mod:`.tripod`), their answers written with the run's facts
(:func:`card_facts`). What the data cannot show is never claimed: follow-up and
censoring are stated from the data source (:func:`follow_up_statement`), and a
site's setting, ethics and assessors are asked for, not assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from data_schema import SMALL_CELL, feature_description, field_specs, model_features
from training.data import STEP_COHORT, STEP_NOT_RULED_OUT
from training.evaluation.render import (
    NONE_TEXT,
    Figure,
    figure,
    fmt_count,
    fmt_num,
    fmt_pct,
    render_html,
    render_markdown,
)
from training.evaluation.sample_size import SampleSize, riley_sample_size
from training.evaluation.tripod import tripod_answers

TRIAL = "NCT05585671"
SECTION_HEADINGS: tuple[str, ...] = (
    "Intended use",
    "Model",
    "Data",
    "Predictors",
    "Missing data",
    "Performance",
    "Subgroups",
    "Gate and review zone",
    "Limitations",
    "TRIPOD+AI checklist",
)
"""Level-2 headings of every card, in order."""

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

ANTICIPATED_C_STATISTIC = 0.70
"""The C-statistic item 10's sample size anticipates: RIFLE-LN's published test AUROC
(Chan et al., Front Immunol 2023), the best externally tested model of the field."""


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
        gate_method: one sentence on how the gate decides, None without a gate.
        plots: plot name (file stem, e.g. ``roc``) to PNG path.
        created: date of the card.
        selected_hyperparameters: hyperparameters chosen by the search, if any.
        characteristics: the development and test sets side by side
            (:func:`.characteristics.characteristics_table`), if known.
        parameters: candidate predictor parameters of the model (its linear
            terms, or one per feature for trees); None counts the features.
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
    gate_method: str | None
    plots: dict[str, Path] = field(default_factory=dict)
    created: date = field(default_factory=date.today)
    selected_hyperparameters: dict[str, Any] | None = None
    characteristics: list[dict[str, Any]] | None = None
    parameters: int | None = None


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
    """Whether the data are the synthetic generator's: its source, or a file that
    carries the generator's true risk (no real cohort has one)."""
    return ctx.data_source.startswith("synthetic://") or bool(ctx.report.get("oracle"))


def _gate(ctx: ModelCardContext) -> float:
    settings = ctx.report.get("settings") or {}
    return float(settings.get("threshold", ctx.config.get("gate_threshold", 0.5)))


def _min_cell(ctx: ModelCardContext) -> int:
    return int((ctx.report.get("settings") or {}).get("min_cell", SMALL_CELL))


def _title(ctx: ModelCardContext) -> str:
    version = f" version {ctx.model_version}" if ctx.model_version else ""
    family = FAMILY_TEXT.get(ctx.model_family, ctx.model_family)
    return (
        f"Model card: {ctx.model_name}{version} — development and held-out "
        f"validation of a {family} model of the 2-year risk of new-onset lupus "
        "nephritis in adults with SLE"
    )


def _predictors() -> list[list[str]]:
    """Feature, description, unit and type of every model feature, in model order."""
    specs = field_specs()
    rows = []
    for name in model_features():
        description, unit = feature_description(name)
        kind = "bool" if name == "male" else specs[name].kind
        rows.append([name, description, unit or NONE_TEXT, kind])
    return rows


def _settings_rows(settings: Mapping[str, Any]) -> list[list[str]]:
    return [[k, _value_text(v)] for k, v in _flatten(settings)]


def _figures(ctx: ModelCardContext, prefix: str) -> tuple[list[Figure], list[Figure]]:
    """The feature-importance figure, then the performance figures, of the card.

    Performance: the standard plots in :data:`PLOT_CAPTIONS` order, then any other
    plot under a caption made from its name.
    """
    plots = ctx.plots
    importance = [
        figure(name, plots[name], PLOT_CAPTIONS[name], prefix)
        for name in ("feature_importance",)
        if name in plots
    ]
    performance = [
        figure(name, plots[name], PLOT_CAPTIONS[name], prefix)
        for name in ("roc", "calibration", "decision_curve", "risk_histogram")
        if name in plots
    ]
    performance += [
        figure(name, path, name.replace("_", " ").capitalize() + ".", prefix)
        for name, path in plots.items()
        if name not in PLOT_CAPTIONS
    ]
    return importance, performance


FAMILY_TEXT: dict[str, str] = {
    "xgboost": "gradient-boosted trees (XGBoost, machine learning)",
    "logistic": "penalised logistic regression",
    "rifle_ln": "RIFLE-LN-style logistic regression (3 predictors)",
}


def follow_up_statement(synthetic: bool) -> str:
    """Follow-up and censoring, as the data source supports them."""
    if synthetic:
        return (
            "Complete 2-year follow-up by construction: the synthetic outcome is "
            "simulated for every patient at 24 months, so there is no censoring, "
            "loss to follow-up or competing death."
        )
    return (
        "Follow-up and censoring are not recorded in the file; the outcome column is "
        "taken as observed at 2 years — censored patients (lost to follow-up or "
        "deceased before 24 months without the outcome) must be removed beforehand."
    )


def sample_size_of(ctx: ModelCardContext) -> SampleSize | None:
    """Riley's minimum for this model's predictors and development outcome
    proportion, anticipating :data:`ANTICIPATED_C_STATISTIC`; None without events."""
    if ctx.n_development == 0 or not 0 < ctx.events_development < ctx.n_development:
        return None
    return riley_sample_size(
        ctx.parameters or len(model_features()),
        ctx.events_development / ctx.n_development,
        c_statistic=ANTICIPATED_C_STATISTIC,
    )


def _sample_size_text(ctx: ModelCardContext) -> str:
    size = sample_size_of(ctx)
    if size is None:
        return "Not computed: the development set has no events or no non-events."
    meets = "meets" if ctx.n_development >= size.minimum else "does NOT meet"
    per_parameter = (
        " (one per predictor: a lower bound for a tree ensemble)"
        if ctx.model_family == "xgboost"
        else " (the model's terms)"
    )
    return (
        f"Riley et al.'s criteria for a binary outcome (pmsampsize conventions: "
        f"expected shrinkage ≥ 0.9, optimism in Nagelkerke R² ≤ 0.05, overall risk "
        f"within ± 0.05) for {size.parameters} candidate predictor parameters"
        f"{per_parameter}, outcome proportion "
        f"{fmt_pct(size.prevalence)} (development set) and a Cox–Snell R² of "
        f"{size.r2_cs:.3f} approximated from the C-statistic "
        f"{size.c_statistic:g} of RIFLE-LN (Riley, Van Calster & Collins 2021): "
        f"minimum {fmt_count(size.minimum)} patients "
        f"({fmt_num(size.events)} events, {size.events_per_parameter:.1f} per "
        f"parameter; criteria {fmt_count(size.n_shrinkage)} / "
        f"{fmt_count(size.n_optimism)} / {fmt_count(size.n_risk)}, set by "
        f"{size.binding}). The development set has {fmt_count(ctx.n_development)} "
        f"patients: it {meets} the minimum. The test set's size is not planned; "
        "its 95% intervals show its precision."
    )


def _attrition(ctx: ModelCardContext) -> dict[str, Any]:
    return {str(r["step"]): r for r in ctx.report.get("population") or []}


def _flow_text(ctx: ModelCardContext, synthetic: bool) -> str:
    steps = _attrition(ctx)
    split = (
        f"{fmt_count(ctx.n_development)} development and {fmt_count(ctx.n_test)} "
        "held-out test patients"
    )
    if not steps:
        flow = f"The attrition was not recorded for this run; {split}."
    else:
        flow = (
            f"{fmt_count(steps['cohort']['patients'])} patients in the cohort; "
            f"{fmt_count(steps['left out (any route)']['patients'])} left out for "
            f"prior kidney involvement (by route in the attrition table); "
            f"{fmt_count(steps['development population']['patients'])} in the "
            f"development population, split into {split}."
        )
    return f"{flow} {follow_up_statement(synthetic)}"


def _eligibility_text(ctx: ModelCardContext) -> str:
    steps = _attrition(ctx)
    if not steps:
        return "Every patient of the cohort (no population filter recorded)."
    routes = [
        step.split(": ", 1)[1] for step in steps if ": " in step and step != STEP_COHORT
    ]
    kept_unknown = steps.get(STEP_NOT_RULED_OUT, {}).get("patients")
    return (
        "The cohort's SLE patients without prior kidney involvement at baseline: a "
        "patient meeting any route of the criteria file's definition, shared with "
        f"the trial's exclusions ({', '.join(routes) or 'none configured'}), is "
        f"left out ({fmt_count(steps['left out (any route)']['patients'])} "
        f"patients). {fmt_count(kept_unknown)} patients whose kidney history is "
        "not recorded cannot be ruled out and stay."
    )


def _missing_text(ctx: ModelCardContext) -> str:
    if ctx.model_family == "xgboost":
        gate_cfg = ctx.config.get("gate") or {}
        draws = gate_cfg.get("draws")
        return (
            "The risk routes a missing predictor down XGBoost's learned default "
            "branch; the gate completes missing predictors with plausible values "
            f"({fmt_num(draws)} draws of chained equations fitted on the "
            "development set, exact extremes for the monotone labs) and is "
            "undetermined — the patient reviewed, with the predictors to obtain "
            "listed — when they could carry the risk across the review zone."
        )
    return (
        "The logistic model fills a missing predictor with its development median "
        "and adds a missing-indicator term for predictors missing in at least 1% "
        "of the development set."
    )


def _zone_text(ctx: ModelCardContext) -> str:
    gate = ctx.report.get("gate")
    margins = ctx.config.get("gate") or {}
    if not gate:
        return "no review zone was evaluated for this model."
    return (
        f"auto-excluded at or below a risk of {fmt_num(gate['exclude_edge'])}, "
        f"auto-passed above {fmt_num(gate['pass_edge'])}, reviewed in between: the "
        "edges are where the observed 2-year event rate of out-of-fold development "
        f"patients (centred isotonic curve) reaches the gate − "
        f"{fmt_num(margins.get('exclude_margin'))} and the gate + "
        f"{fmt_num(margins.get('pass_margin'))}; never fitted on a true risk."
    )


def _updating_texts(ctx: ModelCardContext) -> tuple[str, str]:
    if "recalibrated" in ctx.calibration_method:
        return (
            f"Recalibration of a registered model on new data: "
            f"{ctx.calibration_method}; the booster is unchanged.",
            "The recalibrated model's held-out performance is under Performance; "
            "the run records the metrics before recalibration (before_*).",
        )
    return (
        "Not applicable: this version is a new development, not an update.",
        "Not applicable: no model updating was done.",
    )


def _interpretation(ctx: ModelCardContext, synthetic: bool) -> str:
    summary = ctx.report.get("summary") or {}
    oracle = ctx.report.get("oracle")
    text = (
        f"On held-out patients the model discriminates with AUROC "
        f"{fmt_num(summary.get('auroc'))} (published RIFLE-LN: 0.70) and is "
        f"calibrated with slope {fmt_num(summary.get('cal_slope'))}"
    )
    if oracle:
        text += (
            f"; the true risk reaches AUROC {fmt_num(oracle.get('auroc'))}, and the "
            "ratio of the model's net benefit at the gate to the true risk's is "
            f"{fmt_num(oracle.get('nb_ratio'))}"
        )
    text += (
        ". Fairness: results by sex and age band are under Subgroups; groups too "
        "small to estimate are suppressed, not reported as equal."
    )
    if synthetic:
        text += " These are synthetic data: the results show the method, not a "
        text += "clinical performance."
    return text


def _characteristic_share(ctx: ModelCardContext, label: str) -> float | None:
    for row in ctx.characteristics or []:
        if row["label"] == label:
            return row["development"].get("share")
    return None


def card_facts(ctx: ModelCardContext) -> dict[str, Any]:
    """The run's facts the TRIPOD+AI answers (:mod:`.tripod`) are written with."""
    synthetic = _is_synthetic(ctx)
    summary = ctx.report.get("summary") or {}
    split = ctx.config.get("split") or {}
    updating, updating_result = _updating_texts(ctx)
    search = ctx.config.get("search") or {}
    return {
        "title": _title(ctx),
        "trial": TRIAL,
        "gate": _gate(ctx),
        "synthetic": synthetic,
        "source": ctx.data_source,
        "digest": ctx.data_digest,
        "model_name": ctx.model_name,
        "run_id": ctx.run_id,
        "git_commit": ctx.git_commit,
        "config_hash": ctx.config_hash,
        "family_text": FAMILY_TEXT.get(ctx.model_family, ctx.model_family),
        "calibration_method": ctx.calibration_method,
        "search_enabled": bool(search.get("enabled")),
        "stratified": bool(split.get("stratify")),
        "split_text": (
            f" ({fmt_pct(split['test_fraction'])} held out"
            f"{', stratified by outcome' if split.get('stratify') else ''})"
            if "test_fraction" in split
            else ""
        ),
        "n_dev": ctx.n_development,
        "events_dev": ctx.events_development,
        "n_test": ctx.n_test,
        "events_test": ctx.events_test,
        "prevalence_dev": _share(ctx.events_development, ctx.n_development),
        "prevalence_test": _share(ctx.events_test, ctx.n_test),
        "auroc": summary.get("auroc"),
        "auroc_low": summary.get("auroc_ci_low"),
        "auroc_high": summary.get("auroc_ci_high"),
        "cal_slope": summary.get("cal_slope"),
        "citl": summary.get("citl"),
        "predictor_choice": (
            "RIFLE-LN's published predictors (male sex, age at SLE onset, anti-dsDNA "
            "positivity)"
            if ctx.model_family == "rifle_ln"
            else f"All {len(model_features())} predictors of the PatientRecord schema"
        ),
        "hcq_dev": _characteristic_share(ctx, "Hydroxychloroquine"),
        "is_dev": _characteristic_share(ctx, "Immunosuppressant"),
        **_data_texts(ctx, synthetic),
        "updating_text": updating,
        "updating_result_text": updating_result,
    }


def _data_texts(ctx: ModelCardContext, synthetic: bool) -> dict[str, str]:
    """The longer answers, each built from the run's numbers."""
    return {
        "source_text": (
            "A synthetic cohort from the data-generating process of the synthetic "
            "package, its distributions and effects anchored in published SLE "
            "cohorts; no real patient."
            if synthetic
            else "A cohort file supplied by a site; its provenance and "
            "representativeness are not recorded by the training run."
        ),
        "follow_up": follow_up_statement(synthetic),
        "eligibility": _eligibility_text(ctx),
        "flow_text": _flow_text(ctx, synthetic),
        "sample_size_text": _sample_size_text(ctx),
        "missing_text": _missing_text(ctx),
        "zone_text": _zone_text(ctx),
        "predictor_handling": _predictor_handling(ctx),
        "characteristics_text": (
            "Development and test sets side by side in the characteristics table "
            "(Data): patients, events, sex, age and key labs as median [IQR], "
            "share not recorded."
            if ctx.characteristics
            else "Not available for this run (the characteristics were not computed)."
        ),
        "interpretation": _interpretation(ctx, synthetic),
    }


def _predictor_handling(ctx: ModelCardContext) -> str:
    model_cfg = ctx.config.get("model") or {}
    if ctx.model_family == "rifle_ln":
        return (
            "Three terms as RIFLE-LN defines them: male sex, age at SLE onset (age "
            "minus disease duration) and anti-dsDNA positivity (a cut-off on the "
            "titre); unpenalised."
        )
    if ctx.model_family != "xgboost":
        return (
            "Every predictor a linear term (log10 of the titres), standardised by "
            "its development mean and scale, with a missing-indicator term where "
            "1% or more of the development set is missing; sex coded male 1/0."
        )
    up = ", ".join(model_cfg.get("monotone_increasing") or []) or "none"
    down = ", ".join(model_cfg.get("monotone_decreasing") or []) or "none"
    return (
        "Values as recorded, in their schema units: no transformation, "
        "standardisation or categorisation (trees are invariant to monotone "
        "rescaling); yes/no predictors and sex coded 1/0. Monotone constraints: "
        f"risk non-decreasing in {up}, non-increasing in {down}."
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _suppress(value: Any, min_cell: int) -> Any:
    if isinstance(value, int) and 0 < value < min_cell:
        return f"<{min_cell}"
    return value


def _attrition_rows(ctx: ModelCardContext) -> list[list[Any]]:
    """The attrition table, counts below the small-cell limit suppressed."""
    min_cell = _min_cell(ctx)
    return [
        [
            r["step"],
            fmt_count(_suppress(r["patients"], min_cell)),
            fmt_count(_suppress(r.get("events"), min_cell)),
        ]
        for r in ctx.report.get("population") or []
    ]


def _characteristic_cell(row: Mapping[str, Any], values: Mapping[str, Any]) -> str:
    if row["kind"] == "count":
        return fmt_count(values["count"])
    if row["kind"] == "yes_no":
        count = values["count"]
        text = count if isinstance(count, str) else fmt_count(count)
        if not isinstance(count, str):
            text += f" ({fmt_pct(values['share'])})"
    else:
        text = (
            f"{fmt_num(values['median'])} [{fmt_num(values['q1'])}–"
            f"{fmt_num(values['q3'])}]"
        )
    if values.get("missing"):
        text += f"; {fmt_pct(values['missing'])} not recorded"
    return text


def _characteristics_rows(ctx: ModelCardContext) -> list[list[str]]:
    """Characteristic (unit), development, test: formatted cells."""
    rows = []
    for row in ctx.characteristics or []:
        label = f"{row['label']} ({row['unit']})" if row["unit"] else row["label"]
        if row["kind"] == "measurement":
            label += ", median [IQR]"
        elif row["kind"] == "yes_no":
            label += ", n (%)"
        rows.append(
            [label]
            + [
                _characteristic_cell(row, row[name])
                for name in ("development", "test")
                if name in row
            ]
        )
    return rows


def _context(ctx: ModelCardContext, plot_prefix: str) -> dict[str, Any]:
    """Everything the card template shows, formatted from the context."""
    gate = _gate(ctx)
    model_cfg = ctx.config.get("model")
    # tracking names the MLflow store, not the model
    rest = {k: v for k, v in ctx.config.items() if k not in ("model", "tracking")}
    importance, performance = _figures(ctx, plot_prefix)
    facts = card_facts(ctx)
    return {
        "title": _title(ctx),
        "trial": TRIAL,
        "ctx": ctx,
        "report": ctx.report,
        "gate": gate,
        "gate_row": next(
            (
                r
                for r in ctx.report.get("threshold_table") or []
                if math.isclose(float(r["threshold"]), gate)
            ),
            None,
        ),
        "min_cell": _min_cell(ctx),
        "synthetic": _is_synthetic(ctx),
        "hyperparameters": [
            [k, _value_text(v)] for k, v in (ctx.selected_hyperparameters or {}).items()
        ],
        "configured": _settings_rows(model_cfg)
        if isinstance(model_cfg, Mapping)
        else None,
        "search_enabled": bool((ctx.config.get("search") or {}).get("enabled")),
        "other_settings": _settings_rows(rest),
        "split": ctx.config.get("split") or {},
        "predictors": _predictors(),
        "importance_figures": importance,
        "performance_figures": performance,
        "facts": facts,
        "attrition": _attrition_rows(ctx),
        "characteristics": _characteristics_rows(ctx),
        "tripod": tripod_answers(facts),
    }


def render_model_card(
    ctx: ModelCardContext, *, markdown_plot_prefix: str = "../plots/"
) -> tuple[str, str]:
    """Render the model card of one model version as Markdown and HTML.

    Both come from one template (``templates/model_card.j2``) rendered in the
    Markdown and the HTML dialect of :mod:`.render`.

    Args:
        ctx: what to show.
        markdown_plot_prefix: prefix of the plot file names in Markdown image
            links. The default matches the MLflow layout of
            :func:`.log_evidence` (card in ``model_card/``,
            plots in ``plots/``). The HTML embeds the PNG bytes instead.

    Returns:
        (markdown, html). The HTML is a complete, self-contained page.
    """
    context = _context(ctx, markdown_plot_prefix)
    return (
        render_markdown("model_card.j2", **context),
        render_html("model_card.html.j2", **context),
    )


__all__ = [
    "ANTICIPATED_C_STATISTIC",
    "PLOT_CAPTIONS",
    "SECTION_HEADINGS",
    "ModelCardContext",
    "card_facts",
    "follow_up_statement",
    "render_model_card",
    "sample_size_of",
]
