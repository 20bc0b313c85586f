"""The evaluation report of one run as a self-contained HTML page a clinician can read.

:func:`render_evaluation_report` lays out what a run already computed — the report
dict of :func:`.report.build_report` (every number, intervals included), the PNG
plots of :func:`.plots.save_all_plots` and the model card of
:func:`.model_card.render_model_card` — under fixed headings
(:data:`REPORT_SECTIONS`), so the reports of two runs read side by side. The page is
the template ``templates/evaluation_report.html.j2`` of :mod:`.render`; this module
only gathers what it shows.

The page has inline CSS and the plots as base64 ``data:`` URIs: no script, no
external ``src`` or ``href``, so it opens offline from the MLflow artifact view or
as an e-mail attachment. Every piece of text from outside the template is
HTML-escaped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from training.evaluation.metrics import metric_view
from training.evaluation.model_card import PLOT_CAPTIONS
from training.evaluation.render import figure, fmt_gate, render_html

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
    gate = fmt_gate(report["settings"]["threshold"])
    intervals = report.get("intervals") or {}
    found = intervals.get("metrics") or {}
    rows = []
    for spec in metric_view("headline"):
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
    figures = [
        figure(name, plots[name], PLOT_CAPTIONS.get(name, name))
        for name in PLOT_ORDER
        if name in plots and Path(plots[name]).is_file()
    ]
    # The card is this package's own rendered HTML (escaped when it was made).
    card = Markup(embed_model_card(model_card_html)) if model_card_html else None
    return render_html(
        "evaluation_report.html.j2",
        title=title,
        report=report,
        details=[list(row) for row in details],
        headline=headline_table(report).to_dict("records"),
        figures=figures,
        card=card,
    )


__all__ = [
    "REPORT_SECTIONS",
    "embed_model_card",
    "headline_table",
    "render_evaluation_report",
    "run_details",
]
