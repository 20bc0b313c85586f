"""Plausible values of the predictors a record does not have, as plain numbers.

The gate must not treat a missing predictor as if it had a normal value. For every
predictor the model stores one *chained equation*: a regression of that predictor
(on a transformed scale) on all the others, fitted at training time on the
development patients (``training/imputation.py``). Completing a record means
starting its missing predictors at their mean and, sweep after sweep, drawing each
from its equation given the current values of the others (multiple imputation by
chained equations; van Buuren & Groothuis-Oudshoorn, J Stat Softw 2011;45(3)). The
draws use one fixed table of random numbers, so the same record always gets the
same plausible values, alone or in a batch.

Everything is stored as JSON numbers: no pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, NamedTuple

import numpy as np

from riskmodel.maths import expit

Transform = Literal["identity", "log1p"]
EquationKind = Literal["linear", "logistic"]


@dataclass(frozen=True)
class Equation:
    """One predictor given all the others (standardised, transformed values).

    Attributes:
        feature: the predictor (a model feature name).
        kind: ``linear`` (Gaussian residual ``sigma``) or ``logistic`` (a 0/1 flag).
        intercept: on the transformed scale (linear) or the log-odds (logistic).
        coef: one coefficient per *other* feature, in model-feature order.
        sigma: residual standard deviation (linear).
        low: smallest value on the transformed scale (the field's range).
        high: largest value on the transformed scale.
        integer: the predictor is a count (rounded after drawing).
    """

    feature: str
    kind: EquationKind
    intercept: float
    coef: tuple[float, ...]
    sigma: float = 0.0
    low: float = -np.inf
    high: float = np.inf
    integer: bool = False


class _EquationArrays(NamedTuple):
    weights: np.ndarray
    offset: np.ndarray
    sigma: np.ndarray
    low: np.ndarray
    high: np.ndarray
    kind: np.ndarray
    integer: np.ndarray


@dataclass(frozen=True)
class Imputer:
    """Chained equations of every predictor, with the scales they work on.

    Attributes:
        features: the model's features, in order.
        transforms: ``identity`` or ``log1p`` per feature (right-skewed labs).
        means: mean of each transformed feature on the development patients.
        scales: standard deviation of each transformed feature.
        equations: one per feature that can be missing (absent: never imputed).
        sweeps: passes over the missing predictors.
        draws: plausible completions per record.
        seed: seed of the fixed table of random numbers.
    """

    features: tuple[str, ...]
    transforms: tuple[Transform, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    equations: tuple[Equation, ...]
    sweeps: int = 3
    draws: int = 32
    seed: int = 20_261_201

    # --- scales -----------------------------------------------------------------------
    def transform(self, X: np.ndarray) -> np.ndarray:
        """Features on the imputation scale (``log1p`` where so stored)."""
        out = np.array(X, dtype=np.float64)
        logged = [j for j, t in enumerate(self.transforms) if t == "log1p"]
        out[:, logged] = np.log1p(np.maximum(out[:, logged], 0.0))
        return out

    def untransform(self, Z: np.ndarray) -> np.ndarray:
        """Back to the features' own units."""
        out = np.array(Z, dtype=np.float64)
        logged = [j for j, t in enumerate(self.transforms) if t == "log1p"]
        out[..., logged] = np.expm1(out[..., logged])
        return out

    # --- completion ------------------------------------------------------------------
    @cached_property
    def _noise(self) -> tuple[np.ndarray, np.ndarray]:
        """The fixed random numbers: normals and uniforms, (sweeps, features, draws)."""
        rng = np.random.default_rng(self.seed)
        shape = (self.sweeps, len(self.features), self.draws)
        return rng.standard_normal(shape), rng.random(shape)

    @cached_property
    def _arrays(self) -> _EquationArrays:
        """The equations as arrays on the transformed (unstandardised) scale.

        Column ``j`` of ``weights`` holds equation ``j``'s coefficients divided by
        the other features' scales (0 for ``j`` itself), so that its linear
        predictor is ``offset[j] + z @ weights[:, j]`` — the same as the
        standardised form ``intercept + ((z − mean) / scale) @ coef``.
        """
        d = len(self.features)
        means, scales = np.asarray(self.means), np.asarray(self.scales)
        weights, offset = np.zeros((d, d)), np.zeros(d)
        sigma, low, high = np.zeros(d), np.full(d, -np.inf), np.full(d, np.inf)
        kind = np.zeros(d, dtype=np.int8)  # 0 none, 1 linear, 2 logistic
        integer = np.zeros(d, dtype=bool)
        by_feature = {e.feature: e for e in self.equations}
        for j, name in enumerate(self.features):
            eq = by_feature.get(name)
            if eq is None:
                continue
            others = np.delete(np.arange(d), j)
            w = np.asarray(eq.coef) / scales[others]
            weights[others, j] = w
            offset[j] = eq.intercept - w @ means[others]
            sigma[j], low[j], high[j] = eq.sigma, eq.low, eq.high
            kind[j] = 2 if eq.kind == "logistic" else 1
            integer[j] = eq.integer
        return _EquationArrays(weights, offset, sigma, low, high, kind, integer)

    def complete(self, X: np.ndarray) -> np.ndarray:
        """Plausible completions of each row of ``X`` (NaN = missing).

        Args:
            X: feature matrix (n, features), in the features' units.

        Returns:
            (n, draws, features): each record ``draws`` times, its missing
            predictors filled with plausible values given what it records (its
            recorded values are kept exactly as they are).
        """
        X = np.asarray(X, dtype=np.float64)
        missing = np.isnan(X)
        eqs = self._arrays
        Z = np.where(missing, np.asarray(self.means), self.transform(X))
        Z = np.repeat(Z[:, None, :], self.draws, axis=1)  # (n, draws, d)
        normals, uniforms = self._noise
        order = [j for j in np.flatnonzero(missing.any(axis=0)) if eqs.kind[j]]
        for sweep in range(self.sweeps):
            for j in order:
                rows = missing[:, j]
                every = bool(rows.all())
                current = Z if every else Z[rows]
                linear = eqs.offset[j] + current @ eqs.weights[:, j]
                if eqs.kind[j] == 2:
                    drawn = (uniforms[sweep, j] < expit(linear)).astype(np.float64)
                else:
                    noisy = linear + eqs.sigma[j] * normals[sweep, j]
                    drawn = np.clip(noisy, eqs.low[j], eqs.high[j])
                if every:
                    Z[:, :, j] = drawn
                else:
                    Z[rows, :, j] = drawn
        out = self.untransform(Z)
        counts = np.flatnonzero(eqs.integer)
        out[..., counts] = np.round(out[..., counts])
        # the scale round trip may move a recorded value by an ulp: keep them as given
        out = np.where(missing[:, None, :], out, X[:, None, :])
        return out

    # --- persistence -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "chained equations",
            "features": list(self.features),
            "transforms": list(self.transforms),
            "means": list(self.means),
            "scales": list(self.scales),
            "sweeps": self.sweeps,
            "draws": self.draws,
            "seed": self.seed,
            "equations": [
                {
                    "feature": e.feature,
                    "kind": e.kind,
                    "intercept": e.intercept,
                    "coef": list(e.coef),
                    "sigma": e.sigma,
                    "low": _finite_or_none(e.low),
                    "high": _finite_or_none(e.high),
                    "integer": e.integer,
                }
                for e in self.equations
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Imputer:
        equations = tuple(
            Equation(
                feature=str(e["feature"]),
                kind=e["kind"],
                intercept=float(e["intercept"]),
                coef=tuple(map(float, e["coef"])),
                sigma=float(e["sigma"]),
                low=-np.inf if e["low"] is None else float(e["low"]),
                high=np.inf if e["high"] is None else float(e["high"]),
                integer=bool(e["integer"]),
            )
            for e in data["equations"]
        )
        features = tuple(map(str, data["features"]))
        imputer = cls(
            features=features,
            transforms=tuple(data["transforms"]),
            means=tuple(map(float, data["means"])),
            scales=tuple(map(float, data["scales"])),
            equations=equations,
            sweeps=int(data["sweeps"]),
            draws=int(data["draws"]),
            seed=int(data["seed"]),
        )
        width = len(features) - 1
        if any(len(e.coef) != width for e in equations):
            raise ValueError("an imputation equation has the wrong number of terms")
        return imputer


def _finite_or_none(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)
