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
``gate``                    the three-valued gate: the review zone's edges and, for the
                            auto-passed, reviewed and auto-excluded patients, their
                            observed event rate with a 95 % Wilson interval (and, on
                            synthetic data, how many truly are above the gate); None
                            when no gate was computed
``intervals``               a 95 % interval of each headline metric: DeLong, Wilson or
                            percentile bootstrap (:mod:`.intervals`)
``population``              who the patients are: the attrition from the cohort to the
                            development population (None when not given)
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
    "gate",
    "intervals",
    "population",
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
GATE_GROUPS: tuple[tuple[str, str], ...] = (
    ("auto-passed", "above"),
    ("reviewed", "undetermined"),
    ("auto-excluded", "below"),
)
"""(group of the report, gate state) in the order the report lists them."""
_GATE_GROUP_SHORT = {
    "auto-passed": "passed",
    "reviewed": "reviewed",
    "auto-excluded": "excluded",
}
_GATE_GROUP_KEYS = (
    "n",
    "events",
    "event_rate",
    "event_rate_ci_low",
    "event_rate_ci_high",
)

_GATE_KEYS: tuple[str, ...] = (
    "gate_exclude_edge",
    "gate_pass_edge",
    "gate_review_share",
    "gate_reviewed_for_missing_data",
    *(
        f"gate_{short}_{key}"
        for short in _GATE_GROUP_SHORT.values()
        for key in _GATE_GROUP_KEYS
    ),
    "gate_excluded_true_high",
    "gate_passed_true_high",
)

