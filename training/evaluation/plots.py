"""Evaluation plots of the 2-year lupus nephritis risk model, saved as PNG files.

Each function draws on its own :class:`matplotlib.figure.Figure` with an Agg canvas
and returns the path it wrote. Nothing touches pyplot's global state or selects a
backend at import, so importing this module from a server or a test changes nothing
(house style: no import-time side effects); matplotlib itself is imported only when
a plot is drawn.

Numbers come from :mod:`.metrics` and :mod:`.report`; the plots add
no metric of their own except the bootstrap band of the calibration curve.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from data_schema import feature_description
from training.evaluation import metrics as m
from training.evaluation.intervals import bootstrap_draws, percentile_bounds

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RISK_AXIS = "Predicted 2-year risk of new-onset LN (probability)"

# Colours that stay distinguishable for the common colour-vision deficiencies
# (Okabe & Ito palette).
_MODEL = "#0072B2"
_ORACLE = "#D55E00"
_ALL = "#009E73"
_GREY = "#555555"
_GATE = "#CC79A7"

LOWESS_FRAC = 2.0 / 3.0
"""LOWESS span, the default of :func:`.metrics.smoothed_calibration`."""

CALIBRATION_GRID = 60
"""Points at which the smoothed calibration curve and its band are evaluated."""

CALIBRATION_BOOTSTRAPS = 200
"""Bootstrap resamples behind the 95 % band of the smoothed calibration curve."""


def _figure(figsize: tuple[float, float] = (6.4, 5.2), **kwargs: Any) -> Figure:
    """A Figure bound to an Agg canvas, independent of pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _gate_line(ax: Any, threshold: float, label: bool = True) -> None:
    ax.axvline(
        threshold,
        color=_GATE,
        linestyle="--",
        linewidth=1.2,
        label=f"{threshold:g} trial gate" if label else None,
    )


# ── ROC ──────────────────────────────────────────────────────────────────────


