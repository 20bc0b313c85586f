"""The evaluation report of one run as a self-contained HTML page a clinician can read.

:func:`render_evaluation_report` lays out what a run already computed — the report
dict of :func:`.report.build_report`, the PNG plots of
:func:`.plots.save_all_plots` and the model card of
:func:`.model_card.render_model_card` — under fixed headings
(:data:`REPORT_SECTIONS`), so the reports of two runs read side by side. Every
number it shows is in the report, intervals included; it computes none.

The page has inline CSS and the plots as base64 ``data:`` URIs: no script, no
external ``src`` or ``href``, so it opens offline from the MLflow artifact view or
as an e-mail attachment. Every piece of text from outside this module is
HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from data_schema import SMALL_CELL
from training.evaluation import metrics as m
from training.evaluation.model_card import (
    PLOT_CAPTIONS,
    fmt_count,
    fmt_num,
    fmt_pct,
    subgroup_table,
    threshold_table,
)

REPORT_SECTIONS: tuple[str, ...] = (
    "Run",
    "Headline metrics",
    "At the gate",
    "Calibration",
    "Plots",
    "Subgroups",
    "Comparison with the true risk (oracle)",
    "Model card",
)
"""Level-2 headings of every report, in order."""

PLOT_ORDER: tuple[str, ...] = (
    "roc",
    "calibration",
    "decision_curve",
    "risk_histogram",
    "feature_importance",
)

# Tags shown in the "Run" section, in this order (registry.tracking.RUN_TAG_KEYS
# and the per-kind extras a reader asks for first).
_DETAIL_TAGS: tuple[tuple[str, str], ...] = (
    ("run_kind", "Run kind"),
    ("registered_model", "Registered model"),
    ("model_version", "Model version"),
    ("model_family", "Model family"),
    ("data_source", "Data source"),
    ("data_digest", "Data digest (MLflow)"),
    ("test_digest", "Test-set digest (MLflow)"),
    ("cohort_definition", "Cohort definition"),
    ("git_commit", "Git commit"),
    ("config_hash", "Config hash"),
    ("gate_threshold", "Gate"),
)


# ── numbers ──────────────────────────────────────────────────────────────────


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def headline_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """The headline metrics of a report with a 95 % interval each.

    The rows are the ``headline`` view of :data:`.metrics.METRICS`; the intervals
    are the report's ``intervals`` section (:mod:`.intervals`): DeLong for AUROC,
    Wilson for the proportions, percentile bootstrap for the other scores, none
    for ICI. A report without that section (or without bootstrap resamples) gives
    those rows no interval.

    Args:
        report: from :func:`.report.build_report` (or its JSON).

    Returns:
        One row per measure: measure, key, value, ci_low, ci_high, ci_method,
        format ("pct" for proportions, "num" otherwise). Missing values are NaN.
    """
    summary = report.get("summary") or {}
    gate = f"{float(report['settings']['threshold']):g}"
    intervals = report.get("intervals") or {}
    found = intervals.get("metrics") or {}
    rows = []
    for spec in m.metric_view("headline"):
        entry = found.get(spec.key) or {}
        method = entry.get("method", "none")
        if method == "bootstrap":
            method = f"bootstrap ({intervals['n_boot']})"
        rows.append(
            {
                "measure": spec.label.replace("the gate", gate),
                "key": spec.key,
                "value": _float(summary.get(spec.key)),
                "ci_low": _float(entry.get("low")),
                "ci_high": _float(entry.get("high")),
                "ci_method": method,
                "format": spec.fmt,
            }
        )
    return pd.DataFrame(rows)


def run_details(
    run_id: str, run_name: str | None, tags: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(label, value) rows of the "Run" section from a run's id, name and tags."""
    rows = [("MLflow run", f"{run_name or '—'} ({run_id})")]
    rows += [(label, tags[key]) for key, label in _DETAIL_TAGS if tags.get(key)]
    return rows


