"""Calendar months: counted back from the screening date, month ends clamped, leap
days kept; a window's boundary as its criterion states it."""

from __future__ import annotations

from datetime import date

import pytest

from eligibility import load_criteria, screen
from eligibility.calendar import months_before, window_days
from eligibility.evaluate import Context, Truth, evaluate_one
from eligibility.rules import WithinDaysNode


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2026, 12, 1), 6, date(2026, 6, 1)),
        (date(2027, 8, 31), 6, date(2027, 2, 28)),  # no 31 February: clamped
        (date(2028, 8, 31), 6, date(2028, 2, 29)),  # leap year
        (date(2028, 2, 29), 12, date(2027, 2, 28)),
        (date(2026, 3, 31), 1, date(2026, 2, 28)),
        (date(2026, 5, 31), 3, date(2026, 2, 28)),
        (date(2027, 1, 15), 13, date(2025, 12, 15)),  # across two year ends
        (date(2026, 7, 31), 1, date(2026, 6, 30)),
    ],
)
def test_months_before(day, months, expected) -> None:
    assert months_before(day, months) == expected


def test_window_days() -> None:
    assert window_days(date(2026, 12, 1), months=6) == 183
    assert window_days(date(2027, 8, 31), months=6) == 184  # back to 28 February
    assert window_days(date(2026, 12, 1), days=90) == 90


@pytest.mark.parametrize(
    ("screening", "last_dose", "expected"),
    [
        (date(2026, 12, 1), date(2026, 6, 1), "met"),  # exactly 6 months: inside
        (date(2026, 12, 1), date(2026, 5, 31), "not_met"),
        (date(2027, 8, 31), date(2027, 2, 28), "met"),
        (date(2027, 8, 31), date(2027, 2, 27), "not_met"),
        (date(2028, 8, 31), date(2028, 2, 29), "met"),
        (date(2028, 8, 31), date(2028, 2, 28), "not_met"),
    ],
)
def test_six_calendar_months_of_iv_cyclophosphamide(
    record, screening, last_dose, expected
) -> None:
    criteria = load_criteria(readings={"iv-cyclophosphamide-window": "six-months"})
    patient = record(
        iv_cyclophosphamide_ever=True, iv_cyclophosphamide_last_date=last_dose
    )
    decision = screen(patient, risk=0.8, screening_date=screening, criteria=criteria)
    verdict = decision.verdict("EXC-04b-iv-cyclophosphamide-6m")
    assert verdict.verdict == expected, verdict.reason
    assert "6 calendar months" in verdict.reason and "inclusive" in verdict.reason


@pytest.mark.parametrize(
    ("last_dose", "expected"),
    [(date(2026, 9, 1), "met"), (date(2026, 8, 31), "not_met")],
)
def test_three_calendar_months_of_ivig(record, criteria, last_dose, expected) -> None:
    patient = record(ivig_ever=True, ivig_last_date=last_dose)
    decision = screen(
        patient, risk=0.8, screening_date=date(2026, 12, 1), criteria=criteria
    )
    assert decision.verdict("EXC-04c-ivig-3m").verdict == expected


def test_an_exclusive_boundary_leaves_the_first_day_out(record) -> None:
    patient = record(ivig_ever=True, ivig_last_date=date(2026, 9, 1))
    day = date(2026, 12, 1)
    for boundary, expected in (("inclusive", Truth.TRUE), ("exclusive", Truth.FALSE)):
        node = WithinDaysNode.model_validate(
            {"within_days": {"exposure": "ivig", "months": 3, "boundary": boundary}}
        )
        assert evaluate_one(node, Context(patient, day)).value is expected


def test_dates_are_read_against_the_screening_date_not_today(record, criteria) -> None:
    # a retrospective screening on 2020-01-01 of a patient born in 2005: the birth
    # date is not in the future today, but it is after day 0
    day = date(2020, 1, 1)
    patient = record(date_of_birth=date(2005, 6, 1))
    assert (
        screen(patient, risk=0.8, screening_date=day, criteria=criteria)
        .verdict("INC-01-age")
        .verdict
        == "not_met"
    )  # 14 on day 0
    born_later = record(date_of_birth=date(2021, 6, 1))
    decision = screen(born_later, risk=0.8, screening_date=day, criteria=criteria)
    age = decision.verdict("INC-01-age")
    assert age.verdict == "unknown" and "date_of_birth" in age.missing
    assert decision.status == "needs_review"


def test_an_exposure_dated_after_the_screening_date_is_not_used(record, criteria):
    patient = record(ivig_ever=True, ivig_last_date=date(2026, 12, 5))
    decision = screen(
        patient, risk=0.8, screening_date=date(2026, 12, 1), criteria=criteria
    )
    verdict = decision.verdict("EXC-04c-ivig-3m")
    assert verdict.verdict == "unknown"
    assert verdict.missing == ("ivig_last_date",)
    assert "is after the screening date 2026-12-01" in verdict.reason
