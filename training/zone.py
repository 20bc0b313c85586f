"""Fit the review zone's observed event-rate curve (:class:`riskmodel.zone.ReviewZone`).

The curve rests on out-of-fold predictions: each development patient's risk from
the fold model that did not see the patient, mapped by the model's calibration.
Only observed outcomes enter; the synthetic true risk never does.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from riskmodel.zone import ReviewZone


def fit_review_zone(
    risk: np.ndarray, y: np.ndarray, *, exclude_margin: float, pass_margin: float
) -> ReviewZone:
    """The observed 2-year event rate as a function of predicted risk.

    Args:
        risk: out-of-fold predicted risks of the development patients (0–1).
        y: their observed 2-year outcomes (0/1).
        exclude_margin: see :class:`~riskmodel.zone.ReviewZone`.
        pass_margin: see :class:`~riskmodel.zone.ReviewZone`.
    """
    risk = np.asarray(risk, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    steps = IsotonicRegression(out_of_bounds="clip").fit(risk, y).predict(risk)
    levels, which = np.unique(steps, return_inverse=True)
    centres = np.bincount(which, weights=risk) / np.bincount(which)
    order = np.argsort(centres)
    return ReviewZone(
        risk=tuple(map(float, centres[order])),
        event_rate=tuple(map(float, levels[order])),
        exclude_margin=exclude_margin,
        pass_margin=pass_margin,
        n_patients=len(y),
        n_events=int(y.sum()),
    )