def plot_roc(
    y: ArrayLike,
    p: ArrayLike,
    out: str | Path,
    true_risk: ArrayLike | None = None,
    *,
    threshold: float,
) -> Path:
    """ROC curve of the model (and of the true risk when known), AUROC in the legend.

    The point of the 0.5 gate is marked on each curve: at a 2 % share above the
    gate it sits near the origin, which is the clinically relevant corner.

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        out: PNG path to write.
        true_risk: the synthetic cohort's true risks (the oracle), if known.
        threshold: the gate whose operating point (p > threshold) is marked.

    Returns:
        The path written.
    """
    fig = _figure((5.6, 5.4))
    ax = fig.add_subplot()
    curves = [("Model", p, _MODEL, "-")]
    if true_risk is not None:
        curves.append(("True risk (oracle)", true_risk, _ORACLE, "--"))
    for name, score, colour, style in curves:
        auc, low, high = m.auroc_ci(y, score)
        fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(score, dtype=float))
        ax.plot(
            fpr,
            tpr,
            color=colour,
            linestyle=style,
            label=f"{name}: AUROC {auc:.3f} ({low:.3f}–{high:.3f})",
        )
        gate = m.threshold_metrics(y, score, threshold)
        ax.plot(
            1.0 - gate["specificity"],
            gate["sensitivity"],
            marker="o",
            color=colour,
            markeredgecolor="black",
            linestyle="none",
        )
    ax.plot([0, 1], [0, 1], color=_GREY, linewidth=0.8, linestyle=":", label="Chance")
    ax.plot(
        [],
        [],
        marker="o",
        color="white",
        markeredgecolor="black",
        linestyle="none",
        label=f"Operating point at p > {threshold:g}",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("1 − specificity (false-positive rate)")
    ax.set_ylabel("Sensitivity (true-positive rate)")
    ax.set_title("ROC: 2-year new-onset lupus nephritis")
    ax.legend(
        loc="lower right", fontsize=8, title="AUROC (95 % DeLong CI)", title_fontsize=8
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


# ── calibration ──────────────────────────────────────────────────────────────


def _smooth_on_grid(y: np.ndarray, p: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """LOWESS calibration curve of (y, p) evaluated at ``grid`` points.

    The same smoother, span and clipping as
    :func:`.metrics.smoothed_calibration` (which reports it at every p),
    evaluated only at the grid: the bootstrap band refits it 200 times, and at
    20,000 patients evaluating at every p would take tens of seconds.
    """
    order = np.argsort(p, kind="stable")
    xs, ys = p[order], y[order]
    n = len(xs)
    k = min(n, max(2, math.ceil(LOWESS_FRAC * n)))
    return np.clip(m.lowess_at(xs, ys, grid, k), 0.0, 1.0)


def calibration_band(
    y: ArrayLike,
    p: ArrayLike,
    grid: ArrayLike,
    *,
    n_boot: int = CALIBRATION_BOOTSTRAPS,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Smoothed calibration curve on a grid with a percentile bootstrap band.

    Each resample draws N patients with replacement, refits the LOWESS curve of
    :func:`.metrics.smoothed_calibration` and reads it off at the fixed
    grid; the band is the pointwise (1 ± level)/2 quantiles over resamples (Efron &
    Tibshirani, An Introduction to the Bootstrap, 1993, ch. 13). A grid point beyond
    a resample's range of p takes the curve's end value there.

    Args:
        y: observed outcomes, 0/1.
        p: predicted risks in [0, 1].
        grid: predicted risks at which to read the curve.
        n_boot: bootstrap resamples.
        level: pointwise coverage of the band.
        seed: seed of the resampling.

    Returns:
        (curve, low, high) on the grid, each a probability.
    """
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    g = np.asarray(grid, dtype=float)
    curve = _smooth_on_grid(y_arr, p_arr, g)
    draws = bootstrap_draws(
        y_arr,
        p_arr,
        lambda yb, pb: _smooth_on_grid(yb, pb, g),
        width=len(g),
        n_boot=n_boot,
        seed=seed,
    )
    low, high = percentile_bounds(draws, level)
    return curve, low, high


def _draw_deciles(ax: Any, bins: pd.DataFrame) -> None:
    """Deciles of p as points with their Wilson 95 % intervals."""
    # Wilson bounds of an observed 0 or 1 can sit 1e-17 on the wrong side of it,
    # and matplotlib rejects negative error bars.
    yerr = np.clip(
        [bins["observed"] - bins["ci_low"], bins["ci_high"] - bins["observed"]],
        0.0,
        None,
    )
    ax.errorbar(
        bins["mean_predicted"],
        bins["observed"],
        yerr=yerr,
        fmt="o",
        color="black",
        markersize=4,
        capsize=2,
        linewidth=0.8,
        label="Deciles of p (Wilson 95 % CI)",
    )


def _draw_true_risk_curve(ax: Any, y: np.ndarray, true_risk: np.ndarray) -> None:
    """The true risk's own LOWESS calibration curve, where it has patients."""
    t_lo, t_hi = np.quantile(true_risk, [0.005, 0.995])
    t_grid = np.linspace(t_lo, t_hi, CALIBRATION_GRID)
    ax.plot(
        t_grid,
        _smooth_on_grid(y, true_risk, t_grid),
        color=_ORACLE,
        linestyle="--",
        label="True risk (oracle), LOWESS",
    )


def _draw_risk_rug(rug: Any, p: np.ndarray, threshold: float) -> None:
    """The distribution of p under the calibration panel (log count axis)."""
    rug.hist(p, bins=np.linspace(0, 1, 101), color=_MODEL, alpha=0.7)
    rug.set_yscale("log")
    _gate_line(rug, threshold, label=False)
    rug.set_xlabel(RISK_AXIS)
    rug.set_ylabel("Patients\n(log)")
    rug.grid(alpha=0.3)


def plot_calibration(
    y: ArrayLike,
    p: ArrayLike,
    out: str | Path,
    true_risk: ArrayLike | None = None,
    *,
    threshold: float,
    n_boot: int = CALIBRATION_BOOTSTRAPS,
    seed: int = 0,
) -> Path:
    """Calibration plot: LOWESS curve with a 95 % bootstrap band, binned points.

    Upper panel: the smoothed observed risk against the predicted risk with its
    bootstrap band (:func:`calibration_band`), deciles of p as points with Wilson
    95 % intervals (:func:`.metrics.calibration_curve_table`), the ideal
    diagonal, the 0.5 gate, and, on synthetic data, the smoothed curve of the true
    risk (the best calibration any model could show on these outcomes). The curve
    is drawn between the 0.5th and 99.5th percentiles of p, where there are patients
    to estimate it. Lower panel: the distribution of p (log count axis).

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        out: PNG path to write.
        true_risk: true risks (oracle), if known.
        threshold: the gate drawn as a vertical line.
        n_boot: bootstrap resamples of the band.
        seed: seed of the bootstrap.

    Returns:
        The path written.
    """
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    lo, hi = np.quantile(p_arr, [0.005, 0.995])
    grid = np.linspace(lo, hi, CALIBRATION_GRID)
    curve, band_lo, band_hi = calibration_band(
        y_arr, p_arr, grid, n_boot=n_boot, seed=seed
    )
    bins = m.calibration_curve_table(y_arr, p_arr, n_bins=10)
    top = float(max(hi, bins["ci_high"].max(), threshold + 0.05)) * 1.05
    top = min(1.0, top)

    fig = _figure((6.4, 6.4))
    ax, rug = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [4, 1], "hspace": 0.08}
    )
    ax.plot([0, 1], [0, 1], color=_GREY, linewidth=0.8, linestyle=":", label="Ideal")
    ax.fill_between(
        grid,
        band_lo,
        band_hi,
        color=_MODEL,
        alpha=0.2,
        label=f"95 % bootstrap band ({n_boot} resamples)",
    )
    ax.plot(grid, curve, color=_MODEL, label="Model, LOWESS")
    _draw_deciles(ax, bins)
    if true_risk is not None:
        _draw_true_risk_curve(ax, y_arr, np.asarray(true_risk, dtype=float))
    _gate_line(ax, threshold)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_ylabel("Observed 2-year LN rate (proportion)")
    ax.set_title("Calibration: predicted vs observed 2-year LN risk")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    _draw_risk_rug(rug, p_arr, threshold)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.94, bottom=0.09)
    return _save(fig, out)


# ── decision curve ───────────────────────────────────────────────────────────


def _decision_table(report_or_table: Any) -> pd.DataFrame:
    if isinstance(report_or_table, pd.DataFrame):
        return report_or_table
    if isinstance(report_or_table, Mapping):
        rows = report_or_table["clinical_utility"]["decision_curve"]
    else:
        rows = report_or_table
    return pd.DataFrame(list(rows))


def plot_decision_curve(
    report_or_table: Mapping[str, Any] | pd.DataFrame | Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    threshold: float,
) -> Path:
    """Decision curve: net benefit of the model, the oracle, treat-all and treat-none.

    Net benefit (Vickers & Elkin 2006) is in true positives per patient screened;
    the y axis is cut a little below 0 because treat-all falls steeply at high
    thresholds and would otherwise flatten the curves that matter.

    Args:
        report_or_table: a report from :func:`.report.build_report`, or its
            ``decision_curve`` rows (list of dicts or DataFrame with threshold,
            net_benefit_model, net_benefit_all, net_benefit_none and optionally
            net_benefit_oracle).
        out: PNG path to write.

    Returns:
        The path written.
    """
    table = _decision_table(report_or_table)
    t = table["threshold"].to_numpy(float)
    model = table["net_benefit_model"].to_numpy(float)
    treat_all = table["net_benefit_all"].to_numpy(float)
    oracle = None
    if "net_benefit_oracle" in table and table["net_benefit_oracle"].notna().any():
        oracle = table["net_benefit_oracle"].to_numpy(float)

    fig = _figure((6.4, 4.8))
    ax = fig.add_subplot()
    if oracle is not None:
        ax.plot(
            t,
            oracle,
            color=_ORACLE,
            linestyle="--",
            marker=".",
            label="True risk (oracle)",
        )
    ax.plot(t, model, color=_MODEL, marker=".", label="Model")
    ax.plot(t, treat_all, color=_ALL, linestyle="-.", label="Admit all")
    ax.plot(
        t,
        table["net_benefit_none"].to_numpy(float),
        color=_GREY,
        linewidth=1.0,
        label="Admit none",
    )
    _gate_line(ax, threshold)
    highest = np.nanmax(
        np.concatenate([model, treat_all, oracle if oracle is not None else model])
    )
    top = max(float(highest), 1e-3) * 1.15
    ax.set_ylim(-0.25 * top, top)
    ax.set_xlim(0, float(t.max()) + 0.02)
    ax.set_xlabel("Threshold probability (predicted 2-year risk)")
    ax.set_ylabel("Net benefit (true positives per patient)")
    ax.set_title("Decision curve: admitting patients above a risk threshold")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


# ── risk histogram ───────────────────────────────────────────────────────────


def plot_risk_histogram(
    p: ArrayLike,
    out: str | Path,
    true_risk: ArrayLike | None = None,
    *,
    threshold: float,
) -> Path:
    """Histogram of predicted risk (log count axis), the gate, counts above it.

    Args:
        p: predicted 2-year risks in [0, 1].
        out: PNG path to write.
        true_risk: true risks (oracle), drawn as an outline when given.
        threshold: the gate; "above" is p > threshold.

    Returns:
        The path written.
    """
    p_arr = np.asarray(p, dtype=float)
    bins = np.linspace(0, 1, 51)
    fig = _figure((6.4, 4.6))
    ax = fig.add_subplot()
    ax.hist(p_arr, bins=bins, color=_MODEL, alpha=0.75, label="Model")
    lines = [_above_text("Model", p_arr, threshold)]
    if true_risk is not None:
        t_arr = np.asarray(true_risk, dtype=float)
        ax.hist(
            t_arr,
            bins=bins,
            histtype="step",
            color=_ORACLE,
            linewidth=1.5,
            label="True risk (oracle)",
        )
        lines.append(_above_text("True risk", t_arr, threshold))
    _gate_line(ax, threshold)
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel(RISK_AXIS)
    ax.set_ylabel("Patients (log scale)")
    ax.set_title(f"Distribution of predicted risk (N = {len(p_arr):,})")
    ax.text(
        threshold + 0.02,
        0.97,
        f"Above {threshold:g}:\n" + "\n".join(lines),
        transform=ax.get_xaxis_transform(),
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "edgecolor": _GATE, "alpha": 0.9},
    )
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.72), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


