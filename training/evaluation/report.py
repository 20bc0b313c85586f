"""The evaluation report of one model on one set of held-out patients.

:func:`build_report` turns outcomes ``y`` and predicted 2-year risks ``p`` into a
dict with the same top-level sections in every run (OHDSI PatientLevelPrediction's
evaluation is the bar; clinical.md §7 lists the measures):

==========================  ==========================================================
``settings``                threshold, min_cell, bins and band rule used
``summary``                 :func:`.metrics.classification_report` (the
                            headline metrics; keys ``METRIC_KEYS``)
``discrimination``          AUROC with 95 % DeLong CI, AUPRC
``calibration``             Brier, scaled Brier, CITL, O:E, intercept/slope, ICI/E50/E90
                            and a 10-bin calibration table with Wilson CIs
``threshold_table``         confusion counts and rates at each threshold (incl. 0.5)
``clinical_utility``        net benefit at the gate and a decision curve 0.05–0.80
``subgroups``               sex and age band (fairlearn ``MetricFrame``), small cells
                            suppressed as PLP ``savePlpShareable`` does
``prediction_distribution`` quantiles, mean, fixed-bin histogram, share above the gate
``oracle``                  the true risk's own metrics and model-vs-truth ratios
                            (synthetic cohorts only; None otherwise)
``uncertainty``             patients whose uncertainty band straddles the gate and the
                            band's coverage of the true risk (None without a band)
``intervals``               a 95 % interval of each headline metric: DeLong, Wilson or
                            percentile bootstrap (:mod:`.intervals`)
``gate_summary``            patients on each side of the gate, split by whether their
                            band straddles it, with how many truly are above it
==========================  ==========================================================

The report holds every number the HTML evaluation report and the model card show,
so rendering needs the report only, never the patients' outcomes and predictions.

The report is plain JSON data: every undefined or non-finite number is ``None``
(JSON ``null``), counts are ``int``, so ``json.dumps(report)`` works as is;
:func:`report_to_json` also converts NaN/inf if a caller added some.
:func:`report_metrics` flattens it into MLflow metrics with the fixed keys
:data:`REPORT_METRIC_KEYS`, NaN where a section is absent, so that every run in the
MLflow UI has every column.

Above the gate always means ``p > threshold`` (strictly), as in
:mod:`.metrics`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame
from numpy.typing import ArrayLike

from data_schema import SMALL_CELL
from training.evaluation import metrics as m
from training.evaluation.intervals import BOOTSTRAPS, interval_section

SECTIONS: tuple[str, ...] = (
    "settings",
    "summary",
    "discrimination",
    "calibration",
    "threshold_table",
    "clinical_utility",
    "subgroups",
    "prediction_distribution",
    "oracle",
    "uncertainty",
    "intervals",
    "gate_summary",
)
"""Top-level keys of :func:`build_report`, always present, in order."""

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Rows of the threshold table (the gate is added when missing)."""

DECISION_CURVE_THRESHOLDS: tuple[float, ...] = tuple(
    round(0.05 * k, 2) for k in range(1, 17)
)
"""Threshold probabilities of the decision curve: 0.05 to 0.80 in steps of 0.05."""

CALIBRATION_BINS = 10
"""Bins (tenths of p) of the report's calibration table."""

HISTOGRAM_EDGES: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(21))
"""Fixed bin edges of the prediction histogram (0, 0.05, ..., 1.0; last bin closed)."""

QUANTILES: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
"""Reported quantiles of the predicted risk."""

SEX_GROUPS: tuple[str, ...] = ("female", "male")
AGE_BANDS: tuple[str, ...] = ("18-29", "30-44", "45+", "unknown")
"""Age bands in years: [.., 30), [30, 45), [45, ..), and missing age."""

SUBGROUP_METRICS: tuple[str, ...] = tuple(
    spec.row_key for spec in m.metric_view("subgroup")
)
"""Metrics of each subgroup row, besides its counts n and events."""

_ORACLE_EXTRA: tuple[str, ...] = (
    "oracle_auroc_gap",
    "oracle_nb_ratio",
    "share_true_high_above_gate",
    "share_above_gate_true_high",
    "mae_vs_truth",
)
_BAND_KEYS: tuple[str, ...] = (
    "n_in_band",
    "share_in_band",
    "band_width_mean",
    "band_coverage",
    "band_coverage_in_band",
)

