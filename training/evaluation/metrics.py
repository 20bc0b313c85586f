"""Validation metrics for the 2-year lupus nephritis risk model.

Pure functions of ``y`` (observed 0/1 outcome) and ``p`` (predicted 2-year risk,
a probability in [0, 1]). Nothing here plots, logs or touches MLflow; the tracking
module logs :func:`classification_report`, whose keys are :data:`METRIC_KEYS`.

:data:`METRICS` is the one table of the headline metrics: key, label, number format,
interval method and the views each belongs to. Every list of metric names elsewhere
(the CLI's table, the report's headline, the family comparison, the subgroup rows)
is cut from it with :func:`metric_view`.

The trial gate (NCT05585671) admits patients whose predicted risk is *higher than*
50 %, so every threshold rule in this module classifies a patient as above the gate
when ``p > threshold`` (strictly). A patient at exactly 0.5 is not above the gate.

Sections follow clinical.md §7: discrimination (AUROC with a DeLong interval,
AUPRC), overall accuracy (Brier, scaled Brier), calibration (calibration-in-the-
large, intercept and slope, O:E, ICI/E50/E90 from a LOWESS calibration curve),
the threshold table at the gate, and clinical utility (net benefit, decision
curve).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from riskmodel.maths import P_CLIP, expit, logit

Format = Literal["num", "pct", "count"]
Interval = Literal["DeLong", "Wilson", "bootstrap", "none"]


@dataclass(frozen=True)
class MetricSpec:
    """One headline metric: its key, how a reader sees it, and where it is shown.

    Attributes:
        key: its name in :func:`classification_report`, the report's ``summary``
            and MLflow (fixed: runs are compared by it).
        name: what a reader calls it ("AUROC", "Sensitivity at the gate").
        qualifier: what the full label adds in brackets ("C-statistic", "log-odds").
        fmt: ``num`` (3 significant digits), ``pct`` (a proportion as a
            percentage) or ``count``.
        section: the report section that repeats it (``discrimination``,
            ``calibration``, ``clinical_utility``), or "" for none.
        interval: how the report gives it a 95 % interval: ``DeLong``, ``Wilson``
            (a proportion of counts), ``bootstrap`` (percentile) or ``none``.
        ideal: the value of a perfectly calibrated model, as the card shows it.
        column: its header in the subgroup table, ``{gate:g}`` for the gate.
        subgroup_key: its key in a subgroup row, where that differs from ``key``.
        views: view → 1-based position of the metric in that view (see
            :data:`VIEWS`).
    """

    key: str
    name: str
    fmt: Format
    qualifier: str = ""
    section: str = ""
    interval: Interval = "none"
    ideal: str = ""
    column: str = ""
    subgroup_key: str = ""
    views: Mapping[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The full label: name, then the qualifier in brackets."""
        return f"{self.name} ({self.qualifier})" if self.qualifier else self.name

    @property
    def row_key(self) -> str:
        """Its key in a subgroup row."""
        return self.subgroup_key or self.key


VIEWS: dict[str, str] = {
    "cli": "the metrics table ``lnrisk`` prints after a run",
    "headline": "the headline table of the HTML evaluation report",
    "family": "the candidate-family comparison table",
    "subgroup": "the metrics of each subgroup row (sex, age band)",
    "calibration": "the calibration table of the model card",
    "oracle": "model against true risk in the HTML evaluation report",
    "card_oracle": "model against true risk in the model card",
    "model_metadata": "held-out metrics a saved model carries in its metadata",
}
"""The views built from :data:`METRICS`, each a selection in its own order."""