def _above_text(name: str, values: np.ndarray, threshold: float) -> str:
    n_above = int(np.sum(values > threshold))
    return f"{name}: {n_above:,} ({n_above / len(values):.1%})"


# ── feature importance ───────────────────────────────────────────────────────


def feature_label(name: str) -> str:
    """Readable label of a model feature: "description (unit)" from data_schema.

    Only the first sentence of the description, without its parenthetical notes
    (conversions such as "88.4 µmol/L = 1 mg/dL"), is kept so a bar label stays one
    short line; an unknown name is shown as is.
    """
    try:
        description, unit = feature_description(name)
    except KeyError:
        return name
    short = re.sub(r"\s*\([^)]*\)", "", description.split(". ")[0]).strip()
    return f"{short} ({unit})" if unit else short


def plot_feature_importance(
    importance: pd.Series, out: str | Path, top: int = 20
) -> Path:
    """Horizontal bars of the ``top`` most important features, largest on top.

    Args:
        importance: importance per model feature name (e.g. mean |SHAP| on the
            log-odds scale); the series name, if any, labels the x axis.
        out: PNG path to write.
        top: number of features shown.

    Returns:
        The path written.
    """
    values = importance.astype(float).sort_values(ascending=False).head(top)[::-1]
    labels = [feature_label(str(name)) for name in values.index]
    fig = _figure((7.6, 0.32 * len(values) + 1.4))
    ax = fig.add_subplot()
    ax.barh(np.arange(len(values)), values.to_numpy(), color=_MODEL)
    ax.set_yticks(np.arange(len(values)), labels, fontsize=8)
    ax.set_xlabel(
        str(importance.name)
        if importance.name
        else "Importance (mean |contribution| to the log-odds)"
    )
    ax.set_title(f"Feature importance (top {len(values)} of {len(importance)})")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, out)


