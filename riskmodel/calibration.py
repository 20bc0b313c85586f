"""The calibration map from a model's margin (log-odds) to a probability."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from riskmodel.maths import expit


class ModelFormatError(ValueError):
    """A saved model is missing, incomplete or does not match this code."""


@dataclass(frozen=True)
class Calibration:
    """Maps the booster's margin (log-odds) to a calibrated probability.

    ``platt``: p = sigmoid(intercept + slope · margin) (Platt 1999), fitted by
    unpenalised logistic regression of the outcome on out-of-fold margins.
    ``isotonic``: p = piecewise-linear interpolation of (x, y) knots over the margin,
    a monotone non-decreasing step function fitted by isotonic regression.
    """

    method: Literal["platt", "isotonic"] = "platt"
    intercept: float = 0.0
    slope: float = 1.0
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()

    def apply(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probability for each margin."""
        if self.method == "platt":
            return expit(self.intercept + self.slope * margin)
        return np.interp(margin, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "intercept": self.intercept, "slope": self.slope}
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        method = data.get("method")
        if method == "platt":
            return cls("platt", float(data["intercept"]), float(data["slope"]))
        if method == "isotonic":
            x, y = tuple(map(float, data["x"])), tuple(map(float, data["y"]))
            if len(x) != len(y) or len(x) < 2:
                raise ModelFormatError("isotonic calibration needs ≥ 2 (x, y) knots")
            return cls("isotonic", x=x, y=y)
        raise ModelFormatError(f"unknown calibration method {method!r}")