# One row per metric of classification_report, in its key order. A view's
# positions are explicit because views order metrics for their reader (the HTML
# headline opens with discrimination, the subgroup table with the scores).
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("n", "Patients", "count"),
    MetricSpec("events", "Events", "count"),
    MetricSpec(
        "prevalence",
        "Observed 2-year LN rate",
        "pct",
        interval="Wilson",
        column="Observed",
        subgroup_key="observed_rate",
        views={"headline": 5, "subgroup": 5},
    ),
    MetricSpec(
        "mean_predicted",
        "Mean predicted 2-year risk",
        "pct",
        interval="bootstrap",
        column="Mean predicted",
        views={"headline": 6, "subgroup": 4},
    ),
    MetricSpec(
        "auroc",
        "AUROC",
        "num",
        qualifier="C-statistic",
        section="discrimination",
        interval="DeLong",
        column="AUROC",
        views={
            "cli": 1,
            "headline": 1,
            "family": 1,
            "subgroup": 1,
            "oracle": 1,
            "card_oracle": 1,
            "model_metadata": 1,
        },
    ),
    MetricSpec(
        "auroc_ci_low",
        "AUROC, lower 95 % DeLong bound",
        "num",
        section="discrimination",
        views={"cli": 2, "family": 2, "model_metadata": 2},
    ),
    MetricSpec(
        "auroc_ci_high",
        "AUROC, upper 95 % DeLong bound",
        "num",
        section="discrimination",
        views={"cli": 3, "family": 3, "model_metadata": 3},
    ),
    MetricSpec(
        "auprc",
        "AUPRC",
        "num",
        qualifier="average precision",
        section="discrimination",
        interval="bootstrap",
        views={"headline": 2, "family": 4, "card_oracle": 2},
    ),
    MetricSpec(
        "brier",
        "Brier score",
        "num",
        section="calibration",
        interval="bootstrap",
        ideal="0 (lower is better)",
        column="Brier",
        views={
            "cli": 4,
            "headline": 3,
            "family": 5,
            "subgroup": 2,
            "calibration": 1,
            "oracle": 2,
            "card_oracle": 3,
            "model_metadata": 6,
        },
    ),
    MetricSpec(
        "brier_scaled",
        "Scaled Brier score",
        "num",
        section="calibration",
        interval="bootstrap",
        ideal="1",
        views={"headline": 4, "family": 6, "calibration": 2},
    ),
    MetricSpec(
        "citl",
        "Calibration-in-the-large",
        "num",
        qualifier="log-odds",
        section="calibration",
        ideal="0",
        column="CITL",
        views={"cli": 5, "family": 7, "subgroup": 3, "calibration": 3},
    ),
    MetricSpec(
        "oe_ratio",
        "Observed/expected ratio",
        "num",
        section="calibration",
        ideal="1",
        views={"calibration": 4},
    ),
    MetricSpec(
        "cal_intercept",
        "Calibration intercept",
        "num",
        qualifier="log-odds",
        section="calibration",
        interval="bootstrap",
        ideal="0",
        views={"cli": 6, "headline": 7, "family": 8, "calibration": 5},
    ),
    MetricSpec(
        "cal_slope",
        "Calibration slope",
        "num",
        section="calibration",
        interval="bootstrap",
        ideal="1",
        views={
            "cli": 7,
            "headline": 8,
            "family": 9,
            "calibration": 6,
            "oracle": 3,
            "card_oracle": 4,
            "model_metadata": 4,
        },
    ),
    MetricSpec(
        "ici",
        "ICI",
        "num",
        qualifier="probability",
        section="calibration",
        ideal="0",
        views={
            "cli": 8,
            "headline": 9,
            "family": 10,
            "calibration": 7,
            "oracle": 4,
            "card_oracle": 5,
            "model_metadata": 5,
        },
    ),
    MetricSpec(
        "e50",
        "E50",
        "num",
        qualifier="probability",
        section="calibration",
        ideal="0",
        views={"calibration": 8},
    ),
    MetricSpec(
        "e90",
        "E90",
        "num",
        qualifier="probability",
        section="calibration",
        ideal="0",
        views={"calibration": 9},
    ),
    MetricSpec(
        "sens_at_gate",
        "Sensitivity at the gate",
        "pct",
        interval="Wilson",
        column="Sensitivity at {gate:g}",
        subgroup_key="sensitivity_at_gate",
        views={
            "cli": 9,
            "headline": 10,
            "family": 11,
            "subgroup": 7,
            "oracle": 5,
            "card_oracle": 7,
        },
    ),
    MetricSpec(
        "spec_at_gate",
        "Specificity at the gate",
        "pct",
        interval="Wilson",
        views={"cli": 10, "headline": 11, "family": 12},
    ),
    MetricSpec(
        "ppv_at_gate",
        "PPV at the gate",
        "pct",
        interval="Wilson",
        column="PPV at {gate:g}",
        views={
            "cli": 11,
            "headline": 12,
            "family": 13,
            "subgroup": 8,
            "oracle": 6,
            "card_oracle": 8,
        },
    ),
    MetricSpec(
        "npv_at_gate",
        "NPV at the gate",
        "pct",
        interval="Wilson",
        views={"cli": 12, "headline": 13, "family": 14},
    ),
    MetricSpec(
        "n_above_gate",
        "Patients above the gate",
        "count",
        column="n > {gate:g}",
        views={"cli": 13, "family": 15, "subgroup": 6},
    ),
    MetricSpec(
        "share_above_gate",
        "Share above the gate",
        "pct",
        interval="Wilson",
        views={"headline": 14, "family": 16, "oracle": 7, "card_oracle": 9},
    ),
    MetricSpec(
        "nb_at_gate",
        "Net benefit at the gate",
        "num",
        section="clinical_utility",
        interval="bootstrap",
        views={"headline": 15, "family": 17, "oracle": 8, "card_oracle": 6},
    ),
    MetricSpec(
        "nb_treat_all_at_gate",
        "Net benefit of admitting everyone at the gate",
        "num",
        section="clinical_utility",
    ),
)
"""The headline metrics, one row each: the one list every metric view is cut from."""


