"""The three-valued gate: above, below, or undetermined — and what would settle it.

For each patient the gate asks where the 2-year risk could lie given what is *not*
recorded. A record with every predictor has one risk. A record with missing
predictors gets plausible completions (:mod:`riskmodel.imputation`); its risk could
lie anywhere between the 10th and 90th percentile of their risks, and as far as the
risks of its two extreme completions: every missing predictor at the most (or the
least) alarming of its plausible values. For the labs whose effect the model
constrains to one direction (anti-dsDNA up, C3 and C4 down) that direction is exact;
for the others it is the direction their plausible values push this record's risk.

Then, with the edges of :class:`~riskmodel.zone.ReviewZone` for the gate in force:

* ``below``  — the whole range is at or below the exclude edge;
* ``above``  — the whole range is above the pass edge;
* ``undetermined`` — otherwise: the risk sits in the review zone, or the missing
  predictors could move it across an edge. The missing predictors are then listed,
  the ones whose plausible values move the risk most first ("measure C3, C4").

A record with nothing recorded beyond sex and age can never be ``below``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from riskmodel.imputation import Imputer
from riskmodel.zone import ReviewZone

#: The plausible range of a risk: these quantiles of its completions' risks.
RANGE_QUANTILES = (0.10, 0.90)
#: Records completed at once (bounds the memory of a large batch).
CHUNK = 2_000
#: Who a patient is, not what was measured: a record with nothing else recorded is
#: never ``below`` (nothing measured supports an exclusion).
DEMOGRAPHICS = ("male", "age_years")

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GateStates:
    """The gate for every patient of a matrix.

    Attributes:
        state: ``above``, ``below`` or ``undetermined`` per patient.
        risk: the predicted 2-year risk (missing predictors down the model's
            default branches).
        low: lowest plausible risk given what is not recorded.
        high: highest plausible risk given what is not recorded.
        to_obtain: per patient, the missing predictors whose measurement could
            settle an undetermined gate, most decisive first (empty otherwise).
        exclude_edge: at or below this risk the gate excludes.
        pass_edge: above this risk the gate passes.
    """

    state: np.ndarray
    risk: np.ndarray
    low: np.ndarray
    high: np.ndarray
    to_obtain: list[tuple[str, ...]]
    exclude_edge: float
    pass_edge: float


def plausible_range(
    score: Scorer,
    imputer: Imputer,
    X: np.ndarray,
    monotone: Mapping[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    """(low, high, risk, missing predictors by influence) of records with missing
    values.

    The range holds the record's own risk (missing predictors down the model's
    default branches), the 10th–90th percentile of the risks of its plausible
    completions, and the risks of its two extreme completions: every missing
    predictor at the most (and at the least) alarming of its plausible values. A
    predictor's direction is the one its plausible values push this record's risk
    (the sign of their covariance over the completions), or the model's own
    constraint for the monotone labs.

    Args:
        score: features (rows, features) → calibrated risk per row.
        imputer: the model's chained equations.
        X: records (rows, features), each with at least one missing predictor.
        monotone: feature → +1 (risk rises with it) or −1, for constrained labs.
    """
    names = imputer.features
    completed = imputer.complete(X)  # (n, draws, d)
    n, draws, d = completed.shape
    risks = score(completed.reshape(n * draws, d)).reshape(n, draws)
    low, high = np.quantile(risks, RANGE_QUANTILES, axis=1)
    centred = completed - completed.mean(axis=1, keepdims=True)
    cov = np.einsum("ndj,nd->nj", centred, risks - risks.mean(axis=1, keepdims=True))
    direction = np.sign(cov)
    for j, name in enumerate(names):
        if name in monotone:
            direction[:, j] = monotone[name]
    # recorded values are kept in every completion: top == bottom == the value
    top, bottom, middle = (
        completed.max(axis=1),
        completed.min(axis=1),
        completed.mean(axis=1),
    )
    worst = np.where(direction > 0, top, np.where(direction < 0, bottom, middle))
    best = np.where(direction > 0, bottom, np.where(direction < 0, top, middle))
    # one call for the record itself and its two extremes (few rows: the tree walk)
    own = score(np.concatenate([X, worst, best]).astype(np.float32))
    risk, worst_risk, best_risk = own[:n], own[n : 2 * n], own[2 * n :]
    high = np.maximum.reduce([high, worst_risk, risk])
    low = np.minimum.reduce([low, best_risk, risk])
    spread = centred.std(axis=1)  # |corr| × sd(risk) = |cov| / sd(predictor)
    with np.errstate(invalid="ignore", divide="ignore"):
        influence = np.where(spread > 0, np.abs(cov) / draws / spread, 0.0)
    return low, high, risk, _by_influence(influence, np.isnan(X), names)


def _by_influence(
    influence: np.ndarray, missing: np.ndarray, names: tuple[str, ...]
) -> list[tuple[str, ...]]:
    """Each record's missing predictors, the ones that move its risk most first.

    Influence of a predictor: |correlation of its plausible values with the risk|
    × the spread of the risk, over the record's completions.
    """
    out = []
    for i in range(len(missing)):
        cols = np.flatnonzero(missing[i])
        ranked = cols[np.argsort(-influence[i, cols], kind="stable")]
        out.append(tuple(names[j] for j in ranked))
    return out


def gate_states(
    score: Scorer,
    imputer: Imputer,
    zone: ReviewZone,
    X: np.ndarray,
    threshold: float,
    monotone: Mapping[str, int],
) -> GateStates:
    """The gate of every row of ``X`` for a gate ``threshold`` on the risk."""
    X = np.asarray(X, dtype=np.float32)
    risk = np.empty(len(X), dtype=np.float64)
    low, high = risk.copy(), risk.copy()
    to_obtain: list[tuple[str, ...]] = [()] * len(X)
    incomplete = np.isnan(X).any(axis=1)
    if not incomplete.all():
        risk[~incomplete] = score(X[~incomplete])
        low[~incomplete] = high[~incomplete] = risk[~incomplete]
    incomplete = np.flatnonzero(incomplete)
    for start in range(0, len(incomplete), CHUNK):
        rows = incomplete[start : start + CHUNK]
        low[rows], high[rows], risk[rows], ranked = plausible_range(
            score, imputer, X[rows], monotone
        )
        for i, names in zip(rows, ranked, strict=True):
            to_obtain[i] = names
    exclude_edge, pass_edge = zone.edges(threshold)
    state = np.where(
        high <= exclude_edge,
        "below",
        np.where(low > pass_edge, "above", "undetermined"),
    )
    measured = [j for j, f in enumerate(imputer.features) if f not in DEMOGRAPHICS]
    nothing_measured = np.isnan(X[:, measured]).all(axis=1)
    state[nothing_measured & (state == "below")] = "undetermined"
    to_obtain = [
        names if s == "undetermined" else ()
        for names, s in zip(to_obtain, state, strict=True)
    ]
    return GateStates(state, risk, low, high, to_obtain, exclude_edge, pass_edge)
