"""Riley's minimum sample size (training.evaluation.sample_size).

Known values: the binary-outcome tests of the R package pmsampsize
(tests/testthat/test_bin.R, "Test 4.1"–"4.4", version 1.1.1 and later), whose
first case is the worked example of its documentation (Riley et al., Stat Med
2019;38:1276 and BMJ 2020;368:m441: 24 candidate parameters, outcome proportion
0.174, Cox–Snell R² 0.288 → 623, 662 and 221 patients, minimum 662).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

from training.evaluation.sample_size import (
    cox_snell_r2_from_c,
    max_cox_snell_r2,
    riley_sample_size,
)


@pytest.mark.parametrize(
    ("r2_cs", "parameters", "prevalence", "sizes", "epp"),
    [
        (0.288, 24, 0.174, (623, 662, 221, 662), 4.8),  # pmsampsize Test 4.1
        (0.55, 24, 0.174, (255, 532, 221, 532), 3.86),  # Test 4.2
        (0.288, 36, 0.174, (934, 992, 221, 992), 4.79),  # Test 4.3
        (0.288, 24, 0.25, (623, 590, 289, 623), 6.49),  # Test 4.4
    ],
)
def test_pmsampsize_worked_values(
    r2_cs: float,
    parameters: int,
    prevalence: float,
    sizes: tuple[int, int, int, int],
    epp: float,
) -> None:
    result = riley_sample_size(parameters, prevalence, r2_cs=r2_cs)
    assert (
        result.n_shrinkage,
        result.n_optimism,
        result.n_risk,
        result.minimum,
    ) == sizes
    assert round(result.events_per_parameter, 2) == epp


def test_the_worked_example_meets_its_criteria() -> None:
    """At the minimum, the expected shrinkage is at least 0.9 and the overall
    risk's 95 % CI half-width at most 0.05."""
    result = riley_sample_size(24, 0.174, r2_cs=0.288)
    n, p, r2 = result.minimum, 24, 0.288
    # n = p / ((S − 1)·ln(1 − R²/S)) has no closed form in S: bisect.
    lo, hi = r2 + 1e-9, 1.0 - 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        if p / ((mid - 1) * math.log(1 - r2 / mid)) > n:
            hi = mid
        else:
            lo = mid
    assert lo >= 0.9
    assert 1.96 * math.sqrt(0.174 * 0.826 / n) <= 0.05
    assert result.binding == "optimism"


def test_max_cox_snell_r2_at_half_is_three_quarters() -> None:
    # φ = 0.5: 1 − (0.5^0.5 · 0.5^0.5)² = 1 − 0.25 (Riley et al. 2019, eq. 23)
    assert max_cox_snell_r2(0.5) == pytest.approx(0.75)
    assert max_cox_snell_r2(0.174) == pytest.approx(0.6032, abs=1e-4)


def test_c_statistic_of_one_half_explains_nothing() -> None:
    assert cox_snell_r2_from_c(0.5, 0.2) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(("c", "prevalence"), [(0.70, 0.10), (0.89, 0.174)])
def test_c_statistic_approximation_matches_the_simulation_it_replaces(
    c: float, prevalence: float
) -> None:
    """pmsampsize's cstat2rsq: simulate the two normals, fit a logistic model,
    R²_CS = 1 − exp(−(null deviance − deviance)/n). The quadrature agrees."""
    rng = np.random.default_rng(123456)
    n = 400_000
    events = round(prevalence * n)
    mu = math.sqrt(2) * norm.ppf(c)
    lp = np.concatenate([rng.normal(0, 1, n - events), rng.normal(mu, 1, events)])
    y = np.concatenate([np.zeros(n - events), np.ones(events)])
    fit = LogisticRegression(C=np.inf).fit(lp[:, None], y)
    q = np.clip(fit.predict_proba(lp[:, None])[:, 1], 1e-15, 1 - 1e-15)
    log_model = np.sum(y * np.log(q) + (1 - y) * np.log(1 - q))
    phi = events / n
    log_null = n * (phi * math.log(phi) + (1 - phi) * math.log(1 - phi))
    simulated = 1 - math.exp(-2 * (log_model - log_null) / n)
    assert cox_snell_r2_from_c(c, prevalence) == pytest.approx(simulated, abs=0.003)


def test_c_statistic_of_the_worked_example_is_close_to_its_r2() -> None:
    """Riley et al. (BMJ 2020) give the same example as C = 0.89 or R²_CS = 0.288
    (pmsampsize's documentation); the two inputs land close together."""
    from_c = riley_sample_size(24, 0.174, c_statistic=0.89)
    direct = riley_sample_size(24, 0.174, r2_cs=0.288)
    assert from_c.r2_cs == pytest.approx(0.288, abs=0.02)
    assert from_c.minimum == pytest.approx(direct.minimum, rel=0.1)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        riley_sample_size(10, 0.1)
    with pytest.raises(ValueError, match="exactly one"):
        riley_sample_size(10, 0.1, r2_cs=0.1, c_statistic=0.7)
    with pytest.raises(ValueError, match="prevalence"):
        riley_sample_size(10, 1.0, r2_cs=0.1)
    with pytest.raises(ValueError, match="R²"):
        riley_sample_size(10, 0.1, r2_cs=0.6)  # max at 0.1 is about 0.478
    with pytest.raises(ValueError, match="C-statistic"):
        riley_sample_size(10, 0.1, c_statistic=0.4)
