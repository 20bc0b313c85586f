"""Readings of the registry's ambiguous sentences: each one's example patient under
every alternative and under the default; overlays pin them, change the version
string and the verdicts, and are refused when they name what the file lacks."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from eligibility import (
    CriteriaError,
    attrition_table,
    load_criteria,
    screen,
    screen_frame,
)
from eligibility.readings import NEEDS_JUDGMENT, ReadingsError, parse_overlay
from eligibility.screen import ScreeningResult, write_results

SCREENING = date(2026, 12, 1)  # = conftest.SCREENING


def ago(days: int) -> date:
    return SCREENING - timedelta(days=days)


#: reading → (criterion, the registry's example case, {alternative: verdict},
#: verdict under the default)
EXAMPLES: dict[str, tuple[str, dict[str, Any], dict[str, str], str]] = {
    "risk-gate-boundary": (  # "higher than 50% (50%~100%)": a risk of exactly 0.50
        "INC-03-risk-gate",
        {},
        {"strictly-above": "not_met", "at-or-above": "met"},
        "not_met",
    ),
    "soc-immunosuppressant-list": (  # on an unnamed immunosuppressant alone
        "INC-04c-soc-agent",
        {
            "prednisone_mg_day": 0.0,
            "hydroxychloroquine_current": False,
            "hydroxychloroquine_dose_unchanged_since": None,
            "immunosuppressant_current": True,
            "immunosuppressant_name": "other",
            "immunosuppressant_dose_unchanged_since": ago(200),
        },
        {"exhaustive": "not_met", "examples": "met"},
        NEEDS_JUDGMENT,
    ),
    "severe-active-lupus": (  # neither named organ active
        "EXC-02c-other-severe-active-lupus",
        {},
        {"named-organs": "not_met", "open-list": NEEDS_JUDGMENT},
        NEEDS_JUDGMENT,
    ),
    "b-cell-history": (  # rituximab 3 years ago
        "EXC-04a-b-cell-therapy-ever",
        {
            "b_cell_therapy_ever": True,
            "b_cell_therapy_last_date": ago(3 * 365),
            "b_cell_therapy_agent": "rituximab",
        },
        {"exclusion-list": "met", "washout": "not_met"},
        NEEDS_JUDGMENT,
    ),
    "iv-cyclophosphamide-window": (  # last IV dose 120 days ago
        "EXC-04b-iv-cyclophosphamide-6m",
        {"iv_cyclophosphamide_ever": True, "iv_cyclophosphamide_last_date": ago(120)},
        {"six-months": "met", "ninety-days": "not_met"},
        NEEDS_JUDGMENT,
    ),
    "cyclophosphamide-leukopenia": (  # IV course 5 years ago, leukocytes 1.8 today
        "EXC-15d-cyclophosphamide-leukopenia",
        {
            "iv_cyclophosphamide_ever": True,
            "iv_cyclophosphamide_last_date": ago(5 * 365),
            "leukocytes_10e9_l": 1.8,
        },
        {"ever": "met", "current-course": "not_met"},
        NEEDS_JUDGMENT,
    ),
}

CASES = [
    (reading, alternative, expected)
    for reading, (_, _, outcomes, default) in EXAMPLES.items()
    for alternative, expected in [*outcomes.items(), (None, default)]
]


def _screen(record, criteria, changes, risk=0.8):
    return screen(record(**changes), risk=risk, screening_date=SCREENING,
                  criteria=criteria, gate=None)  # fmt: skip


def test_every_reading_of_the_file_has_an_example(criteria) -> None:
    assert {r.id for r in criteria.readings} == set(EXAMPLES)
    for r in criteria.readings:
        assert set(EXAMPLES[r.id][2]) == set(r.alternative_ids)
        assert EXAMPLES[r.id][3] in (r.default, *EXAMPLES[r.id][2].values())


@pytest.mark.parametrize(("reading", "alternative", "expected"), CASES)
def test_registry_example_under_each_reading(
    record, reading, alternative, expected
) -> None:
    criterion, changes, _, _ = EXAMPLES[reading]
    pins = {} if alternative is None else {reading: alternative}
    criteria = load_criteria(readings=pins)
    risk = 0.5 if reading == "risk-gate-boundary" else 0.8
    decision = _screen(record, criteria, changes, risk)
    verdict = decision.verdict(criterion)
    assert verdict.verdict == expected, verdict.reason
    applied = criteria.by_id[criterion].applied
    assert verdict.reading == applied and applied.startswith(f"{reading}: ")
    assert ("(pinned)" in applied) == (alternative is not None)
    if reading == "risk-gate-boundary":  # the gate itself follows the reading
        assert decision.gate == ("above" if expected == "met" else "below")


def test_a_contradiction_shows_both_readings_outcomes(record, criteria) -> None:
    _, changes, _, _ = EXAMPLES["b-cell-history"]
    decision = _screen(record, criteria, changes)
    verdict = decision.verdict("EXC-04a-b-cell-therapy-ever")
    assert verdict.verdict == NEEDS_JUDGMENT
    assert "exclusion-list: met" in verdict.reason
    assert "washout: not_met" in verdict.reason
    assert verdict.evidence["readings:b-cell-history"] == {
        "exclusion-list": "met",
        "washout": "not_met",
    }
    assert "EXC-04a-b-cell-therapy-ever" in decision.to_confirm


def test_readings_that_agree_give_the_common_verdict(record, criteria) -> None:
    recent = {
        "b_cell_therapy_ever": True,
        "b_cell_therapy_last_date": ago(100),
        "b_cell_therapy_agent": "rituximab",
    }
    verdict = _screen(record, criteria, recent).verdict("EXC-04a-b-cell-therapy-ever")
    assert verdict.verdict == "met"
    assert verdict.reason.startswith("excluded: b_cell_therapy_ever = true")


def test_a_pin_changes_the_version_string_and_the_verdicts(record, criteria) -> None:
    pinned = load_criteria(readings={"b-cell-history": "washout"})
    assert criteria.criteria_version != pinned.criteria_version
    assert pinned.criteria_version == (
        criteria.criteria_version + "+readings:b-cell-history=washout"
    )
    _, changes, _, _ = EXAMPLES["b-cell-history"]
    assert _screen(record, pinned, changes).criteria_version == (
        pinned.criteria_version
    )
    pinned_exclusion = load_criteria(readings={"b-cell-history": "exclusion-list"})
    assert _screen(record, pinned_exclusion, changes).status == "ineligible"
    assert _screen(record, pinned, changes).status == "eligible"


def test_an_overlay_file_is_read(tmp_path: Path, record) -> None:
    overlay = tmp_path / "site.yaml"
    overlay.write_text(
        "readings:\n  b-cell-history: washout\n  iv-cyclophosphamide-window: "
        "six-months\n"
    )
    criteria = load_criteria(readings=overlay)
    assert criteria.pinned == {
        "b-cell-history": "washout",
        "iv-cyclophosphamide-window": "six-months",
    }
    assert criteria.criteria_version.endswith(
        "+readings:b-cell-history=washout,iv-cyclophosphamide-window=six-months"
    )


@pytest.mark.parametrize(
    ("pins", "message"),
    [
        ({"b-cell-histroy": "washout"}, r"unknown reading 'b-cell-histroy'"),
        (
            {"b-cell-history": "wash-out"},
            r"reading 'b-cell-history' has no alternative 'wash-out'; choose one of "
            r"exclusion-list, washout, needs_judgment",
        ),
        (  # the gate's boundary must be decided one way
            {"risk-gate-boundary": NEEDS_JUDGMENT},
            r"has no alternative 'needs_judgment'",
        ),
    ],
)
def test_unknown_reading_or_alternative_is_refused_at_load(pins, message) -> None:
    with pytest.raises(CriteriaError, match=message):
        load_criteria(readings=pins)


@pytest.mark.parametrize(
    "text", ["b-cell-history: washout\n", "readings: [washout]\n", "readings: {a: 1}"]
)
def test_malformed_overlays_are_refused(text) -> None:
    with pytest.raises(ReadingsError, match="readings"):
        parse_overlay(text, "site.yaml")


def test_a_pinned_contradiction_can_be_reopened(record) -> None:
    criteria = load_criteria(readings={"severe-active-lupus": NEEDS_JUDGMENT})
    decision = _screen(record, criteria, {"cardiac_lupus_active": True})
    assert decision.verdict("EXC-02c-other-severe-active-lupus").verdict == "met"


def test_the_attrition_file_carries_the_version(record, tmp_path: Path) -> None:
    pinned = load_criteria(readings={"b-cell-history": "washout"})
    frame = pd.DataFrame([record().model_dump()])
    per_patient = screen_frame(frame, [0.8], SCREENING, pinned)
    result = ScreeningResult(
        per_patient, attrition_table(per_patient, pinned), pinned.criteria_version
    )
    _, attrition = write_results(result, tmp_path)
    versions = set(pd.read_csv(attrition)["criteria_version"])
    assert versions == {pinned.criteria_version}