def metric_view(view: str) -> tuple[MetricSpec, ...]:
    """The metrics of one view (a key of :data:`VIEWS`), in the view's order.

    Raises:
        KeyError: an unknown view.
    """
    if view not in VIEWS:
        raise KeyError(f"unknown metric view {view!r}; known: {sorted(VIEWS)}")
    chosen = [spec for spec in METRICS if view in spec.views]
    return tuple(sorted(chosen, key=lambda spec: spec.views[view]))


def view_keys(view: str) -> tuple[str, ...]:
    """The metric keys of one view, in the view's order."""
    return tuple(spec.key for spec in metric_view(view))


def section_keys(section: str) -> tuple[str, ...]:
    """The metric keys a report section repeats from the summary, in key order."""
    return tuple(spec.key for spec in METRICS if spec.section == section)


METRIC_KEYS: tuple[str, ...] = tuple(spec.key for spec in METRICS)
"""Keys of :func:`classification_report`, in order; the same in every run."""

MODEL_CARD_METRICS: tuple[str, ...] = view_keys("model_metadata")
"""Held-out metrics a saved model carries in its own metadata (``held_out_metrics``),
shown by the service's ``model_info``."""

_NEWTON_MAX_ITER = 100
_NEWTON_TOL = 1e-10
_LOWESS_GRID = 200


# ── input checks ─────────────────────────────────────────────────────────────


def _check_y(y: ArrayLike) -> np.ndarray:
    """Outcomes as a 1-D float array of 0/1, or ValueError."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("y is empty")
    if arr.dtype == bool:
        return arr.astype(float)
    try:
        out = arr.astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"y must be numeric 0/1, got dtype {arr.dtype}") from err
    bad = ~np.isin(out, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"y must contain only 0 and 1; found {np.unique(out[bad])[:5].tolist()}"
        )
    return out


def _check(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes and probabilities as 1-D float arrays, or ValueError."""
    y_arr = _check_y(y)
    p_arr = np.asarray(p)
    if p_arr.ndim != 1:
        raise ValueError(f"p must be 1-D, got shape {p_arr.shape}")
    if len(p_arr) != len(y_arr):
        raise ValueError(
            f"y and p must have the same length, got {len(y_arr)} and {len(p_arr)}"
        )
    try:
        p_arr = p_arr.astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"p must be numeric, got dtype {p_arr.dtype}") from err
    if not np.isfinite(p_arr).all():
        raise ValueError("p must be finite (no NaN or inf)")
    if (p_arr < 0).any() or (p_arr > 1).any():
        raise ValueError(
            f"p must lie in [0, 1]; found range [{p_arr.min()}, {p_arr.max()}]"
        )
    return y_arr, p_arr


def _require_both_classes(y: np.ndarray, what: str) -> None:
    events = int(y.sum())
    if events == 0 or events == len(y):
        raise ValueError(
            f"{what} needs at least one event and one non-event; "
            f"got {events} events in {len(y)} rows"
        )


def _check_threshold(threshold: float, *, open_interval: bool = False) -> float:
    t = float(threshold)
    if open_interval and not 0.0 < t < 1.0:
        raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return t


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when the denominator is 0 (an undefined rate, not an error)."""
    return num / den if den else math.nan


# ── discrimination ───────────────────────────────────────────────────────────


def _delong(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """AUROC and its DeLong variance by the fast midrank algorithm.

    With m events X, n non-events Y and midranks T_Z (pooled), T_X (within events),
    T_Y (within non-events) (Sun & Xu 2014, Algorithm 1):
    AUC = (ΣT_Z[X] − m(m+1)/2) / (mn); placements V10_i = (T_Z[X_i] − T_X[i]) / n and
    V01_j = 1 − (T_Z[Y_j] − T_Y[j]) / m; Var = S10/m + S01/n with S the sample
    variances (denominator m − 1, n − 1). Variance is NaN when m or n is below 2.
    """
    pos = y == 1
    x, z = p[pos], p[~pos]
    m, n = len(x), len(z)
    tz = rankdata(np.concatenate([x, z]), method="average")
    tx = rankdata(x, method="average")
    ty = rankdata(z, method="average")
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    if m < 2 or n < 2:
        return float(auc), math.nan
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n
    return float(auc), float(var)


def auroc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the ROC curve (C-statistic), ties counted as one half.

    AUC = P(p_event > p_non-event) + ½·P(tie), computed as the Mann–Whitney
    statistic from midranks: (Σ rank(events) − m(m+1)/2) / (m·n), with m events and
    n non-events (Hanley & McNeil, Radiology 1982;143:29).

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        AUROC in [0, 1]; 0.5 is no discrimination.

    Raises:
        ValueError: invalid inputs, or fewer than one event and one non-event.
    """
    y_arr, p_arr = _check(y, p)
    _require_both_classes(y_arr, "AUROC")
    return _delong(y_arr, p_arr)[0]


