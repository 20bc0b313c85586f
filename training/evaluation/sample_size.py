"""Minimum sample size to develop a prediction model of a binary outcome.

Riley et al.'s criteria (Riley RD, Snell KIE, Ensor J, et al. Minimum sample size
for developing a multivariable prediction model: Part II — binary and time-to-event
outcomes. Stat Med 2019;38:1276–96; Riley RD, Ensor J, Snell KIE, et al. Calculating
the sample size required for developing a clinical prediction model. BMJ
2020;368:m441), with the conventions of the ``pmsampsize`` package (Ensor, Martin,
Riley; CRAN, version 1.1.1 and later, which no longer rounds the maximum R²):

1. expected uniform shrinkage of the predictor effects ≥ 0.9;
2. optimism in Nagelkerke's R² ≤ 0.05 (apparent minus adjusted);
3. the overall outcome proportion estimated within ± 0.05 (95 % confidence).

The anticipated Cox–Snell R² can be approximated from a published C-statistic
(Riley RD, Van Calster B, Collins GS. A note on estimating the Cox-Snell R² from a
reported C statistic (AUROC) to inform sample size calculations for developing a
prediction model with a binary outcome. Stat Med 2021;40:859–64): the linear
predictor is normal with unit variance in events and non-events, its means
√2·Φ⁻¹(C) apart. ``pmsampsize`` simulates a million patients and fits a logistic
model; for two equal-variance normals that logistic model is exact
(slope √2·Φ⁻¹(C)), so here the expected log-likelihood is integrated by
Gauss–Hermite quadrature instead, giving the large-sample value without
simulation noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import log_expit
from scipy.stats import norm

SHRINKAGE = 0.9
"""Criterion 1: targeted expected shrinkage of the predictor effects."""
NAGELKERKE_OPTIMISM = 0.05
"""Criterion 2: largest acceptable optimism in Nagelkerke's R²."""
RISK_MARGIN = 0.05
"""Criterion 3: half-width of the 95 % CI of the overall outcome proportion."""
_Z95 = 1.96  # pmsampsize's value (not norm.ppf(0.975)), so results match it
_QUADRATURE_NODES = 200


@dataclass(frozen=True)
class SampleSize:
    """Riley's minimum sample size and what it rests on.

    Attributes:
        parameters: candidate predictor parameters.
        prevalence: anticipated outcome proportion.
        r2_cs: anticipated Cox–Snell R².
        max_r2_cs: largest Cox–Snell R² possible at this prevalence.
        c_statistic: the C-statistic ``r2_cs`` was approximated from, if any.
        n_shrinkage: patients for criterion 1.
        n_optimism: patients for criterion 2.
        n_risk: patients for criterion 3.
        shrinkage_optimism: the shrinkage criterion 2 implies.
    """

    parameters: int
    prevalence: float
    r2_cs: float
    max_r2_cs: float
    c_statistic: float | None
    n_shrinkage: int
    n_optimism: int
    n_risk: int
    shrinkage_optimism: float

    @property
    def minimum(self) -> int:
        """The minimum sample size: the largest of the three criteria."""
        return max(self.n_shrinkage, self.n_optimism, self.n_risk)

    @property
    def events(self) -> float:
        """Outcome events expected among :attr:`minimum` patients."""
        return self.minimum * self.prevalence

    @property
    def events_per_parameter(self) -> float:
        """Expected events per candidate predictor parameter at the minimum."""
        return self.events / self.parameters

    @property
    def binding(self) -> str:
        """Which criterion sets the minimum (the first, on ties)."""
        sizes = {
            "shrinkage": self.n_shrinkage,
            "optimism": self.n_optimism,
            "overall risk": self.n_risk,
        }
        return max(sizes, key=lambda k: sizes[k])


def max_cox_snell_r2(prevalence: float) -> float:
    """The largest Cox–Snell R² a model can reach at an outcome proportion.

    1 − exp(2·lnL_null / n), lnL_null / n = φ ln φ + (1 − φ) ln(1 − φ)
    (Riley et al. 2019, eq. 23).
    """
    phi = _proportion(prevalence)
    log_null = phi * math.log(phi) + (1 - phi) * math.log(1 - phi)
    return 1.0 - math.exp(2.0 * log_null)


