"""95 % intervals of the headline metrics, for the report's ``intervals`` section.

Each metric of :data:`.metrics.METRICS` names its interval method:

* ``DeLong``: AUROC, the interval :func:`.metrics.auroc_ci` already gives.
* ``Wilson``: the proportions (observed rate, sensitivity, specificity, PPV, NPV,
  share above the gate), from the counts behind them (:func:`.metrics.wilson_interval`).
* ``bootstrap``: the scores without a closed-form interval here (AUPRC, Brier,
  scaled Brier, mean predicted risk, calibration intercept and slope, net benefit):
  percentile bootstrap of the patients (:func:`bootstrap_intervals`).
* ``none``: ICI; the calibration plot's bootstrap band shows its spread.

:func:`bootstrap_draws` is the one resampling loop of the package: the calibration
plot's band (:func:`.plots.calibration_band`) uses it too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from training.evaluation import metrics as m

BOOTSTRAPS = 200
"""Resamples behind each bootstrap interval (about 1 s at 5,000 patients)."""

LEVEL = 0.95
"""Confidence level of every interval of the report."""

BOOTSTRAP_KEYS: tuple[str, ...] = tuple(
    spec.key for spec in m.METRICS if spec.interval == "bootstrap"
)
"""Scores given a percentile-bootstrap interval by :func:`bootstrap_intervals`."""


def bootstrap_draws(
    y: ArrayLike,
    p: ArrayLike,
    stat: Callable[[np.ndarray, np.ndarray], ArrayLike],
    *,
    width: int,
    n_boot: int,
    seed: int,
) -> np.ndarray:
    """A statistic of ``n_boot`` resamples of the patients, one row per resample.

    Patients are drawn with replacement, N of N. A resample with one outcome class
    only, or where ``stat`` raises ValueError or FloatingPointError, gives a row of
    NaN: its draw is still taken, so the resamples after it do not depend on it.

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        stat: (y, p) of a resample → ``width`` values.
        width: how many values ``stat`` gives.
        n_boot: resamples.
        seed: seed of the resampling.

    Returns:
        Array of shape (n_boot, width).
    """
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    n = len(y_arr)
    rng = np.random.default_rng(seed)
    out = np.full((n_boot, width), np.nan)
    with warnings.catch_warnings():
        # A resample whose calibration slope does not converge gives NaN with a
        # RuntimeWarning; NaN draws are left out of the interval.
        warnings.simplefilter("ignore", RuntimeWarning)
        for row in out:
            idx = rng.integers(0, n, n)
            yb = y_arr[idx]
            if yb.min() == yb.max():
                continue
            try:
                row[:] = stat(yb, p_arr[idx])
            except (ValueError, FloatingPointError):
                continue
    return out


def percentile_bounds(
    draws: np.ndarray, level: float = LEVEL
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise percentile interval of each column of ``draws``.

    Non-finite draws are left out; a column without a finite draw gives NaN.

    Args:
        draws: resamples × values, as from :func:`bootstrap_draws`.
        level: two-sided coverage in (0, 1).

    Returns:
        (low, high), one value per column.
    """
    if draws.shape[0] == 0:
        return np.full(draws.shape[1], np.nan), np.full(draws.shape[1], np.nan)
    alpha = (1.0 - level) / 2.0
    finite = np.where(np.isfinite(draws), draws, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
        low, high = np.nanquantile(finite, [alpha, 1.0 - alpha], axis=0)
    return low, high


def _float(value: float) -> float:
    """A float; NaN is always math.nan, so equal results compare equal."""
    return float(value) if math.isfinite(value) else math.nan


def _bootstrap_scores(y: np.ndarray, p: np.ndarray, threshold: float) -> list[float]:
    """The :data:`BOOTSTRAP_KEYS` scores of one resample, in that order."""
    intercept, slope = m.calibration_slope(y, p)
    scores = {
        "auprc": m.auprc(y, p),
        "brier": m.brier(y, p),
        "brier_scaled": m.brier_scaled(y, p),
        "mean_predicted": float(p.mean()),
        "cal_intercept": intercept,
        "cal_slope": slope,
        "nb_at_gate": m.net_benefit(y, p, threshold),
    }
    return [scores[key] for key in BOOTSTRAP_KEYS]


def bootstrap_intervals(
    y: ArrayLike,
    p: ArrayLike,
    *,
    threshold: float,
    n_boot: int = BOOTSTRAPS,
    seed: int = 0,
    level: float = LEVEL,
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
    draws = bootstrap_draws(
        y,
        p,
        lambda yb, pb: _bootstrap_scores(yb, pb, threshold),
        width=len(BOOTSTRAP_KEYS),
        n_boot=n_boot,
        seed=seed,
    )
    low, high = percentile_bounds(draws, level)
    return {
        key: (_float(lo), _float(hi))
        for key, lo, hi in zip(BOOTSTRAP_KEYS, low, high, strict=True)
    }


def wilson_counts(
    summary: Mapping[str, Any], gate: Mapping[str, Any] | None
) -> dict[str, tuple[float, float]]:
    """(successes, trials) behind each proportion with a Wilson interval.

    Args:
        summary: the report's summary (n and events).
        gate: the threshold-table row at the gate (tp, fp, tn, fn), if any.

    Returns:
        Metric key → (successes, trials); keys whose counts are unknown are absent.
    """
    out: dict[str, tuple[float, float]] = {}
    if summary.get("n") is not None and summary.get("events") is not None:
        out["prevalence"] = (summary["events"], summary["n"])
    if gate is not None:
        tp, fp, tn, fn = (float(gate[k]) for k in ("tp", "fp", "tn", "fn"))
        out |= {
            "sens_at_gate": (tp, tp + fn),
            "spec_at_gate": (tn, tn + fp),
            "ppv_at_gate": (tp, tp + fp),
            "npv_at_gate": (tn, tn + fn),
            "share_above_gate": (tp + fp, tp + fp + tn + fn),
        }
    return out


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def interval_section(
    y: np.ndarray,
    p: np.ndarray,
    summary: Mapping[str, Any],
    gate: Mapping[str, Any] | None,
    *,
    threshold: float,
    n_boot: int = BOOTSTRAPS,
    seed: int = 0,
) -> dict[str, Any]:
    """The report's ``intervals`` section: a 95 % interval of each headline metric.

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        summary: the report's summary (the DeLong bounds, n and events).
        gate: the threshold-table row at the gate, if any.
        threshold: the gate of the net benefit.
        n_boot: bootstrap resamples; 0 leaves the bootstrap intervals out.
        seed: seed of the bootstrap.

    Returns:
        ``level``, ``n_boot``, ``seed`` and ``metrics``: metric key → low, high
        and method, for every metric with an interval method. A bound that cannot
        be computed is None; a method that could not be applied (no resamples, no
        counts) reads ``none``.
    """
    boot = (
        bootstrap_intervals(y, p, threshold=threshold, n_boot=n_boot, seed=seed)
        if n_boot > 0
        else {}
    )
    counts = wilson_counts(summary, gate)
    metrics: dict[str, dict[str, Any]] = {}
    for spec in m.METRICS:
        method: str = spec.interval
        low = high = None
        if method == "DeLong":
            low, high = summary.get("auroc_ci_low"), summary.get("auroc_ci_high")
        elif method == "Wilson" and spec.key in counts:
            low, high = m.wilson_interval(*counts[spec.key], level=LEVEL)
        elif method == "bootstrap" and n_boot > 0:
            low, high = boot[spec.key]
        elif method == "none":
            continue
        else:
            method = "none"
        metrics[spec.key] = {"low": _num(low), "high": _num(high), "method": method}
    return {
        "level": LEVEL,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "metrics": metrics,
    }


__all__ = [
    "BOOTSTRAPS",
    "BOOTSTRAP_KEYS",
    "LEVEL",
    "bootstrap_draws",
    "bootstrap_intervals",
    "interval_section",
    "percentile_bounds",
    "wilson_counts",
]