def auroc_ci(
    y: ArrayLike, p: ArrayLike, level: float = 0.95
) -> tuple[float, float, float]:
    """AUROC with a DeLong confidence interval.

    Var(AUC) = S10/m + S01/n, where S10 and S01 are the sample variances of the
    structural components (placement values) of the m events and n non-events
    (DeLong, DeLong & Clarke-Pearson, Biometrics 1988;44:837), computed in
    O(N log N) from midranks (Sun & Xu, IEEE Signal Process Lett 2014;21:1389).
    Interval: AUC ± z_{(1+level)/2}·√Var, clipped to [0, 1] (as pROC's ``ci.auc``).

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        level: two-sided confidence level in (0, 1).

    Returns:
        (estimate, low, high). Low and high are NaN with fewer than two events or
        two non-events, where the variance is undefined.

    Raises:
        ValueError: invalid inputs or level, or no event / no non-event.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    y_arr, p_arr = _check(y, p)
    _require_both_classes(y_arr, "AUROC")
    auc, var = _delong(y_arr, p_arr)
    if math.isnan(var):
        return auc, math.nan, math.nan
    half = float(norm.ppf(0.5 + level / 2.0)) * math.sqrt(var)
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def auprc(y: ArrayLike, p: ArrayLike) -> float:
    """Area under the precision–recall curve as average precision.

    AP = Σ_k (R_k − R_{k−1})·P_k over descending thresholds, with precision P_k and
    recall R_k at the k-th threshold (no interpolation; scikit-learn
    ``average_precision_score``; Manning, Raghavan & Schütze 2008, §8.4).
    The no-skill value is the prevalence.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        Average precision in [0, 1].

    Raises:
        ValueError: invalid inputs, or no event.
    """
    y_arr, p_arr = _check(y, p)
    if y_arr.sum() == 0:
        raise ValueError("AUPRC needs at least one event; got 0")
    return float(average_precision_score(y_arr, p_arr))


# ── overall accuracy ─────────────────────────────────────────────────────────


def brier(y: ArrayLike, p: ArrayLike) -> float:
    """Brier score: mean squared error of the predicted risk.

    Brier = (1/N) Σ (p_i − y_i)² (Brier, Mon Weather Rev 1950;78:1). 0 is perfect;
    a model that predicts the prevalence π for everyone scores π(1 − π).

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        Brier score in [0, 1].
    """
    y_arr, p_arr = _check(y, p)
    return float(np.mean((p_arr - y_arr) ** 2))


def brier_scaled(y: ArrayLike, p: ArrayLike) -> float:
    """Scaled Brier score (Brier skill score against the prevalence).

    Brier_scaled = 1 − Brier / (π(1 − π)), π the observed prevalence
    (Steyerberg et al., Epidemiology 2010;21:128). 1 is perfect, 0 is no better
    than predicting π for everyone, negative is worse.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        Scaled Brier score, at most 1.

    Raises:
        ValueError: invalid inputs, or no event / no non-event (π(1 − π) = 0).
    """
    y_arr, p_arr = _check(y, p)
    _require_both_classes(y_arr, "Scaled Brier")
    prev = float(y_arr.mean())
    return 1.0 - float(np.mean((p_arr - y_arr) ** 2)) / (prev * (1.0 - prev))


# ── calibration ──────────────────────────────────────────────────────────────


def _loglik(y: np.ndarray, eta: np.ndarray) -> float:
    """Bernoulli log-likelihood at linear predictor eta, without overflow."""
    return float(np.sum(y * eta - np.logaddexp(0.0, eta)))


def calibration_in_the_large(y: ArrayLike, p: ArrayLike) -> float:
    """Calibration-in-the-large: the calibration intercept with the slope fixed at 1.

    a is the maximum-likelihood solution of logit P(y = 1) = a + offset(logit p)
    (Steyerberg, Clinical Prediction Models, 2nd ed. 2019, ch. 15; Van Calster et
    al., BMC Med 2019;17:230). Ideal 0; a > 0 means the model under-predicts
    (observed risk higher than predicted), a < 0 over-predicts. Solved by 1-D
    Newton–Raphson, score U(a) = Σ(y − σ(a + o)), information I(a) = Σσ(1 − σ),
    from a₀ = logit(ȳ) − logit(p̄) with step halving; p is clipped to
    [1e-8, 1 − 1e-8] so 0 and 1 have finite logits.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        Calibration intercept a on the log-odds scale.

    Raises:
        ValueError: invalid inputs, or no event / no non-event (no finite MLE).
    """
    y_arr, p_arr = _check(y, p)
    _require_both_classes(y_arr, "Calibration-in-the-large")
    offset = logit(p_arr)
    p_bar = float(np.clip(p_arr.mean(), P_CLIP, 1.0 - P_CLIP))
    a = float(logit(y_arr.mean()) - logit(p_bar))
    ll = _loglik(y_arr, a + offset)
    for _ in range(_NEWTON_MAX_ITER):
        mu = expit(a + offset)
        score = float(np.sum(y_arr - mu))
        info = float(np.sum(mu * (1.0 - mu)))
        if info <= 0.0:
            break
        step = score / info
        # Step halving keeps every iterate an ascent step of the concave likelihood.
        for _ in range(50):
            new_ll = _loglik(y_arr, a + step + offset)
            if new_ll >= ll - 1e-12:
                break
            step /= 2.0
        a += step
        ll = new_ll
        if abs(step) < _NEWTON_TOL:
            break
    return a


def calibration_slope(y: ArrayLike, p: ArrayLike) -> tuple[float, float]:
    """Calibration intercept and slope of the logistic recalibration model.

    (a, b) maximise the unpenalised likelihood of logit P(y = 1) = a + b·logit(p)
    (Cox, Biometrika 1958;45:562; Steyerberg 2019, ch. 15). Ideal (0, 1); b < 1 means
    predictions are too extreme (overfitting), b > 1 too moderate. Fitted by
    Newton–Raphson / IRLS on the two parameters with step halving, p clipped to
    [1e-8, 1 − 1e-8].

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        (intercept a, slope b). Both NaN, with a RuntimeWarning, when the MLE does
        not exist: p constant (slope unidentifiable) or logit(p) perfectly separates
        the outcomes (slope diverges).

    Raises:
        ValueError: invalid inputs, or no event / no non-event.
    """
    y_arr, p_arr = _check(y, p)
    _require_both_classes(y_arr, "Calibration slope")
    lp = logit(p_arr)
    if np.ptp(lp) == 0.0:
        warnings.warn(
            "calibration slope undefined: p is constant", RuntimeWarning, stacklevel=2
        )
        return math.nan, math.nan
    x = np.column_stack([np.ones_like(lp), lp])
    beta = np.array([float(logit(y_arr.mean())), 0.0])
    ll = _loglik(y_arr, x @ beta)
    for _ in range(_NEWTON_MAX_ITER):
        mu = expit(x @ beta)
        w = mu * (1.0 - mu)
        grad = x.T @ (y_arr - mu)
        hess = (x * w[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        for _ in range(50):
            new_ll = _loglik(y_arr, x @ (beta + step))
            if new_ll >= ll - 1e-12:
                break
            step /= 2.0
        beta = beta + step
        ll = new_ll
        if np.max(np.abs(step)) < _NEWTON_TOL:
            return float(beta[0]), float(beta[1])
    warnings.warn(
        "calibration slope did not converge (logit p may separate the outcomes)",
        RuntimeWarning,
        stacklevel=2,
    )
    return math.nan, math.nan


def oe_ratio(y: ArrayLike, p: ArrayLike) -> float:
    """Observed-to-expected events ratio.

    O:E = Σy / Σp (Riley et al., BMJ 2024;384:e074819 "Evaluation of clinical
    prediction models (part 1)"; Debray et al., BMJ 2017;356:i6460). Ideal 1; > 1
    means the model under-predicts.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        O:E ratio; inf if events were observed but none expected, NaN if neither.
    """
    y_arr, p_arr = _check(y, p)
    observed, expected = float(y_arr.sum()), float(p_arr.sum())
    if expected == 0.0:
        return math.inf if observed > 0 else math.nan
    return observed / expected


def lowess_at(xs: np.ndarray, ys: np.ndarray, x0: np.ndarray, k: int) -> np.ndarray:
    """Local-linear tricube smoother of ys on sorted xs, evaluated at points x0.

    Runs with one BLAS thread: its thousands of short dot products were measured
    10-100x slower with a multi-threaded OpenBLAS on a busy 2-core machine.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _lowess_kernel(xs, ys, x0, k)


def _lowess_kernel(
    xs: np.ndarray, ys: np.ndarray, x0: np.ndarray, k: int
) -> np.ndarray:
    """The smoother itself (see :func:`lowess_at`).

    Each point uses its k nearest neighbours in x (a contiguous window of the sorted
    xs, found by binary search), weights (1 − (d/h)³)³ with h the distance to the
    k-th nearest, and a weighted least-squares line centred at x0.
    """
    n = len(xs)
    # Binary search for the left edge of the k-nearest window ("k closest elements").
    lo = np.zeros(len(x0), dtype=np.int64)
    hi = np.full(len(x0), n - k, dtype=np.int64)
    while np.any(lo < hi):
        active = lo < hi
        mid = (lo + hi) // 2
        right = xs[np.minimum(mid + k, n - 1)]  # clamp only matters when inactive
        go_right = active & (x0 - xs[mid] > right - x0)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    fitted = np.empty(len(x0))
    for i, (start, c) in enumerate(zip(lo, x0, strict=True)):
        dx = xs[start : start + k] - c
        wy = ys[start : start + k]
        h = max(-dx[0], dx[-1])
        if h <= 0.0:
            fitted[i] = wy.mean()  # every neighbour sits at x0
            continue
        w = np.abs(dx)
        w /= h
        w **= 3
        np.subtract(1.0, w, out=w)
        np.clip(w, 0.0, None, out=w)
        w **= 3
        wdx = w * dx
        # Weighted least squares of wy on (1, dx) through dot products; the fitted
        # line at dx = 0 is the smoother's value at x0.
        s0, s1, s2 = w.sum(), wdx.sum(), wdx @ dx
        t0, t1 = w @ wy, wdx @ wy
        det = s0 * s2 - s1 * s1
        if det <= 1e-12 * s0 * s2:
            fitted[i] = t0 / s0  # all weight at one x: the local line is a local mean
            continue
        fitted[i] = (s2 * t0 - s1 * t1) / det
    return fitted


def smoothed_calibration(
    y: ArrayLike, p: ArrayLike, frac: float = 2.0 / 3.0
) -> np.ndarray:
    """Observed risk at each p from a LOWESS calibration curve.

    Local-linear regression of y on p with tricube weights over the ⌈frac·N⌉ nearest
    neighbours (Cleveland, JASA 1979;74:829), without robustness iterations: with a
    binary outcome the bisquare re-weighting would treat the minority outcome as
    outliers and pull the curve towards the majority class. To keep large N fast
    (100,000 rows in well under a second) the smoother is evaluated on at most 200
    points — every distinct p when there are no more than 200, otherwise 200
    quantiles of p from the minimum to the maximum — and linearly interpolated at
    each p. Fitted values are clipped to [0, 1].

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        frac: share of the rows in each local window, in (0, 1].

    Returns:
        Smoothed observed risk, one value per row of p.
    """
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"frac must lie in (0, 1], got {frac}")
    y_arr, p_arr = _check(y, p)
    order = np.argsort(p_arr, kind="stable")
    xs, ys = p_arr[order], y_arr[order]
    n = len(xs)
    k = min(n, max(2, math.ceil(frac * n)))
    grid = np.unique(xs)
    if len(grid) > _LOWESS_GRID:
        grid = np.unique(np.quantile(xs, np.linspace(0.0, 1.0, _LOWESS_GRID)))
    fitted = np.clip(lowess_at(xs, ys, grid, k), 0.0, 1.0)
    return np.interp(p_arr, grid, fitted)


