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
:func:`data_schema.model_features`, never listed by hand. Items follow Collins et
al., TRIPOD+AI, BMJ 2024;385:e078378 (clinical.md §7).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from data_schema import SMALL_CELL, feature_description, field_specs, model_features
from training.evaluation.render import (
    NONE_TEXT,
    Figure,
    figure,
    fmt_num,
    render_html,
    render_markdown,
)

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
        gate_method: one sentence on how the gate decides, None without a gate.
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
    gate_method: str | None
    plots: dict[str, Path] = field(default_factory=dict)
    created: date = field(default_factory=date.today)
    selected_hyperparameters: dict[str, Any] | None = None


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


def _context(ctx: ModelCardContext, plot_prefix: str) -> dict[str, Any]:
    """Everything the card template shows, formatted from the context."""
    gate = _gate(ctx)
    model_cfg = ctx.config.get("model")
    # tracking names the MLflow store, not the model
    rest = {k: v for k, v in ctx.config.items() if k not in ("model", "tracking")}
    importance, performance = _figures(ctx, plot_prefix)
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
        "tripod_covered": [list(row) for row in TRIPOD_COVERED],
        "tripod_not_covered": TRIPOD_NOT_COVERED,
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
    "PLOT_CAPTIONS",
    "SECTION_HEADINGS",
    "ModelCardContext",
    "render_model_card",
]
