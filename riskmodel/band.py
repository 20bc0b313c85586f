"""The per-patient uncertainty band at serving time: a bootstrap ensemble's spread.

Each member is a booster with its own calibration, developed on a bootstrap resample
(see ``training/uncertainty.py`` for how and why). The band is the empirical
``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the members' calibrated risks,
optionally widened on the logit scale by ``inflation`` (a split-conformal factor fitted
where the true risk is known; 1.0 = the raw bootstrap band).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import xgboost as xgb

from riskmodel.calibration import Calibration
from riskmodel.maths import expit, logit
from riskmodel.trees import TreeArrays, booster_margin, compile_booster


def band_from_predictions(
    preds: np.ndarray, level: float, inflation: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per patient from member predictions of shape (members, patients)."""
    alpha = (1.0 - level) / 2.0
    low, mid, high = np.quantile(preds, [alpha, 0.5, 1.0 - alpha], axis=0)
    if inflation == 1.0:
        return low, high
    # Scale each side's distance from the median on the logit scale, so the band
    # stays inside (0, 1) and keeps the asymmetry of the members' spread.
    z_low, z_mid, z_high = logit(low), logit(mid), logit(high)
    return (
        expit(z_mid - inflation * (z_mid - z_low)),
        expit(z_mid + inflation * (z_high - z_mid)),
    )


@dataclass(frozen=True)
class RiskBand:
    """Bootstrap members and the band's level and inflation."""

    boosters: tuple[xgb.Booster, ...]
    calibrations: tuple[Calibration, ...]
    level: float = 0.90
    inflation: float = 1.0
    #: each member as numpy arrays (:mod:`riskmodel.trees`); empty = not compiled
    trees: tuple[TreeArrays | None, ...] = field(default=(), repr=False, compare=False)

    def with_compiled_trees(self) -> RiskBand:
        """The same band, scoring a few rows at a time with numpy."""
        return replace(self, trees=tuple(compile_booster(b) for b in self.boosters))

    def member_predictions(self, features: np.ndarray) -> np.ndarray:
        """Calibrated risks, shape (n_members, n_patients)."""
        trees = self.trees or (None,) * len(self.boosters)
        return np.stack(
            [
                cal.apply(booster_margin(b, features, t))
                for b, t, cal in zip(
                    self.boosters, trees, self.calibrations, strict=True
                )
            ]
        )

    def interval(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) band of the 2-year risk for each row."""
        if features.shape[0] == 0:
            empty = np.empty(0, dtype=np.float64)
            return empty, empty
        return band_from_predictions(
            self.member_predictions(features), self.level, self.inflation
        )

    def set_threads(self, n_threads: int) -> None:
        for b in self.boosters:
            b.set_param({"nthread": int(n_threads)})
