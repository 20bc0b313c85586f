"""The evaluation report of one run as a self-contained HTML page a clinician can read.

:func:`render_evaluation_report` lays out what a run already computed — the report
dict of :func:`.report.build_report`, the PNG plots of
:func:`.plots.save_all_plots` and the model card of
:func:`.model_card.render_model_card` — under fixed headings
(:data:`REPORT_SECTIONS`), so the reports of two runs read side by side. It adds
only confidence intervals: Wilson intervals for the proportions at the gate and
percentile-bootstrap intervals for the scores that have no closed form here
(:func:`headline_table`), and the count of patients whose uncertainty band straddles
the gate (:func:`gate_summary`).

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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

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

BOOTSTRAPS = 200
"""Resamples behind each bootstrap interval (about 1 s at 5,000 patients)."""

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

# (label, key in the report's summary, "pct" or "num", interval method)
_HEADLINE: tuple[tuple[str, str, str, str], ...] = tuple(
    (spec.label, spec.key, spec.fmt, spec.interval)
    for spec in m.metric_view("headline")
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


def _gate_row(report: Mapping[str, Any]) -> Mapping[str, Any] | None:
    gate = float(report["settings"]["threshold"])
    return next(
        (
            r
            for r in report.get("threshold_table") or []
            if math.isclose(float(r["threshold"]), gate)
        ),
        None,
    )


def _wilson_counts(report: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """(successes, trials) behind each proportion with a Wilson interval."""
    summary = report.get("summary") or {}
    row = _gate_row(report)
    out: dict[str, tuple[float, float]] = {}
    if summary.get("n") is not None and summary.get("events") is not None:
        out["prevalence"] = (summary["events"], summary["n"])
    if row is not None:
        tp, fp, tn, fn = (float(row[k]) for k in ("tp", "fp", "tn", "fn"))
        out |= {
            "sens_at_gate": (tp, tp + fn),
            "spec_at_gate": (tn, tn + fp),
            "ppv_at_gate": (tp, tp + fp),
            "npv_at_gate": (tn, tn + fn),
            "share_above_gate": (tp + fp, tp + fp + tn + fn),
        }
    return out


BOOTSTRAP_KEYS: tuple[str, ...] = (
    "auprc",
    "brier",
    "brier_scaled",
    "mean_predicted",
    "cal_intercept",
    "cal_slope",
    "nb_at_gate",
)
"""Scores given a percentile-bootstrap interval by :func:`bootstrap_intervals`."""


def _resample_stats(y: np.ndarray, p: np.ndarray, threshold: float) -> list[float]:
    intercept, slope = m.calibration_slope(y, p)
    return [
        m.auprc(y, p),
        m.brier(y, p),
        m.brier_scaled(y, p),
        float(p.mean()),
        intercept,
        slope,
        m.net_benefit(y, p, threshold),
    ]


def bootstrap_intervals(
    y: ArrayLike,
    p: ArrayLike,
    *,
    threshold: float,
    n_boot: int = BOOTSTRAPS,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap intervals of the scores without a closed-form interval.

    Patients are resampled with replacement; a resample with one outcome class
    only is skipped, and one where a score is undefined (NaN, e.g. a calibration
    slope that does not converge) is left out of that score's interval.

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        threshold: the gate of the net benefit.
        n_boot: resamples.
        seed: seed of the resampling.
        level: confidence level.

    Returns:
        key → (low, high) for each of :data:`BOOTSTRAP_KEYS`; (NaN, NaN) when no
        resample gave a value.
    """
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    rng = np.random.default_rng(seed)
    draws = []
    with warnings.catch_warnings():
        # A resample whose calibration slope does not converge gives NaN (with a
        # RuntimeWarning); NaN draws are left out of the interval below.
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(n_boot):
            idx = rng.integers(0, len(y_arr), len(y_arr))
            yb = y_arr[idx]
            if yb.min() == yb.max():
                continue
            try:
                draws.append(_resample_stats(yb, p_arr[idx], threshold))
            except (ValueError, FloatingPointError):
                continue
    table = np.asarray(draws, dtype=float).reshape(-1, len(BOOTSTRAP_KEYS))
    alpha = (1.0 - level) / 2.0
    out = {}
    for key, column in zip(BOOTSTRAP_KEYS, table.T, strict=True):
        values = column[np.isfinite(column)]
        out[key] = (
            (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha)))
            if values.size
            else (math.nan, math.nan)
        )
    return out