# ── HTML ─────────────────────────────────────────────────────────────────────

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:62rem;
margin:2rem auto;padding:0 1rem;color:#1a1a1a;line-height:1.45}
h1{font-size:1.6rem;border-bottom:2px solid #0072B2;padding-bottom:.3rem}
h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
h3,h4,h5{margin-top:1.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eef4fa}
tr.gate td{background:#fdf1f7;font-weight:600}
figure{margin:1rem 0}
img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.85rem;color:#555}
.notice{border-left:4px solid #D55E00;background:#fff6ef;padding:.5rem .8rem}
.card{border:1px solid #ccc;border-radius:4px;padding:0 1rem;background:#fcfcfc}
""".strip()

_esc = html.escape


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    gate_rows: frozenset[int] = frozenset(),
) -> str:
    head = "".join(f"<th>{_esc(str(h))}</th>" for h in header)
    body = "".join(
        ('<tr class="gate">' if i in gate_rows else "<tr>")
        + "".join(f"<td>{_esc(str(c))}</td>" for c in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _fmt(value: Any, kind: str) -> str:
    return fmt_pct(value) if kind == "pct" else fmt_num(value)


def _headline_html(table: pd.DataFrame) -> str:
    rows = []
    for r in table.itertuples():
        ci = "—"
        if math.isfinite(r.ci_low) and math.isfinite(r.ci_high):
            # "to", not a dash: a negative bound would read as a minus sign.
            ci = f"{_fmt(r.ci_low, r.format)} to {_fmt(r.ci_high, r.format)}"
        rows.append([r.measure, _fmt(r.value, r.format), ci, r.ci_method])
    return _table(["Measure", "Value", "95% CI", "Interval"], rows)


def _gate_html(report: Mapping[str, Any]) -> str:
    gate = float(report["settings"]["threshold"])
    out = [
        f"<p>The trial admits a patient whose predicted 2-year risk is higher than "
        f"{gate:g} (p &gt; {gate:g}). Every threshold of the table is read the same "
        "way; the gate's row is highlighted.</p>"
    ]
    header, rows = threshold_table(report)
    gate_rows = frozenset(
        i
        for i, r in enumerate(report.get("threshold_table") or [])
        if math.isclose(float(r["threshold"]), gate)
    )
    out.append(_table(header, rows, gate_rows))
    utility = report.get("clinical_utility") or {}
    out.append(
        f"<p>Net benefit at the gate (true positives per patient screened): model "
        f"{_esc(fmt_num(utility.get('nb_at_gate')))}, admit everyone "
        f"{_esc(fmt_num(utility.get('nb_treat_all_at_gate')))}, admit nobody 0.</p>"
    )
    gate_table = report.get("gate_summary")
    if gate_table:
        out.append("<h3>Who sits near the gate</h3>")
        out.append(
            "<p>A patient whose uncertainty band straddles the gate cannot be placed "
            "on one side of it with confidence: the service flags such patients "
            "for review instead of passing or rejecting them.</p>"
        )
        has_truth = any(r["n_true_above"] is not None for r in gate_table)
        header = ["Patients", "n", "Share"]
        header += [f"Of them, true risk > {gate:g}"] if has_truth else []
        out.append(
            _table(
                header,
                [
                    [r["group"], fmt_count(r["n"]), fmt_pct(r["share"])]
                    + ([fmt_count(r["n_true_above"])] if has_truth else [])
                    for r in gate_table
                ],
            )
        )
    return "\n".join(out)


def _calibration_html(report: Mapping[str, Any]) -> str:
    cal = report.get("calibration") or {}
    rows = [
        ["Calibration-in-the-large (log-odds)", fmt_num(cal.get("citl")), "0"],
        ["Observed / expected", fmt_num(cal.get("oe_ratio")), "1"],
        ["Calibration intercept (log-odds)", fmt_num(cal.get("cal_intercept")), "0"],
        ["Calibration slope", fmt_num(cal.get("cal_slope")), "1"],
        ["ICI / E50 / E90 (probability)", "", "0"],
    ]
    rows[-1][1] = " / ".join(fmt_num(cal.get(k)) for k in ("ici", "e50", "e90"))
    out = [_table(["Measure", "Value", "Ideal"], rows)]
    curve = cal.get("curve") or []
    if curve:
        out.append(
            _table(
                ["Tenth of p", "n", "Mean predicted", "Observed", "Observed 95% CI"],
                [
                    [
                        fmt_num(None if r.get("bin") is None else r["bin"] + 1),
                        fmt_count(r.get("n")),
                        fmt_pct(r.get("mean_predicted")),
                        fmt_pct(r.get("observed")),
                        f"{fmt_pct(r.get('ci_low'))}–{fmt_pct(r.get('ci_high'))}",
                    ]
                    for r in curve
                ],
            )
        )
    return "\n".join(out)


def _subgroups_html(report: Mapping[str, Any]) -> str:
    settings = report.get("settings") or {}
    min_cell = int(settings.get("min_cell", SMALL_CELL))
    gate = float(settings["threshold"])
    header, rows = subgroup_table(report, min_cell, gate)
    return (
        f"<p>By sex and age band (years). A group with fewer than {min_cell} "
        "patients, events or non-events is suppressed.</p>" + _table(header, rows)
    )


def _oracle_html(report: Mapping[str, Any]) -> str:
    oracle = report.get("oracle")
    if not oracle:
        return "<p>Not available: the true risk of these patients is unknown.</p>"
    summary = report.get("summary") or {}
    gate = float(report["settings"]["threshold"])
    keys = (
        ("AUROC", "auroc", fmt_num),
        ("Brier score", "brier", fmt_num),
        ("Calibration slope", "cal_slope", fmt_num),
        ("ICI", "ici", fmt_num),
        (f"Sensitivity at {gate:g}", "sens_at_gate", fmt_pct),
        (f"PPV at {gate:g}", "ppv_at_gate", fmt_pct),
        (f"Share above {gate:g}", "share_above_gate", fmt_pct),
        (f"Net benefit at {gate:g}", "nb_at_gate", fmt_num),
    )
    return (
        "<p>Synthetic data: each patient's true 2-year risk is known. Scored like a "
        "model on the same outcomes, it is the best any model could do here.</p>"
        + _table(
            ["Measure", "Model", "True risk (oracle)"],
            [
                [label, fmt(summary.get(k)), fmt(oracle.get(k))]
                for label, k, fmt in keys
            ],
        )
    )


_BODY = re.compile(r"<body>(.*)</body>", re.S)
_FIGURE = re.compile(r"<figure>.*?</figure>", re.S)


def embed_model_card(card_html: str) -> str:
    """The body of a model card page, plots removed and headings moved down a level
    twice (h1 → h3), for the report's "Model card" section."""
    found = _BODY.search(card_html)
    body = found.group(1) if found else card_html
    body = _FIGURE.sub("", body)
    for level in (3, 2, 1):
        body = body.replace(f"<h{level}>", f"<h{level + 2}>")
        body = body.replace(f"</h{level}>", f"</h{level + 2}>")
    return f'<div class="card">{body}</div>'


def render_evaluation_report(
    report: Mapping[str, Any],
    *,
    title: str,
    details: Sequence[tuple[str, str]] = (),
    plots: Mapping[str, Path] | None = None,
    model_card_html: str | None = None,
) -> str:
    """One run's evaluation as a complete, self-contained HTML page.

    Args:
        report: from :func:`.report.build_report`; every number shown is in it.
        title: the page title (h1).
        details: (label, value) rows of the "Run" section (:func:`run_details`).
        plots: plot name (file stem: roc, calibration, ...) → PNG path; a plot
            whose file is missing is left out.
        model_card_html: the model card page of the model, embedded without plots.

    Returns:
        The HTML text.
    """
    plots = plots or {}
    summary = report.get("summary") or {}
    sections = {
        "Run": (
            '<p class="notice">Research screening support for trial NCT05585671, not '
            "a diagnostic device. A clinician decides eligibility.</p>"
            + _table(
                ["Item", "Value"],
                [
                    *details,
                    ("Patients evaluated", fmt_count(summary.get("n"))),
                    ("Events (LN within 2 years)", fmt_count(summary.get("events"))),
                ],
            )
        ),
        "Headline metrics": _headline_html(headline_table(report)),
        "At the gate": _gate_html(report),
        "Calibration": _calibration_html(report),
        "Plots": "\n".join(
            [
                _figure(plots[name], PLOT_CAPTIONS.get(name, name))
                for name in PLOT_ORDER
                if name in plots and Path(plots[name]).is_file()
            ]
            or ["<p>No plots were made for this run.</p>"]
        ),
        "Subgroups": _subgroups_html(report),
        "Comparison with the true risk (oracle)": _oracle_html(report),
        "Model card": embed_model_card(model_card_html)
        if model_card_html
        else "<p>No model card is attached to this run.</p>",
    }
    body = [f"<h1>{_esc(title)}</h1>"]
    for heading in REPORT_SECTIONS:
        body.append(f"<h2>{_esc(heading)}</h2>\n{sections[heading]}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_esc(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


__all__ = [
    "REPORT_SECTIONS",
    "embed_model_card",
    "headline_table",
    "render_evaluation_report",
    "run_details",
]
