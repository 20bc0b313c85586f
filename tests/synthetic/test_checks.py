"""The synthetic cohort against the targets of clinical.md §8."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthetic.checks import (
    GROUPS,
    MEASUREMENTS,
    TargetsError,
    check_cohort,
    cohort_targets,
    exclusions_met,
    missingness_table,
    parse_targets,
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


def test_exclusion_shares_read_the_trial_criteria() -> None:
    """A missing marker is not an exclusion; two findings count one patient once."""
    df = pd.DataFrame(
        {
            "hiv_positive": [True, False, True, None],
            "hbsag_positive": [False, False, True, None],
            "hbcab_positive": [False, None, True, True],
            "kidney_biopsy_confirmed": [True, False, False, None],
            "urine_protein_g_24h": [0.8, 0.2, 0.6, np.nan],
        }
    ).astype({"urine_protein_g_24h": "float64"})
    df = df.astype({c: "boolean" for c in df.columns if c != "urine_protein_g_24h"})
    assert _target("HIV positive").measure(df) == pytest.approx(2 / 4)
    assert _target("Hepatitis B marker").measure(df) == pytest.approx(2 / 4)
    assert _target("Prior kidney involvement").measure(df) == pytest.approx(2 / 4)
    met = exclusions_met(df)
    assert met.loc[0, "EXC-01a-kidney-biopsy"] and met.loc[0, "EXC-01e-urine-protein"]
    assert not met.loc[1].any()  # HBcAb missing, every other fact negative


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


# --- the targets file -----------------------------------------------------------------
def _document(**changes: object) -> dict:
    """A one-target document; ``changes`` replace or (None) remove its keys."""
    entry = {
        "id": "c3-low",
        "group": "marginal",
        "quantity": "C3 < 0.9 g/L",
        "target": 0.53,
        "range": [0.48, 0.60],
        "anchor": "§8.3",
        "measure": "share_cut",
        "args": {"column": "c3_g_l", "op": "<", "cut": 0.9},
    }
    entry.update(changes)
    return {"targets": [{k: v for k, v in entry.items() if v is not None}]}


def test_the_targets_file_names_known_measurements_and_unique_ids() -> None:
    targets = cohort_targets()
    assert len({t.id for t in targets}) == len(targets) == 36
    assert {t.measurement for t in targets} <= set(MEASUREMENTS)
    (parsed,) = parse_targets(_document())
    assert (parsed.id, parsed.low, parsed.high, parsed.target) == (
        "c3-low",
        0.48,
        0.60,
        0.53,
    )
    assert parsed.args == {"column": "c3_g_l", "op": "<", "cut": 0.9}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"measure": "share_of_magic"}, "unknown measurement 'share_of_magic'"),
        ({"args": {"column": "c3_g_l", "op": "<"}}, r"missing arguments \['cut'\]"),
        ({"args": {"column": "c3", "op": "<", "cut": 0.9}}, "argument column"),
        ({"args": {"column": "c3_g_l", "op": "=~", "cut": 0.9}}, "argument op"),
        ({"args": {"column": "c3_g_l", "op": "<", "cut": "x"}}, "argument cut"),
        (
            {"args": {"column": "c3_g_l", "op": "<", "cut": 0.9, "by": "sex"}},
            r"unknown arguments \['by'\]",
        ),
        (
            {"measure": "share_excluded", "args": {"criteria": ["EXC-99-moon"]}},
            "not exclusion criteria",
        ),
        (
            {"measure": "share_excluded", "args": {"criteria": ["INC-01-age"]}},
            "not exclusion criteria",
        ),
        ({"measure": "quantile", "args": {"column": "c3_g_l", "q": 50}}, "argument q"),
        ({"group": "vibes"}, "group 'vibes'"),
        ({"target": 0.7}, "outside its range"),
        ({"tolerance": 0.01}, "either range or tolerance"),
        ({"target": "incidence"}, "needs a tolerance"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_target_fails_at_load_naming_its_id(changes, message) -> None:
    with pytest.raises(TargetsError, match="target c3-low") as info:
        parse_targets(_document(**changes), source="t.yaml")
    assert info.match(message)


def test_a_duplicate_id_and_a_bad_document_fail() -> None:
    twice = {"targets": _document()["targets"] * 2}
    with pytest.raises(TargetsError, match="c3-low: duplicate id"):
        parse_targets(twice)
    with pytest.raises(TargetsError, match="'targets' list"):
        parse_targets({"target": []})


def test_a_tolerance_band_follows_the_incidence() -> None:
    document = _document(target="incidence", range=None, tolerance=0.01)
    (parsed,) = parse_targets(document, incidence=0.15)
    assert parsed.target == 0.15
    assert (parsed.low, parsed.high) == pytest.approx((0.14, 0.16))
