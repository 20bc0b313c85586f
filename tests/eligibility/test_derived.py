"""Derived variables against worked examples from the literature."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from eligibility.calendar import calendar_age_years
from eligibility.derived import (
    IGA_10_MG_DL_IN_G_L,
    IGG_400_MG_DL_IN_G_L,
    LEUKOCYTES_2000_PER_MM3_IN_10E9_L,
    ckd_epi_2021_ml_min_173m2,
    cockcroft_gault_ml_min,
    derive,
)

SCREENING = date(2026, 12, 1)


def test_cockcroft_gault_worked_example_woman() -> None:
    # Cockcroft & Gault, Nephron 1976;16:31-41, formula as in clinical.md §6:
    # 60-y, 70-kg woman, SCr 1.0 mg/dL (88.4 µmol/L):
    # (140 − 60) · 70 / (72 · 1.0) · 0.85 = 66.1 mL/min.
    assert cockcroft_gault_ml_min(60, 70, 88.4, female=True) == pytest.approx(
        66.11, abs=0.01
    )


def test_cockcroft_gault_worked_example_man() -> None:
    # Same formula, no 0.85: 40-y, 72-kg man, SCr 1.0 mg/dL → 100 · 72 / 72 = 100.
    assert cockcroft_gault_ml_min(40, 72, 88.4, female=False) == pytest.approx(100.0)
    # SCr 2.0 mg/dL (176.8 µmol/L) halves it.
    assert cockcroft_gault_ml_min(40, 72, 176.8, female=False) == pytest.approx(50.0)


def test_ckd_epi_2021_worked_example() -> None:
    # Inker et al., NEJM 2021;385:1737; worked check in clinical.md §6
    # (creatinineclearancecalculator.net): 55-y woman, SCr 0.9 mg/dL → ≈ 76.
    egfr = ckd_epi_2021_ml_min_173m2(55, 0.9 * 88.4, female=True)
    # Hand computation: 142 · (0.9/0.7)^−1.200 · 0.9938^55 · 1.012 = 75.50.
    assert egfr == pytest.approx(75.50, abs=0.01)
    assert egfr == pytest.approx(76, abs=0.6)  # the published "≈ 76"


def test_unit_conversions_of_trial_thresholds() -> None:
    # 1 g/L = 100 mg/dL; 1 mm³ = 1 µL.
    assert IGG_400_MG_DL_IN_G_L == 4.0
    assert pytest.approx(0.10) == IGA_10_MG_DL_IN_G_L
    assert pytest.approx(2.0) == LEUKOCYTES_2000_PER_MM3_IN_10E9_L


@pytest.mark.parametrize(
    ("born", "on", "age"),
    [
        (date(2008, 12, 1), date(2026, 12, 1), 18.0),
        (date(2008, 6, 1), date(2026, 12, 1), 18.0 + 183 / 365),
        (date(2008, 2, 29), date(2026, 3, 1), 18.0),  # leap-day birthday
    ],
)
def test_calendar_age(born, on, age) -> None:
    assert calendar_age_years(born, on)[0] == pytest.approx(age)


def test_age_prefers_date_of_birth_then_age_years(record) -> None:
    assert derive("age_at_screening_years", record(), SCREENING).exact == pytest.approx(
        40.5, 0.01
    )
    only_age = record(date_of_birth=None, age_years=33.0)
    assert derive("age_at_screening_years", only_age, SCREENING).exact == 33.0
    neither = derive("age_at_screening_years", record(date_of_birth=None), SCREENING)
    assert neither.exact is None
    assert neither.missing == ("date_of_birth", "age_years")


def test_acr_count_is_an_interval_when_items_are_missing(record) -> None:
    d = derive(
        "acr1997_count", record(acr_serositis=None, acr_oral_ulcers=None), SCREENING
    )
    assert (d.lo, d.hi) == (5, 7)
    assert set(d.missing) == {"acr_serositis", "acr_oral_ulcers"}
    assert derive("acr1997_count", record(), SCREENING).exact == 5


def test_crcl_and_uln_multiples_need_every_input(record) -> None:
    d = derive("crcl_cockcroft_gault_ml_min", record(weight_kg=None), SCREENING)
    assert d.exact is None and d.missing == ("weight_kg",)
    # 40.5-y woman, 60 kg, SCr 60 µmol/L: (140 − 40.5) · 60 / (72 · 60/88.4) · 0.85
    expected = (140 - 40.5) * 60 / (72 * 60 / 88.4) * 0.85
    got = derive("crcl_cockcroft_gault_ml_min", record(), SCREENING).exact
    assert got == pytest.approx(expected, rel=1e-3)
    assert derive("alt_x_uln", record(alt_u_l=100.0), SCREENING).exact == 2.5
    assert derive("alt_x_uln", record(alt_uln_u_l=None), SCREENING).missing == (
        "alt_uln_u_l",
    )


def test_derived_inputs_are_patient_record_fields() -> None:
    from data_schema import field_specs
    from eligibility.derived import ACR1997_ITEMS, DERIVED

    specs = field_specs()
    assert all(specs[name].kind == "bool" for name in ACR1997_ITEMS)
    for name in (
        "date_of_birth",
        "age_years",
        "weight_kg",
        "creatinine_umol_l",
        "sex",
        "alt_u_l",
        "alt_uln_u_l",
        "ast_u_l",
        "ast_uln_u_l",
    ):
        assert name in specs
    assert set(DERIVED) == {
        "age_at_screening_years",
        "acr1997_count",
        "crcl_cockcroft_gault_ml_min",
        "alt_x_uln",
        "ast_x_uln",
    }


def _reference_age(born: date, on: date) -> float:
    """Calendar age by counting birthdays with Python dates (29 Feb → 1 Mar)."""

    def birthday(year: int) -> date:
        try:
            return born.replace(year=year)
        except ValueError:
            return date(year, 3, 1)

    years = on.year - born.year - (on < birthday(on.year))
    last, following = birthday(born.year + years), birthday(born.year + years + 1)
    return years + (on - last).days / (following - last).days


def test_calendar_age_of_a_column_equals_counting_birthdays() -> None:
    """The column-wise age against an independent count, leap days too."""
    import numpy as np

    births = [date(1960, 1, 1) + timedelta(days=d) for d in range(0, 23_000, 37)]
    births += [
        date(2000, 2, 29),
        date(1996, 2, 29),
        date(2008, 3, 1),
        date(2008, 2, 28),
    ]
    for on in (
        date(2026, 12, 1),
        date(2028, 2, 29),
        date(2027, 2, 28),
        date(2027, 3, 1),
    ):
        column = np.array([*births, None], dtype="datetime64[D]")
        got = calendar_age_years(column, on)
        want = [_reference_age(b, on) for b in births]
        np.testing.assert_allclose(got[:-1], want, rtol=0, atol=1e-12)
        assert np.isnan(got[-1])  # NaT → NaN
