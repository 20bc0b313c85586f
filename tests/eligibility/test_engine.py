"""The decision: risk gate first, then failures, then missing data, then eligible."""

from __future__ import annotations

from datetime import date

import pytest

from eligibility import screen

SCREENING = date(2026, 12, 1)


@pytest.fixture
def run(criteria):
    def go(rec, risk=0.8, gate=None):
        return screen(
            rec, risk=risk, gate=gate, screening_date=SCREENING, criteria=criteria
        )

    return go


def test_all_met_is_eligible_with_judgment_items_to_confirm(run, record) -> None:
    d = run(record())
    assert d.status == "eligible"
    assert d.to_confirm == (
        "EXC-02c-other-severe-active-lupus",  # reading severe-active-lupus: open list
        "EXC-12-other-lab-abnormality",
        "EXC-13-intercurrent-illness",
    )
    assert d.missing_fields == ()
    assert d.criteria_version.startswith("NCT05585671@1.1.0+sha256:")


def test_consent_not_yet_recorded_goes_to_confirm_not_review(run, record) -> None:
    d = run(record(consent_signed=None, contraception_agreed=None))
    assert d.status == "eligible"
    assert d.to_confirm[:2] == ("INC-05-consent", "INC-06-contraception")


@pytest.mark.parametrize("field", ["consent_signed", "contraception_agreed"])
def test_recorded_refusal_is_ineligible(run, record, field) -> None:
    d = run(record(**{field: False}))
    assert d.status == "ineligible"
    assert any(r.startswith(("INC-05", "INC-06")) for r in d.reasons)


def test_risk_gate_comes_first_and_rules_are_still_reported(run, record, criteria):
    d = run(record(), risk=0.5)
    assert d.status == "ineligible"
    assert d.reasons == ("2-year LN risk 0.500 ≤ gate 0.5",)
    assert len(d.verdicts) == len(criteria.criteria)
    assert d.verdict("INC-03-risk-gate").verdict == "not_met"
    # Below the gate AND excluded: the gate is the first reason, the rule follows.
    d = run(record(hiv_positive=True), risk=0.2)
    assert d.reasons[0].startswith("2-year LN risk 0.200")
    assert d.reasons[1].startswith("EXC-11-hiv: excluded")
    # Below the gate with missing data is still ineligible, not needs_review.
    assert run(record(igg_g_l=None), risk=0.2).status == "ineligible"


def test_missing_datum_gives_needs_review_listing_exactly_it(run, record) -> None:
    d = run(record(igg_g_l=None))
    assert d.status == "needs_review"
    assert d.missing_fields == ("igg_g_l",)
    assert d.reasons == (
        "EXC-07-igg-below-400mg-dl: cannot decide: igg_g_l not recorded",
    )
    d = run(record(weight_kg=None, urine_protein_g_24h=None))
    assert d.missing_fields == ("urine_protein_g_24h", "weight_kg")  # criterion order


def test_a_failure_outranks_missing_data(run, record) -> None:
    d = run(record(igg_g_l=None, urine_protein_g_24h=0.8))
    assert d.status == "ineligible"
    assert d.reasons == (
        "EXC-01e-urine-protein: excluded: urine_protein_g_24h = 0.8 > 0.5",
    )


@pytest.mark.parametrize(
    ("risk", "gate", "status"),
    [
        (0.6, None, "eligible"),  # the risk read against the threshold
        (0.5, None, "ineligible"),  # at the gate is not above it
        (0.6, "above", "eligible"),
        (0.6, "undetermined", "needs_review"),
        (0.45, "undetermined", "needs_review"),  # never a confident "ineligible"
        (0.45, "below", "ineligible"),
    ],
)
def test_the_gate_state_decides_the_risk_criterion(
    run, record, risk, gate, status
) -> None:
    d = run(record(), risk=risk, gate=gate)
    assert d.status == status
    verdict = d.verdict("INC-03-risk-gate")
    if status == "needs_review":
        assert verdict.verdict == "unknown"
        assert d.missing_fields == ()  # nothing to measure: a clinician decides
        assert any("gate 0.5" in reason for reason in d.reasons), d.reasons
    elif status == "ineligible":
        assert verdict.verdict == "not_met"
        assert "gate 0.5" in d.reasons[0]


def test_judgment_alone_never_blocks_and_never_decides(run, record) -> None:
    d = run(record())
    assert d.verdict("EXC-12-other-lab-abnormality").verdict == "needs_judgment"
    assert d.status == "eligible"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"risk": 1.2}, "risk must be a probability"),
        ({"risk": 0.6, "gate": "maybe"}, "gate: one of above, below, undetermined"),
    ],
)
def test_bad_risk_inputs_are_rejected(run, record, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        run(record(), **kwargs)