def headline_table(
    report: Mapping[str, Any],
    y: ArrayLike | None = None,
    p: ArrayLike | None = None,
    *,
    n_boot: int = BOOTSTRAPS,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """The headline metrics of a report with a 95 % interval each.

    AUROC: the report's DeLong interval. Proportions (observed rate, sensitivity,
    specificity, PPV, NPV and share above the gate): Wilson intervals from the
    report's counts. Scores (AUPRC, Brier, calibration intercept and slope, mean
    predicted risk, net benefit): percentile bootstrap of (y, p) when given, else
    none. ICI has no interval here; the calibration plot's band shows its spread.

    Args:
        report: from :func:`.report.build_report` (or its JSON).
        y: the observed outcomes the report was built from.
        p: the predicted risks the report was built from.
        n_boot: bootstrap resamples.
        seed: seed of the bootstrap.
        level: confidence level of the Wilson and bootstrap intervals.

    Returns:
        One row per measure: measure, key, value, ci_low, ci_high, ci_method,
        format ("pct" for proportions, "num" otherwise). Missing values are NaN.
    """
    summary = report.get("summary") or {}
    gate = float(report["settings"]["threshold"])
    counts = _wilson_counts(report)
    boot: dict[str, tuple[float, float]] = {}
    if y is not None and p is not None:
        boot = bootstrap_intervals(
            y, p, threshold=gate, n_boot=n_boot, seed=seed, level=level
        )
    rows = []
    for label, key, fmt, method in _HEADLINE:
        value = summary.get(key)
        low = high = math.nan
        if method == "DeLong":
            disc = report.get("discrimination") or {}
            low, high = disc.get("auroc_ci_low"), disc.get("auroc_ci_high")
        elif method == "Wilson" and key in counts:
            low, high = m.wilson_interval(*counts[key], level=level)
        elif method == "bootstrap" and key in boot:
            low, high = boot[key]
        else:
            method = "none"
        rows.append(
            {
                "measure": label.replace("the gate", f"{gate:g}"),
                "key": key,
                "value": math.nan if value is None else float(value),
                "ci_low": math.nan if low is None else float(low),
                "ci_high": math.nan if high is None else float(high),
                "ci_method": method
                if method != "bootstrap"
                else f"bootstrap ({n_boot})",
                "format": fmt,
            }
        )
    return pd.DataFrame(rows)


def gate_summary(
    p: ArrayLike,
    band_low: ArrayLike | None = None,
    band_high: ArrayLike | None = None,
    *,
    true_risk: ArrayLike | None = None,
    threshold: float,
) -> pd.DataFrame:
    """Patients on each side of the gate, split by whether their band straddles it.

    Above the gate is ``p > threshold``; a band straddles it when
    ``band_low <= threshold < band_high`` (the rule of the report and the service,
    whose straddling patients are flagged ``needs_review``).

    Args:
        p: predicted 2-year risks.
        band_low: lower ends of the uncertainty bands, or None (no band).
        band_high: upper ends of the uncertainty bands, or None.
        true_risk: the true risks (synthetic data), to count who truly is above.
        threshold: the gate.

    Returns:
        Rows "above the gate" / "at or below the gate", each split into "band
        clear of the gate" and "band straddles the gate" when there is a band,
        then a "total" row; columns group, n, share and, with ``true_risk``,
        n_true_above (patients in the row whose true risk is above the gate).
    """
    p_arr = np.asarray(p, dtype=float)
    above = p_arr > threshold
    groups: list[tuple[str, np.ndarray]]
    if band_low is None or band_high is None:
        groups = [("above the gate", above), ("at or below the gate", ~above)]
    else:
        low = np.asarray(band_low, dtype=float)
        high = np.asarray(band_high, dtype=float)
        straddles = (low <= threshold) & (threshold < high)
        groups = [
            ("above the gate, band clear of the gate", above & ~straddles),
            ("above the gate, band straddles the gate", above & straddles),
            ("at or below the gate, band straddles the gate", ~above & straddles),
            ("at or below the gate, band clear of the gate", ~above & ~straddles),
        ]
    groups.append(("total", np.ones_like(above)))
    truth = None if true_risk is None else np.asarray(true_risk, float) > threshold
    rows = []
    for name, mask in groups:
        row: dict[str, Any] = {
            "group": name,
            "n": int(mask.sum()),
            "share": float(mask.mean()) if len(mask) else math.nan,
        }
        if truth is not None:
            row["n_true_above"] = int((mask & truth).sum())
        rows.append(row)
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


def _gate_html(report: Mapping[str, Any], gate_table: pd.DataFrame | None) -> str:
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
    if gate_table is not None:
        out.append("<h3>Who sits near the gate</h3>")
        out.append(
            "<p>A patient whose uncertainty band straddles the gate cannot be placed "
            "on one side of it with confidence: the service flags such patients "
            "for review instead of passing or rejecting them.</p>"
        )
        has_truth = "n_true_above" in gate_table
        header = ["Patients", "n", "Share"]
        header += [f"Of them, true risk > {gate:g}"] if has_truth else []
        out.append(
            _table(
                header,
                [
                    [r["group"], fmt_count(r["n"]), fmt_pct(r["share"])]
                    + ([fmt_count(r["n_true_above"])] if has_truth else [])
                    for r in gate_table.to_dict("records")
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
    y: ArrayLike | None = None,
    p: ArrayLike | None = None,
    band: tuple[ArrayLike, ArrayLike] | None = None,
    true_risk: ArrayLike | None = None,
    model_card_html: str | None = None,
    n_boot: int = BOOTSTRAPS,
) -> str:
    """One run's evaluation as a complete, self-contained HTML page.

    Args:
        report: from :func:`.report.build_report`.
        title: the page title (h1).
        details: (label, value) rows of the "Run" section (:func:`run_details`).
        plots: plot name (file stem: roc, calibration, ...) → PNG path.
        y: observed outcomes behind the report (bootstrap intervals).
        p: predicted risks behind the report (bootstrap intervals, gate counts).
        band: (low, high) uncertainty band of each patient, if the model has one.
        true_risk: the true risks, if known (synthetic data).
        model_card_html: the model card page of the model, embedded without plots.
        n_boot: bootstrap resamples.

    Returns:
        The HTML text.
    """
    plots = plots or {}
    gate_table = None
    if p is not None:
        gate_table = gate_summary(
            p,
            band[0] if band is not None else None,
            band[1] if band is not None else None,
            true_risk=true_risk,
            threshold=float(report["settings"]["threshold"]),
        )
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
        "Headline metrics": _headline_html(headline_table(report, y, p, n_boot=n_boot)),
        "At the gate": _gate_html(report, gate_table),
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
    "BOOTSTRAPS",
    "BOOTSTRAP_KEYS",
    "REPORT_SECTIONS",
    "bootstrap_intervals",
    "embed_model_card",
    "gate_summary",
    "headline_table",
    "render_evaluation_report",
    "run_details",
]