REPORT_METRIC_KEYS: tuple[str, ...] = (
    *m.METRIC_KEYS,
    *(f"oracle_{key}" for key in m.METRIC_KEYS),
    *_ORACLE_EXTRA,
    *_BAND_KEYS,
)
"""Keys of :func:`report_metrics`, in order; the same in every run."""

# ── JSON helpers ─────────────────────────────────────────────────────────────


def _num(value: Any) -> float | None:
    """A float, or None when the value is missing, NaN or infinite."""
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _jsonable(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays, tuples and Paths into JSON data.

    NaN and ±inf become None: JSON has no spelling for them, and a reader of the
    report should see "undefined", not a parse error.
    """
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def report_to_json(report: Mapping[str, Any], *, indent: int | None = 2) -> str:
    """Serialise a report as strict JSON, NaN and ±inf written as ``null``.

    Args:
        report: a dict from :func:`build_report` (or any JSON-like mapping).
        indent: JSON indentation; None for one line.

    Returns:
        The JSON text; ``json.loads`` gives the report back with None for NaN.
    """
    return json.dumps(_jsonable(report), indent=indent, allow_nan=False)


# ── input checks ─────────────────────────────────────────────────────────────


def _vector(name: str, values: ArrayLike, n: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"{name} must be 1-D with {n} rows, got shape {arr.shape}")
    return arr


def _risk(name: str, values: ArrayLike, n: int) -> np.ndarray:
    arr = _vector(name, values, n).astype(float)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"{name} must be finite probabilities in [0, 1]")
    return arr


def age_band(age_years: ArrayLike) -> np.ndarray:
    """Age band label of each patient: ``18-29``, ``30-44``, ``45+`` or ``unknown``.

    Bands are [.., 30), [30, 45) and [45, ..) years; NaN age is ``unknown``. The
    cohort schema admits adults only, so an age below 18 (not expected) is counted
    in the youngest band rather than raising.

    Args:
        age_years: age at the record, years; NaN when not known.

    Returns:
        Array of band labels (str), one per patient.
    """
    age = np.asarray(age_years, dtype=float)
    return np.select(
        [np.isnan(age), age < 30.0, age < 45.0],
        ["unknown", "18-29", "30-44"],
        default="45+",
    )


# ── subgroups ────────────────────────────────────────────────────────────────


def _safe(fn: Callable[[np.ndarray, np.ndarray], float]) -> Callable[..., float]:
    """Wrap a metric so that an undefined value is NaN instead of an exception.

    A subgroup without events has no AUROC and no calibration intercept; the report
    must still be produced, with that cell empty.
    """

    def wrapped(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        try:
            return float(fn(y_true, y_pred))
        except ValueError:
            return math.nan

    return wrapped


def _group_metrics(threshold: float) -> Callable[..., dict[str, float]]:
    """One MetricFrame callable returning every subgroup value as a dict.

    fairlearn converts the rows of each group element by element before every
    metric call, so ten separate callables cost ten passes (2.4 s of a 2.5 s
    report at 20,000 patients); one callable returning a dict costs one.
    """
    auroc = _safe(m.auroc)
    brier = _safe(m.brier)
    citl = _safe(m.calibration_in_the_large)

    def compute(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
        y = np.asarray(y_true, dtype=float)
        p = np.asarray(y_pred, dtype=float)
        if len(y) == 0:  # pragma: no cover - fairlearn never passes empty groups
            return {"n": 0.0, "events": 0.0}
        gate = m.threshold_metrics(y, p, threshold)
        return {
            "n": float(len(y)),
            "events": float(y.sum()),
            "auroc": auroc(y, p),
            "brier": brier(y, p),
            "citl": citl(y, p),
            "mean_predicted": float(p.mean()),
            "observed_rate": float(y.mean()),
            "n_above_gate": gate["n_above"],
            "sensitivity_at_gate": gate["sensitivity"],
            "ppv_at_gate": gate["ppv"],
        }

    return compute


def _masked(count: int, min_cell: int) -> int | str:
    return count if count >= min_cell else f"<{min_cell}"


def _subgroup_row(
    attribute: str, group: str, values: Mapping[str, float] | None, min_cell: int
) -> dict[str, Any]:
    """One subgroup row, small cells suppressed.

    Rule (PLP ``savePlpShareable`` style): a group with fewer than ``min_cell``
    patients, events or non-events is *suppressed*: every metric is None and
    ``suppressed`` is True. Its n is shown only when ≥ min_cell, otherwise as
    "<10"; its events as "<10" when fewer than min_cell, and withheld (None) when
    the non-events are the small cell, because n − events would reveal them. In an
    unsuppressed row a count of patients above the gate between 1 and min_cell − 1
    is shown as "<10" (the rates stay).
    """
    n = int(values["n"]) if values else 0
    events = int(values["events"]) if values else 0
    row: dict[str, Any] = {"attribute": attribute, "group": group}
    # A group nobody falls in has nothing to show, whatever min_cell is.
    suppressed = values is None or min(n, events, n - events) < min_cell
    if suppressed:
        row["n"] = _masked(n, min_cell)
        row["events"] = _masked(events, min_cell) if events < min_cell else None
        row.update(dict.fromkeys(SUBGROUP_METRICS))
    else:
        assert values is not None
        row["n"], row["events"] = n, events
        for key in SUBGROUP_METRICS:
            row[key] = _num(values[key])
        above = int(values["n_above_gate"])
        row["n_above_gate"] = above if above == 0 else _masked(above, min_cell)
    row["suppressed"] = suppressed
    return row


def subgroup_table(
    y: np.ndarray,
    p: np.ndarray,
    *,
    sex: ArrayLike,
    age_years: ArrayLike,
    threshold: float,
    min_cell: int = SMALL_CELL,
) -> list[dict[str, Any]]:
    """Performance by sex (female, male) and age band, with small-cell suppression.

    Each attribute is a separate fairlearn ``MetricFrame`` (marginal groups, not
    their intersections) over one custom metric callable. Every fixed group gets a
    row, also when no patient falls in it (then n = 0 and suppressed).

    Args:
        y: observed outcomes, 0/1.
        p: predicted 2-year risks in [0, 1].
        sex: 'female' or 'male' per patient.
        age_years: age in years per patient, NaN when unknown.
        threshold: the gate; "above" is p > threshold.
        min_cell: smallest count shown (patients, events and non-events).

    Returns:
        Rows with attribute, group, n, events, the :data:`SUBGROUP_METRICS` and
        suppressed, sex rows first.

    Raises:
        ValueError: a sex other than 'female'/'male', or mismatched lengths.
    """
    sex_arr = np.char.lower(_vector("sex", sex, len(y)).astype(str))
    unknown = sorted(set(np.unique(sex_arr)) - set(SEX_GROUPS))
    if unknown:
        raise ValueError(f"sex must be 'female' or 'male'; found {unknown[:5]}")
    bands = age_band(_vector("age_years", age_years, len(y)))
    metrics = {"values": _group_metrics(threshold)}
    rows: list[dict[str, Any]] = []
    for attribute, labels, groups in (
        ("sex", sex_arr, SEX_GROUPS),
        ("age_band", bands, AGE_BANDS),
    ):
        by_group = MetricFrame(
            metrics=metrics,
            y_true=y,
            y_pred=p,
            sensitive_features={attribute: labels},
        ).by_group["values"]
        for group in groups:
            values = by_group.loc[group] if group in by_group.index else None
            rows.append(_subgroup_row(attribute, group, values, min_cell))
    return rows


# ── the report ───────────────────────────────────────────────────────────────


def _records(frame: Any) -> list[dict[str, Any]]:
    return [_jsonable(row) for row in frame.to_dict(orient="records")]


def _threshold_row(y: np.ndarray, p: np.ndarray, t: float) -> dict[str, Any]:
    res = m.threshold_metrics(y, p, t)
    row: dict[str, Any] = {"threshold": float(t)}
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        row[key] = _num(res[key])
    for key in ("tp", "fp", "tn", "fn", "n_above"):
        row[key] = int(res[key])
    row["share_above"] = _num(res["share_above"])
    # Patients screened per patient admitted (clinical.md §7): N / n_above.
    row["screened_per_above"] = (
        _num(len(y) / res["n_above"]) if res["n_above"] else None
    )
    return row


def _distribution(p: np.ndarray, threshold: float) -> dict[str, Any]:
    counts, _ = np.histogram(p, bins=np.asarray(HISTOGRAM_EDGES))
    n_above = int(np.sum(p > threshold))
    return {
        "quantiles": {k: float(np.quantile(p, q)) for k, q in QUANTILES.items()},
        "mean": float(p.mean()),
        "min": float(p.min()),
        "max": float(p.max()),
        "histogram": {
            "bin_edges": list(HISTOGRAM_EDGES),
            "counts": [int(c) for c in counts],
        },
        "n_above_gate": n_above,
        "share_above_gate": n_above / len(p),
    }


def _oracle(
    y: np.ndarray,
    p: np.ndarray,
    true_risk: np.ndarray,
    summary: Mapping[str, float],
    threshold: float,
) -> dict[str, Any]:
    """The true risk scored like a model, and the model measured against it."""
    headline = m.classification_report(y, true_risk, threshold)
    oracle: dict[str, Any] = {k: _num(v) for k, v in headline.items()}
    above = p > threshold
    true_high = true_risk > threshold
    nb_model, nb_oracle = summary["nb_at_gate"], oracle["nb_at_gate"]
    gap = None
    if summary["auroc"] is not None and oracle["auroc"] is not None:
        gap = summary["auroc"] - oracle["auroc"]
    oracle.update(
        {
            "auroc_gap": gap,
            # A ratio to a non-positive oracle NB has no meaning (no one is worth
            # admitting even with the truth known), so it is left undefined.
            "nb_ratio": (
                nb_model / nb_oracle
                if nb_model is not None and nb_oracle is not None and nb_oracle > 0
                else None
            ),
            "share_true_high_above_gate": (
                float(np.mean(above[true_high])) if true_high.any() else None
            ),
            "share_above_gate_true_high": (
                float(np.mean(true_high[above])) if above.any() else None
            ),
            "mean_abs_error_vs_truth": float(np.mean(np.abs(p - true_risk))),
            "n_true_high": int(true_high.sum()),
        }
    )
    return oracle


def _straddles(low: np.ndarray, high: np.ndarray, threshold: float) -> np.ndarray:
    """Whose band holds a risk on each side of the gate: low <= threshold < high."""
    return (low <= threshold) & (threshold < high)


def _uncertainty(
    low: np.ndarray,
    high: np.ndarray,
    true_risk: np.ndarray | None,
    threshold: float,
) -> dict[str, Any]:
    """Who cannot be placed on one side of the gate, and does the band hold truth.

    A band *straddles* the gate when ``band_low <= threshold < band_high``: it holds
    a risk that would not be admitted (≤ threshold) and one that would (> threshold),
    matching the strict ``p > threshold`` gate. Coverage counts a true risk inside
    the closed band [low, high].
    """
    if (low > high).any():
        raise ValueError("band_low must not exceed band_high")
    straddle = _straddles(low, high, threshold)
    out: dict[str, Any] = {
        "n_in_band": int(straddle.sum()),
        "share_in_band": float(straddle.mean()),
        "band_width_mean": float(np.mean(high - low)),
        "band_width_median": float(np.median(high - low)),
        "band_coverage": None,
        "band_coverage_in_band": None,
    }
    if true_risk is not None:
        covered = (low <= true_risk) & (true_risk <= high)
        out["band_coverage"] = float(covered.mean())
        if straddle.any():
            out["band_coverage_in_band"] = float(covered[straddle].mean())
    return out


def _gate_rows(
    p: np.ndarray,
    band: tuple[np.ndarray, np.ndarray] | None,
    truth: np.ndarray | None,
    threshold: float,
) -> list[dict[str, Any]]:
    """The rows of :func:`gate_summary` as JSON data (the report's ``gate_summary``),
    ``n_true_above`` None in every row when the true risk is unknown."""
    above = p > threshold
    groups: list[tuple[str, np.ndarray]]
    if band is None:
        groups = [("above the gate", above), ("at or below the gate", ~above)]
    else:
        straddles = _straddles(*band, threshold)
        groups = [
            ("above the gate, band clear of the gate", above & ~straddles),
            ("above the gate, band straddles the gate", above & straddles),
            ("at or below the gate, band straddles the gate", ~above & straddles),
            ("at or below the gate, band clear of the gate", ~above & ~straddles),
        ]
    groups.append(("total", np.ones_like(above)))
    true_high = None if truth is None else truth > threshold
    rows = []
    for name, mask in groups:
        row: dict[str, Any] = {
            "group": name,
            "n": int(mask.sum()),
            "share": float(mask.mean()) if len(mask) else None,
            "n_true_above": None,
        }
        if true_high is not None:
            row["n_true_above"] = int((mask & true_high).sum())
        rows.append(row)
    return rows


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
    band = None
    if band_low is not None and band_high is not None:
        band = (np.asarray(band_low, dtype=float), np.asarray(band_high, dtype=float))
    truth = None if true_risk is None else np.asarray(true_risk, dtype=float)
    table = pd.DataFrame(_gate_rows(np.asarray(p, dtype=float), band, truth, threshold))
    return table if truth is not None else table.drop(columns="n_true_above")


def _settings(
    threshold: float, thresholds: Sequence[float], min_cell: int
) -> dict[str, Any]:
    return {
        "threshold": threshold,
        "gate_rule": "p > threshold",
        "thresholds": list(thresholds),
        "min_cell": int(min_cell),
        "calibration_bins": CALIBRATION_BINS,
        "calibration_strategy": "quantile",
        "decision_curve_thresholds": list(DECISION_CURVE_THRESHOLDS),
        "age_bands": list(AGE_BANDS),
        "band_rule": "band_low <= threshold < band_high",
    }


def _summary_part(summary: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The summary metrics a section repeats (:func:`.metrics.section_keys`)."""
    return {key: summary[key] for key in m.section_keys(section)}


def _clinical_utility(
    y: np.ndarray,
    p: np.ndarray,
    truth: np.ndarray | None,
    summary: Mapping[str, Any],
    threshold: float,
) -> dict[str, Any]:
    curve = m.decision_curve(y, p, DECISION_CURVE_THRESHOLDS)
    curve["net_benefit_oracle"] = (
        m.decision_curve(y, truth, DECISION_CURVE_THRESHOLDS)["net_benefit_model"]
        if truth is not None
        else None
    )
    return (
        {"threshold": threshold}
        | _summary_part(summary, "clinical_utility")
        | {"decision_curve": _records(curve)}
    )


def _gate_row(table: Sequence[Mapping[str, Any]], threshold: float) -> Any:
    """The threshold-table row at the gate, or None."""
    return next(
        (r for r in table if math.isclose(float(r["threshold"]), threshold)), None
    )


def _truth_and_band(
    n: int,
    true_risk: ArrayLike | None,
    band_low: ArrayLike | None,
    band_high: ArrayLike | None,
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray] | None]:
    """The checked true risks and (low, high) band of n patients, each if given."""
    truth = None if true_risk is None else _risk("true_risk", true_risk, n)
    if band_low is None and band_high is None:
        return truth, None
    if band_low is None or band_high is None:
        raise ValueError("give both band_low and band_high, or neither")
    return truth, (_risk("band_low", band_low, n), _risk("band_high", band_high, n))


def build_report(
    y: ArrayLike,
    p: ArrayLike,
    *,
    sex: ArrayLike,
    age_years: ArrayLike,
    true_risk: ArrayLike | None = None,
    band_low: ArrayLike | None = None,
    band_high: ArrayLike | None = None,
    threshold: float,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_cell: int = SMALL_CELL,
    n_boot: int = BOOTSTRAPS,
    seed: int = 0,
) -> dict[str, Any]:
    """The full evaluation report with fixed sections (see the module docstring).

    Every number comes from :mod:`.metrics` and :mod:`.intervals` (formulas and
    sources there). The oracle's net benefit uses the model's observed outcomes,
    so the two curves differ only by the ranking/calibration of the score.

    Args:
        y: observed outcome (new-onset LN within 24 months), 0/1, one per patient.
        p: predicted 2-year risk, probability in [0, 1].
        sex: 'female' or 'male' per patient.
        age_years: age at the record in years; NaN where unknown.
        true_risk: the synthetic cohort's true 2-year risk (probability), if known.
        band_low: lower end of each patient's uncertainty band (probability).
        band_high: upper end of each patient's uncertainty band (probability).
        threshold: the trial gate; admitted when p > threshold.
        thresholds: rows of the threshold table; the gate is always added.
        min_cell: smallest patient/event/non-event count shown in a subgroup row.
        n_boot: bootstrap resamples of the ``intervals`` section; 0 for none.
        seed: seed of the bootstrap.

    Returns:
        JSON-ready dict with keys :data:`SECTIONS`; ``oracle`` is None without
        ``true_risk`` and ``uncertainty`` None without a band. Undefined values
        are None.

    Raises:
        ValueError: invalid inputs (see :func:`.metrics.classification_report`),
            only one of band_low / band_high, or band_low > band_high.
    """
    t = float(threshold)
    # classification_report validates y, p and the threshold before anything else.
    summary = {k: _num(v) for k, v in m.classification_report(y, p, t).items()}
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    truth, band = _truth_and_band(len(y_arr), true_risk, band_low, band_high)
    table_thresholds = sorted({round(float(x), 6) for x in (*thresholds, t)})
    table = [_threshold_row(y_arr, p_arr, x) for x in table_thresholds]
    curve = m.calibration_curve_table(y_arr, p_arr, n_bins=CALIBRATION_BINS)
    gate = _gate_row(table, t)
    intervals = interval_section(
        y_arr, p_arr, summary, gate, threshold=t, n_boot=n_boot, seed=seed
    )
    report: dict[str, Any] = {
        "settings": _settings(t, table_thresholds, min_cell),
        "summary": summary,
        "discrimination": _summary_part(summary, "discrimination")
        | {"ci_method": "DeLong", "ci_level": 0.95},
        "calibration": _summary_part(summary, "calibration")
        | {"curve": _records(curve)},
        "threshold_table": table,
        "clinical_utility": _clinical_utility(y_arr, p_arr, truth, summary, t),
        "subgroups": subgroup_table(
            y_arr, p_arr, sex=sex, age_years=age_years, threshold=t, min_cell=min_cell
        ),
        "prediction_distribution": _distribution(p_arr, t),
        "oracle": None if truth is None else _oracle(y_arr, p_arr, truth, summary, t),
        "uncertainty": None if band is None else _uncertainty(*band, truth, t),
        "intervals": intervals,
        "gate_summary": _gate_rows(p_arr, band, truth, t),
    }
    return _jsonable(report)


def report_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics of a report, keys exactly :data:`REPORT_METRIC_KEYS`.

    The headline keys come from ``summary`` (overall population), ``oracle_<key>``
    from the oracle's own metrics; an absent section or undefined value is NaN, so
    every run logs every key.

    Args:
        report: a dict from :func:`build_report` (or its JSON round trip).

    Returns:
        Dict of floats in :data:`REPORT_METRIC_KEYS` order.
    """

    def val(section: Mapping[str, Any] | None, key: str) -> float:
        value = section.get(key) if section else None
        return math.nan if value is None else float(value)

    summary = report.get("summary")
    oracle = report.get("oracle")
    band = report.get("uncertainty")
    out = {key: val(summary, key) for key in m.METRIC_KEYS}
    out.update({f"oracle_{key}": val(oracle, key) for key in m.METRIC_KEYS})
    out["oracle_auroc_gap"] = val(oracle, "auroc_gap")
    out["oracle_nb_ratio"] = val(oracle, "nb_ratio")
    out["share_true_high_above_gate"] = val(oracle, "share_true_high_above_gate")
    out["share_above_gate_true_high"] = val(oracle, "share_above_gate_true_high")
    out["mae_vs_truth"] = val(oracle, "mean_abs_error_vs_truth")
    out.update({key: val(band, key) for key in _BAND_KEYS})
    return {key: out[key] for key in REPORT_METRIC_KEYS}


__all__ = [
    "AGE_BANDS",
    "DECISION_CURVE_THRESHOLDS",
    "DEFAULT_THRESHOLDS",
    "HISTOGRAM_EDGES",
    "REPORT_METRIC_KEYS",
    "SECTIONS",
    "SEX_GROUPS",
    "age_band",
    "build_report",
    "gate_summary",
    "report_metrics",
    "report_to_json",
    "subgroup_table",
]