def ici_e50_e90(y: ArrayLike, p: ArrayLike) -> tuple[float, float, float]:
    """Integrated Calibration Index and the median / 90th percentile of the error.

    With p̃_i the LOWESS-smoothed observed risk at p_i (:func:`smoothed_calibration`),
    ICI = (1/N) Σ|p_i − p̃_i|, E50 = median |p − p̃|, E90 = 90th percentile
    (Austin & Steyerberg, Stat Med 2019;38:4051). 0 is perfect calibration.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].

    Returns:
        (ICI, E50, E90) on the probability scale.

    Raises:
        ValueError: invalid inputs.
    """
    y_arr, p_arr = _check(y, p)
    err = np.abs(p_arr - smoothed_calibration(y_arr, p_arr))
    return (
        float(err.mean()),
        float(np.median(err)),
        float(np.quantile(err, 0.9)),
    )


def calibration_curve_table(
    y: ArrayLike,
    p: ArrayLike,
    n_bins: int = 10,
    strategy: str = "quantile",
    level: float = 0.95,
) -> pd.DataFrame:
    """Binned calibration table for a calibration plot.

    Bin edges are quantiles of p (``"quantile"``; duplicate edges from tied p are
    merged, so fewer bins may result) or equal widths on [0, 1] (``"uniform"``).
    A bin holds (edge_k, edge_{k+1}], the first bin also its lower edge. Empty bins
    are dropped. The observed proportion carries a Wilson score interval
    (Wilson, JASA 1927;22:209): (p̂ + z²/2n ± z√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n).

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        n_bins: number of bins (before merging duplicate edges), at least 1.
        strategy: ``"quantile"`` or ``"uniform"``.
        level: confidence level of the Wilson interval.

    Returns:
        One row per non-empty bin with columns bin (0-based index), mean_predicted,
        observed, n, ci_low, ci_high.

    Raises:
        ValueError: invalid inputs, n_bins, strategy or level.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    y_arr, p_arr = _check(y, p)
    if strategy == "quantile":
        edges = np.unique(np.quantile(p_arr, np.linspace(0.0, 1.0, n_bins + 1)))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    idx = np.searchsorted(edges[1:-1], p_arr, side="left")
    n_per = np.bincount(idx, minlength=len(edges) - 1).astype(float)
    sum_p = np.bincount(idx, weights=p_arr, minlength=len(edges) - 1)
    sum_y = np.bincount(idx, weights=y_arr, minlength=len(edges) - 1)
    keep = n_per > 0
    n_k, obs = n_per[keep], sum_y[keep] / n_per[keep]
    z = float(norm.ppf(0.5 + level / 2.0))
    denom = 1.0 + z**2 / n_k
    centre = (obs + z**2 / (2.0 * n_k)) / denom
    half = z * np.sqrt(obs * (1.0 - obs) / n_k + z**2 / (4.0 * n_k**2)) / denom
    return pd.DataFrame(
        {
            "bin": np.flatnonzero(keep),
            "mean_predicted": sum_p[keep] / n_k,
            "observed": obs,
            "n": n_k.astype(int),
            "ci_low": np.clip(centre - half, 0.0, 1.0),
            "ci_high": np.clip(centre + half, 0.0, 1.0),
        }
    )


def wilson_interval(
    successes: float, n: float, level: float = 0.95
) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``.

    (p̂ + z²/2n ± z√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n), the interval of
    :func:`calibration_curve_table` (Wilson, JASA 1927;22:209). Unlike the Wald
    interval it stays inside [0, 1] and is not degenerate at 0 or n successes,
    which matters for the few patients above the gate.

    Args:
        successes: count of successes, 0 ≤ successes ≤ n.
        n: count of trials; 0 gives (NaN, NaN).
        level: confidence level in (0, 1).

    Returns:
        (low, high), proportions in [0, 1].

    Raises:
        ValueError: a count out of range or an invalid level.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n < 0 or not 0 <= successes <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + level / 2.0))
    obs = successes / n
    denom = 1.0 + z**2 / n
    centre = (obs + z**2 / (2.0 * n)) / denom
    half = z * math.sqrt(obs * (1.0 - obs) / n + z**2 / (4.0 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ── the threshold table at the gate ──────────────────────────────────────────


def threshold_metrics(y: ArrayLike, p: ArrayLike, threshold: float) -> dict[str, float]:
    """Confusion counts and rates when patients with p > threshold are flagged.

    Above the gate means p > threshold, strictly (the trial admits risk "higher
    than 50 %"). sensitivity = TP/(TP+FN), specificity = TN/(TN+FP),
    PPV = TP/(TP+FP), NPV = TN/(TN+FN) (Altman & Bland, BMJ 1994;308:1552 and
    309:102); share_above = n_above/N, and N/n_above is the number screened per
    patient admitted. A 0/0 rate is NaN, not an error.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        threshold: decision threshold in [0, 1]; default the 0.5 trial gate.

    Returns:
        Dict with keys tp, fp, tn, fn, sensitivity, specificity, ppv, npv,
        n_above, share_above (counts as floats).

    Raises:
        ValueError: invalid inputs or threshold.
    """
    t = _check_threshold(threshold)
    y_arr, p_arr = _check(y, p)
    above = p_arr > t
    event = y_arr == 1
    tp = float(np.sum(above & event))
    fp = float(np.sum(above & ~event))
    fn = float(np.sum(~above & event))
    tn = float(np.sum(~above & ~event))
    n_above = tp + fp
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, n_above),
        "npv": _ratio(tn, tn + fn),
        "n_above": n_above,
        "share_above": n_above / len(y_arr),
    }


# ── clinical utility ─────────────────────────────────────────────────────────


def net_benefit(y: ArrayLike, p: ArrayLike, threshold: float) -> float:
    """Net benefit of treating (here: admitting) patients with p > threshold.

    NB(p_t) = TP/N − FP/N · p_t/(1 − p_t) (Vickers & Elkin, Med Decis Making
    2006;26:565), with TP and FP counted at p > p_t, the same strict rule as the gate.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        threshold: threshold probability p_t in (0, 1).

    Returns:
        Net benefit in true-positive units per patient; at most the prevalence.

    Raises:
        ValueError: invalid inputs or threshold outside (0, 1).
    """
    t = _check_threshold(threshold, open_interval=True)
    y_arr, p_arr = _check(y, p)
    above = p_arr > t
    tp = float(np.sum(above & (y_arr == 1)))
    fp = float(np.sum(above & (y_arr == 0)))
    n = len(y_arr)
    return tp / n - fp / n * t / (1.0 - t)


def net_benefit_treat_all(y: ArrayLike, threshold: float) -> float:
    """Net benefit of treating everyone.

    NB_all(p_t) = π − (1 − π) · p_t/(1 − p_t), π the prevalence (Vickers & Elkin
    2006). Treating no one has net benefit 0.

    Args:
        y: observed outcomes, 0/1.
        threshold: threshold probability p_t in (0, 1).

    Returns:
        Net benefit of treat-all.

    Raises:
        ValueError: invalid outcomes or threshold outside (0, 1).
    """
    t = _check_threshold(threshold, open_interval=True)
    prev = float(_check_y(y).mean())
    return prev - (1.0 - prev) * t / (1.0 - t)


def decision_curve(
    y: ArrayLike, p: ArrayLike, thresholds: Sequence[float] | np.ndarray
) -> pd.DataFrame:
    """Decision curve: net benefit of the model, treat-all and treat-none.

    At each p_t, NB_model = TP/N − FP/N · p_t/(1 − p_t) with p > p_t flagged,
    NB_all = π − (1 − π) · p_t/(1 − p_t), NB_none = 0 (Vickers & Elkin, Med Decis
    Making 2006;26:565; Vickers et al., Diagn Progn Res 2019;3:18). clinical.md §7
    suggests p_t ≈ 0.2–0.6, including the 0.5 gate.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        thresholds: threshold probabilities, each in (0, 1).

    Returns:
        DataFrame with columns threshold, net_benefit_model, net_benefit_all,
        net_benefit_none; one row per threshold, in the given order.

    Raises:
        ValueError: invalid inputs, or a threshold outside (0, 1).
    """
    y_arr, p_arr = _check(y, p)
    t = np.asarray(thresholds, dtype=float).ravel()
    if t.size == 0:
        raise ValueError("thresholds is empty")
    if not np.all((t > 0.0) & (t < 1.0)):
        raise ValueError("every threshold must lie in (0, 1)")
    n = len(y_arr)
    p_event = np.sort(p_arr[y_arr == 1])
    p_non = np.sort(p_arr[y_arr == 0])
    # Count p > t by sorted search: len − (number ≤ t).
    tp = len(p_event) - np.searchsorted(p_event, t, side="right")
    fp = len(p_non) - np.searchsorted(p_non, t, side="right")
    odds = t / (1.0 - t)
    prev = len(p_event) / n
    return pd.DataFrame(
        {
            "threshold": t,
            "net_benefit_model": tp / n - fp / n * odds,
            "net_benefit_all": prev - (1.0 - prev) * odds,
            "net_benefit_none": np.zeros_like(t),
        }
    )


# ── the headline report ──────────────────────────────────────────────────────


def classification_report(
    y: ArrayLike, p: ArrayLike, threshold: float
) -> dict[str, float]:
    """The fixed-name headline metrics every run logs (keys: :data:`METRIC_KEYS`).

    Discrimination (AUROC with 95 % DeLong CI, AUPRC), Brier and scaled Brier,
    calibration (citl = :func:`calibration_in_the_large`; cal_intercept and
    cal_slope from :func:`calibration_slope`; O:E; ICI, E50, E90), the threshold
    table at the gate (p > threshold) and net benefit of the model and of
    treat-all at the gate. See each function for its formula and source.

    Args:
        y: observed outcomes, 0/1.
        p: predicted probabilities in [0, 1].
        threshold: the decision threshold; default the 0.5 trial gate.

    Returns:
        Dict of floats in :data:`METRIC_KEYS` order. Undefined values are NaN.

    Raises:
        ValueError: invalid inputs or threshold, or no event / no non-event.
    """
    t = _check_threshold(threshold, open_interval=True)
    y_arr, p_arr = _check(y, p)
    _require_both_classes(y_arr, "classification_report")
    auc, low, high = auroc_ci(y_arr, p_arr)
    cal_a, cal_b = calibration_slope(y_arr, p_arr)
    ici, e50, e90 = ici_e50_e90(y_arr, p_arr)
    gate = threshold_metrics(y_arr, p_arr, t)
    report = {
        "n": float(len(y_arr)),
        "events": float(y_arr.sum()),
        "prevalence": float(y_arr.mean()),
        "mean_predicted": float(p_arr.mean()),
        "auroc": auc,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "auprc": auprc(y_arr, p_arr),
        "brier": brier(y_arr, p_arr),
        "brier_scaled": brier_scaled(y_arr, p_arr),
        "citl": calibration_in_the_large(y_arr, p_arr),
        "oe_ratio": oe_ratio(y_arr, p_arr),
        "cal_intercept": cal_a,
        "cal_slope": cal_b,
        "ici": ici,
        "e50": e50,
        "e90": e90,
        "sens_at_gate": gate["sensitivity"],
        "spec_at_gate": gate["specificity"],
        "ppv_at_gate": gate["ppv"],
        "npv_at_gate": gate["npv"],
        "n_above_gate": gate["n_above"],
        "share_above_gate": gate["share_above"],
        "nb_at_gate": net_benefit(y_arr, p_arr, t),
        "nb_treat_all_at_gate": net_benefit_treat_all(y_arr, t),
    }
    return {key: float(report[key]) for key in METRIC_KEYS}