def cox_snell_r2_from_c(c_statistic: float, prevalence: float) -> float:
    """Cox–Snell R² of a calibrated model with this C-statistic and prevalence.

    Riley, Van Calster & Collins 2021: the linear predictor is N(0, 1) in
    non-events and N(μ, 1) in events with μ = √2·Φ⁻¹(C). Then
    logit P(event | x) = logit φ − μ²/2 + μ·x exactly, and
    R²_CS = 1 − exp(−2·(E[log L_model] − log L_null) per patient).
    """
    phi = _proportion(prevalence)
    if not 0.5 <= c_statistic < 1.0:
        raise ValueError(f"C-statistic must be in [0.5, 1), got {c_statistic}")
    mu = math.sqrt(2.0) * float(norm.ppf(c_statistic))
    nodes, weights = np.polynomial.hermite_e.hermegauss(_QUADRATURE_NODES)
    weights = weights / weights.sum()  # expectation over N(0, 1)
    intercept = math.log(phi / (1 - phi)) - mu * mu / 2
    events = float(weights @ log_expit(intercept + mu * (nodes + mu)))
    non_events = float(weights @ log_expit(-(intercept + mu * nodes)))
    log_model = phi * events + (1 - phi) * non_events
    log_null = phi * math.log(phi) + (1 - phi) * math.log(1 - phi)
    return 1.0 - math.exp(-2.0 * (log_model - log_null))


def _n_for_shrinkage(parameters: int, r2_cs: float, shrinkage: float) -> int:
    """Patients for an expected shrinkage: n = P / ((S − 1)·ln(1 − R²_CS / S))."""
    return math.ceil(
        parameters / ((shrinkage - 1.0) * math.log(1.0 - r2_cs / shrinkage))
    )


def riley_sample_size(
    parameters: int,
    prevalence: float,
    *,
    r2_cs: float | None = None,
    c_statistic: float | None = None,
    shrinkage: float = SHRINKAGE,
) -> SampleSize:
    """Riley's minimum sample size for a binary-outcome prediction model.

    Give the anticipated Cox–Snell R² directly (``r2_cs``) or a C-statistic to
    approximate it from (``c_statistic``).

    Args:
        parameters: candidate predictor parameters.
        prevalence: anticipated outcome proportion (0–1).
        r2_cs: anticipated (adjusted) Cox–Snell R².
        c_statistic: anticipated C-statistic (AUROC) of the model.
        shrinkage: targeted expected shrinkage (criterion 1).

    Raises:
        ValueError: neither or both of ``r2_cs`` and ``c_statistic``, or an R²
            at or above the possible maximum or the shrinkage.
    """
    if (r2_cs is None) == (c_statistic is None):
        raise ValueError("give exactly one of r2_cs and c_statistic")
    if parameters < 1:
        raise ValueError(f"parameters must be ≥ 1, got {parameters}")
    if r2_cs is None:
        assert c_statistic is not None
        r2_cs = cox_snell_r2_from_c(c_statistic, prevalence)
    max_r2 = max_cox_snell_r2(prevalence)
    if not 0.0 < r2_cs < min(max_r2, shrinkage):
        raise ValueError(
            f"Cox–Snell R² {r2_cs:g} must be in (0, {min(max_r2, shrinkage):.3g})"
        )
    shrinkage_2 = r2_cs / (r2_cs + NAGELKERKE_OPTIMISM * max_r2)
    phi = _proportion(prevalence)
    return SampleSize(
        parameters=parameters,
        prevalence=phi,
        r2_cs=r2_cs,
        max_r2_cs=max_r2,
        c_statistic=c_statistic,
        n_shrinkage=_n_for_shrinkage(parameters, r2_cs, shrinkage),
        n_optimism=_n_for_shrinkage(parameters, r2_cs, shrinkage_2),
        n_risk=math.ceil((_Z95 / RISK_MARGIN) ** 2 * phi * (1 - phi)),
        shrinkage_optimism=shrinkage_2,
    )


def _proportion(prevalence: float) -> float:
    phi = float(prevalence)
    if not 0.0 < phi < 1.0:
        raise ValueError(f"prevalence must be in (0, 1), got {prevalence}")
    return phi


__all__ = [
    "NAGELKERKE_OPTIMISM",
    "RISK_MARGIN",
    "SHRINKAGE",
    "SampleSize",
    "cox_snell_r2_from_c",
    "max_cox_snell_r2",
    "riley_sample_size",
]
