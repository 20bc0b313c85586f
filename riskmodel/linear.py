"""A logistic-regression scorer stored as plain numbers (no pickle).

A linear model is a list of *terms*, each a simple transform of one or two input
features, imputed, standardised and weighted::

    margin = intercept + Σ_k coef_k · (term_k(x) − mean_k) / scale_k

Term operations:

* ``value``   — the feature itself (missing → ``fill``)
* ``log10``   — log10(max(feature, floor)) for right-skewed titres
* ``ge``      — 1 if feature ≥ ``cut`` else 0 (missing → ``fill``)
* ``minus``   — feature − other, e.g. age at SLE onset = age − disease duration
* ``missing`` — 1 if the feature is missing else 0 (a missing-indicator term)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

TermOp = Literal["value", "log10", "ge", "minus", "missing"]
LOG_FLOOR = 1.0  # log10 of titres below 1 IU/mL is floored: assays do not resolve them


@dataclass(frozen=True)
class Term:
    """One column of the design matrix, derived from the model's input features."""

    name: str
    op: TermOp
    feature: str
    other: str | None = None
    cut: float | None = None
    fill: float = 0.0
    mean: float = 0.0
    scale: float = 1.0

    def raw(self, X: np.ndarray, index: dict[str, int]) -> np.ndarray:
        """The term before imputation and standardisation (NaN where missing)."""
        x = X[:, index[self.feature]].astype(np.float64)
        if self.op == "value":
            return x
        if self.op == "log10":
            return np.log10(np.maximum(x, LOG_FLOOR))
        if self.op == "ge":
            assert self.cut is not None
            return np.where(np.isnan(x), np.nan, (x >= self.cut).astype(np.float64))
        if self.op == "minus":
            assert self.other is not None
            return x - X[:, index[self.other]].astype(np.float64)
        if self.op == "missing":
            return np.isnan(x).astype(np.float64)
        raise ValueError(f"unknown term op {self.op!r}")

    def column(self, X: np.ndarray, index: dict[str, int]) -> np.ndarray:
        """Imputed, standardised term values."""
        x = self.raw(X, index)
        x = np.where(np.isnan(x), self.fill, x)
        return (x - self.mean) / self.scale


@dataclass(frozen=True)
class LinearScorer:
    """Fitted logistic-regression margin over a list of terms."""

    terms: tuple[Term, ...]
    coef: tuple[float, ...]
    intercept: float

    def margin(self, X: np.ndarray, feature_names: tuple[str, ...]) -> np.ndarray:
        index = {name: j for j, name in enumerate(feature_names)}
        design = np.column_stack([t.column(X, index) for t in self.terms])
        return self.intercept + design @ np.asarray(self.coef)

    def to_dict(self) -> dict[str, Any]:
        return {
            "terms": [asdict(t) for t in self.terms],
            "coef": list(self.coef),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearScorer:
        terms = tuple(Term(**t) for t in data["terms"])
        coef = tuple(float(c) for c in data["coef"])
        if len(terms) != len(coef):
            raise ValueError("linear model: one coefficient per term expected")
        return cls(terms, coef, float(data["intercept"]))


def design_matrix(
    terms: list[Term], X: np.ndarray, feature_names: tuple[str, ...]
) -> tuple[list[Term], np.ndarray]:
    """Fit each term's fill (median), mean and scale on ``X``; return both.

    Returns the fitted terms and the standardised design matrix of ``X``.
    """
    index = {name: j for j, name in enumerate(feature_names)}
    fitted: list[Term] = []
    columns = []
    for term in terms:
        raw = term.raw(X, index)
        present = raw[~np.isnan(raw)]
        fill = float(np.median(present)) if present.size else 0.0
        filled = np.where(np.isnan(raw), fill, raw)
        mean, sd = float(filled.mean()), float(filled.std())
        done = Term(**{**asdict(term), "fill": fill, "mean": mean, "scale": sd or 1.0})
        fitted.append(done)
        columns.append(done.column(X, index))
    return fitted, np.column_stack(columns)
