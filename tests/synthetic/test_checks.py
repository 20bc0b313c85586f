"""The synthetic cohort against the targets of clinical.md §8."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthetic.checks import (
    GROUPS,
    check_cohort,
    cohort_targets,
    missingness_table,
)
from synthetic.generator import generate_cohort


@pytest.fixture(scope="module")
def default_cohort() -> pd.DataFrame:
    """The training profile's cohort: 20,000 patients, seed 7 (notebook 01)."""
    return generate_cohort(n=20_000, seed=7)


def _target(quantity: str):
    return next(t for t in cohort_targets() if t.quantity.startswith(quantity))


def test_default_cohort_meets_every_target(default_cohort) -> None:
    checks = check_cohort(default_cohort)
    assert list(dict.fromkeys(checks["group"])) == list(GROUPS)
    failing = checks.loc[~checks["ok"], ["quantity", "value", "low", "high"]]
    assert failing.empty, failing.to_string()
    assert (checks["low"] <= checks["target"]).all()
    assert (checks["target"] <= checks["high"]).all()
    assert checks["anchor"].str.contains("§8").all()


def test_a_share_counts_recorded_values_only() -> None:
    df = pd.DataFrame({"c3_g_l": [0.8, 1.0, np.nan, 0.5, 0.95]})
    assert _target("C3 < 0.9 g/L").measure(df) == pytest.approx(2 / 4)


def test_exclusion_shares_read_the_generator_labels() -> None:
    df = pd.DataFrame(
        {"dgp_exclusion_reasons": ["hiv", "", "hepatitis_b;hiv", pd.NA]},
        dtype="string",
    )
    assert _target("HIV positive").measure(df) == pytest.approx(2 / 4)
    assert _target("Hepatitis B marker").measure(df) == pytest.approx(1 / 4)


def test_a_distorted_cohort_fails_its_targets(default_cohort) -> None:
    distorted = default_cohort.assign(sex="female", c3_g_l=default_cohort["c3_g_l"] * 2)
    checks = check_cohort(distorted).set_index("quantity")
    assert not checks.loc["Men (share)", "ok"]
    assert not checks.loc["C3 < 0.9 g/L (share of recorded)", "ok"]


def test_incidence_targets_follow_the_cohort() -> None:
    df = generate_cohort(n=2_000, seed=3, incidence=0.15)
    checks = check_cohort(df).set_index("quantity")
    assert checks.loc["Mean true 2-year risk", "target"] == 0.15
    assert checks.loc["Mean true 2-year risk", "ok"]


def test_missingness_shows_predictors_lowest_first(default_cohort) -> None:
    shares = missingness_table(default_cohort)
    assert "anti_c1q_positive" in shares.index
    assert "ivig_last_date" not in shares.index  # recorded only after an event
    assert shares.is_monotonic_increasing
    assert 0.4 <= shares["anti_c1q_positive"] <= 0.6
    assert list(missingness_table(default_cohort, ["sex"]).index) == ["sex"]