# ── all of them ──────────────────────────────────────────────────────────────


def save_all_plots(
    y: ArrayLike,
    p: ArrayLike,
    out_dir: str | Path,
    *,
    report: Mapping[str, Any],
    importance: pd.Series | None = None,
    true_risk: ArrayLike | None = None,
) -> list[Path]:
    """Write the standard evaluation plots into ``out_dir``.

    Files: roc.png, calibration.png, decision_curve.png, risk_histogram.png, and
    feature_importance.png when ``importance`` is given. The names are fixed so
    every MLflow run has the same artifacts.

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        out_dir: folder to write into (created if needed).
        report: the report of (y, p) from :func:`.report.build_report`.
        importance: feature importance per model feature, if any.
        true_risk: true risks (oracle), if known.

    Returns:
        The paths written, in the order above.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    threshold = float(report["settings"]["threshold"])
    paths = [
        plot_roc(y, p, folder / "roc.png", true_risk=true_risk, threshold=threshold),
        plot_calibration(
            y, p, folder / "calibration.png", true_risk=true_risk, threshold=threshold
        ),
        plot_decision_curve(report, folder / "decision_curve.png", threshold=threshold),
        plot_risk_histogram(
            p, folder / "risk_histogram.png", true_risk=true_risk, threshold=threshold
        ),
    ]
    if importance is not None:
        paths.append(
            plot_feature_importance(importance, folder / "feature_importance.png")
        )
    return paths


__all__ = [
    "calibration_band",
    "feature_label",
    "plot_calibration",
    "plot_decision_curve",
    "plot_feature_importance",
    "plot_risk_histogram",
    "plot_roc",
    "save_all_plots",
]