REPORT_METRIC_KEYS: tuple[str, ...] = (
    *m.METRIC_KEYS,
    *(f"oracle_{key}" for key in m.METRIC_KEYS),
    *_ORACLE_EXTRA,
    *_GATE_KEYS,
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


def _gate_group_row(
    name: str, mask: np.ndarray, y: np.ndarray, true_high: np.ndarray | None
) -> dict[str, Any]:
    n, events = int(mask.sum()), int(y[mask].sum())
    low, high = (None, None) if n == 0 else m.wilson_interval(events, n)
    return {
        "group": name,
        "n": n,
        "share": float(mask.mean()) if len(mask) else None,
        "events": events,
        "event_rate": events / n if n else None,
        "event_rate_ci_low": low,
        "event_rate_ci_high": high,
        "n_true_high": None if true_high is None else int((mask & true_high).sum()),
    }


def _gate(
    y: np.ndarray,
    gate: Mapping[str, Any],
    truth: np.ndarray | None,
    threshold: float,
) -> dict[str, Any]:
    """The gate's three groups on observed outcomes (and on the truth if known)."""
    state = np.asarray(gate["state"], dtype=object)
    known = {value for _, value in GATE_GROUPS}
    if state.shape != y.shape or not set(state.tolist()) <= known:
        raise ValueError(
            f"gate['state'] must hold one of {sorted(known)} per patient "
            f"({len(y)} patients)"
        )
    true_high = None if truth is None else truth > threshold
    groups = [
        _gate_group_row(name, state == value, y, true_high)
        for name, value in GATE_GROUPS
    ]
    out: dict[str, Any] = {
        "exclude_edge": float(gate["exclude_edge"]),
        "pass_edge": float(gate["pass_edge"]),
        "rule": "below: the plausible risk range lies at or below the exclude "
        "edge; above: it lies above the pass edge; else undetermined (reviewed)",
        "method": gate.get("method"),
        "groups": groups,
        "review_share": float((state == "undetermined").mean()),
        "reviewed_for_missing_data": int(np.asarray(gate["for_missing_data"]).sum()),
        "truth": None,
    }
    if true_high is not None:
        passed, excluded = state == "above", state == "below"
        out["truth"] = {
            "n_true_high": int(true_high.sum()),
            "excluded_true_high": float(excluded[true_high].mean())
            if true_high.any()
            else None,
            "passed_true_high": float(true_high[passed].mean())
            if passed.any()
            else None,
        }
    return out


def gate_summary(report: Mapping[str, Any]) -> pd.DataFrame:
    """The gate's groups as a table: n, share, events, observed event rate with its
    95 % interval, and (synthetic data) patients truly above the gate."""
    gate = report.get("gate")
    if not gate:
        return pd.DataFrame()
    table = pd.DataFrame(gate["groups"])
    return table if gate.get("truth") else table.drop(columns="n_true_high")


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


def build_report(
    y: ArrayLike,
    p: ArrayLike,
    *,
    sex: ArrayLike,
    age_years: ArrayLike,
    true_risk: ArrayLike | None = None,
    gate: Mapping[str, Any] | None = None,
    population: Sequence[Mapping[str, Any]] | None = None,
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
        gate: the gate of these patients: ``state`` (above / below / undetermined
            per patient), ``for_missing_data`` (reviewed because predictors are
            missing, per patient), ``exclude_edge``, ``pass_edge`` and ``method``.
        population: the attrition rows from the cohort to these patients'
            population (``training.data.development_population``).
        threshold: the trial gate; admitted when p > threshold.
        thresholds: rows of the threshold table; the gate is always added.
        min_cell: smallest patient/event/non-event count shown in a subgroup row.
        n_boot: bootstrap resamples of the ``intervals`` section; 0 for none.
        seed: seed of the bootstrap.

    Returns:
        JSON-ready dict with keys :data:`SECTIONS`; ``oracle`` is None without
        ``true_risk``, ``gate`` without a gate, ``population`` without one.
        Undefined values are None.

    Raises:
        ValueError: invalid inputs (see :func:`.metrics.classification_report`).
    """
    t = float(threshold)
    # classification_report validates y, p and the threshold before anything else.
    summary = {k: _num(v) for k, v in m.classification_report(y, p, t).items()}
    y_arr = np.asarray(y, dtype=float)
    p_arr = np.asarray(p, dtype=float)
    truth = None if true_risk is None else _risk("true_risk", true_risk, len(y_arr))
    table_thresholds = sorted({round(float(x), 6) for x in (*thresholds, t)})
    table = [_threshold_row(y_arr, p_arr, x) for x in table_thresholds]
    curve = m.calibration_curve_table(y_arr, p_arr, n_bins=CALIBRATION_BINS)
    gate_row = _gate_row(table, t)
    intervals = interval_section(
        y_arr, p_arr, summary, gate_row, threshold=t, n_boot=n_boot, seed=seed
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
        "gate": None if gate is None else _gate(y_arr, gate, truth, t),
        "intervals": intervals,
        "population": None if population is None else [dict(r) for r in population],
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
    out = {key: val(summary, key) for key in m.METRIC_KEYS}
    out.update({f"oracle_{key}": val(oracle, key) for key in m.METRIC_KEYS})
    out["oracle_auroc_gap"] = val(oracle, "auroc_gap")
    out["oracle_nb_ratio"] = val(oracle, "nb_ratio")
    out["share_true_high_above_gate"] = val(oracle, "share_true_high_above_gate")
    out["share_above_gate_true_high"] = val(oracle, "share_above_gate_true_high")
    out["mae_vs_truth"] = val(oracle, "mean_abs_error_vs_truth")
    out.update(_gate_metrics(report.get("gate")))
    return {key: out[key] for key in REPORT_METRIC_KEYS}


def _gate_metrics(gate: Mapping[str, Any] | None) -> dict[str, float]:
    """The flat ``gate_*`` metrics (NaN without a gate)."""
    out = dict.fromkeys(_GATE_KEYS, math.nan)
    if not gate:
        return out

    def num(value: Any) -> float:
        return math.nan if value is None else float(value)

    out["gate_exclude_edge"] = num(gate["exclude_edge"])
    out["gate_pass_edge"] = num(gate["pass_edge"])
    out["gate_review_share"] = num(gate["review_share"])
    out["gate_reviewed_for_missing_data"] = num(gate["reviewed_for_missing_data"])
    for row in gate["groups"]:
        for key in _GATE_GROUP_KEYS:
            out[f"gate_{_GATE_GROUP_SHORT[row['group']]}_{key}"] = num(row[key])
    truth = gate.get("truth") or {}
    out["gate_excluded_true_high"] = num(truth.get("excluded_true_high"))
    out["gate_passed_true_high"] = num(truth.get("passed_true_high"))
    return out


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
