"""The rule language: Kleene logic, load-time validation, a second criteria file."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from eligibility import CriteriaError, load_criteria, parse_criteria, screen
from eligibility.criteria import DEFAULT_CRITERIA_PATH
from eligibility.evaluate import Context, Truth, evaluate_one

SCREENING = date(2026, 12, 1)
VARIANT = DEFAULT_CRITERIA_PATH.with_name("nct05585671_gate40_age16.yaml")

HEADER = """
trial_id: NCT05585671
version: "t"
risk_gate: {threshold: 0.5}
criteria:
"""


def one_rule(rule: str, cid: str = "EXC-99-test", kind: str = "exclusion") -> str:
    return HEADER + f"  - {{id: {cid}, kind: {kind}, text: t, rule: {rule}}}\n"


def value_of(rule: str, rec) -> Truth:
    crit = parse_criteria(one_rule(rule)).criteria[0]
    return evaluate_one(crit.rule, Context(rec, SCREENING)).value


# --- Kleene three-valued logic -----------------------------------------------------
T, F, U = "{is_true: hiv_positive}", "{is_false: hiv_positive}", "{is_true: pregnant}"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (f"{{all: [{T}, {U}]}}", Truth.UNKNOWN),
        (f"{{all: [{F}, {U}]}}", Truth.FALSE),  # decided despite the unknown
        (f"{{any: [{T}, {U}]}}", Truth.TRUE),  # decided despite the unknown
        (f"{{any: [{F}, {U}]}}", Truth.UNKNOWN),
        (f"{{not: {U}}}", Truth.UNKNOWN),
        (f"{{not: {T}}}", Truth.FALSE),
        (f"{{any: [{F}, {{judgment: q}}]}}", Truth.JUDGMENT),
        (f"{{any: [{U}, {{judgment: q}}]}}", Truth.UNKNOWN),  # missing data first
        (f"{{all: [{F}, {{judgment: q}}]}}", Truth.FALSE),
    ],
)
def test_kleene_logic(record, rule, expected) -> None:
    rec = record(hiv_positive=True, pregnant=None)
    assert value_of(rule, rec) is expected


def test_unknown_lists_only_the_fields_that_leave_it_open(record) -> None:
    crit = parse_criteria(
        one_rule(
            "{any: [{is_true: pregnant}, {is_true: lactating}, "
            "{is_true: hiv_positive}]}"
        )
    ).criteria[0]
    r = evaluate_one(
        crit.rule, Context(record(pregnant=None, lactating=None), SCREENING)
    )
    assert r.value is Truth.UNKNOWN
    assert r.missing == ("pregnant", "lactating")


def test_exposure_never_is_a_recorded_negative(record) -> None:
    rule = "{within_days: {exposure: ivig, days: 90, boundary: inclusive}}"
    assert value_of(rule, record(ivig_ever=False)) is Truth.FALSE
    assert value_of(rule, record(ivig_ever=None)) is Truth.UNKNOWN
    more = "{more_than_days_ago: {exposure: ivig, days: 90, boundary: inclusive}}"
    assert value_of(more, record(ivig_ever=False)) is Truth.FALSE
    assert value_of(more, record(ivig_ever=True, ivig_last_date=date(2026, 9, 1))) is (
        Truth.TRUE  # 91 days before 2026-12-01
    )
    assert value_of(more, record(ivig_ever=True, ivig_last_date=date(2026, 9, 2))) is (
        Truth.FALSE  # exactly 90 days: within, not more than
    )


# --- the shipped files -------------------------------------------------------------
def test_shipped_file_loads_with_version_and_hash() -> None:
    c = load_criteria()
    assert c.trial_id == "NCT05585671" and c.version == "1.1.0"
    assert len(c.sha256) == 64
    assert c.criteria_version == f"NCT05585671@1.1.0+sha256:{c.sha256[:12]}"
    assert c.risk_gate.threshold == 0.5
    kinds = {x.kind for x in c.criteria}
    assert kinds == {"inclusion", "exclusion"}
    assert "b_cell_therapy_last_date" in c.fields_used()


def test_second_file_changes_gate_and_age_without_code_changes(record) -> None:
    base, variant = load_criteria(), load_criteria(VARIANT)
    assert variant.risk_gate.threshold == 0.40
    assert variant.sha256 != base.sha256
    seventeen = record(date_of_birth=date(2009, 6, 1))
    risk = 0.45  # below the registry gate, above the variant's

    def status(rec, crit):
        return screen(rec, risk=risk, screening_date=SCREENING, criteria=crit).status

    assert status(record(), base) == "ineligible"
    assert status(record(), variant) == "eligible"
    assert status(seventeen, variant) == "eligible"
    d = screen(seventeen, risk=0.8, screening_date=SCREENING, criteria=base)
    assert d.status == "ineligible" and d.reasons[0].startswith("INC-01-age")


# --- bad files fail at load, naming the criterion ----------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            one_rule("{is_true: hiv_postive}"),
            r"EXC-99-test: unknown field 'hiv_postive'",
        ),
        (
            one_rule("{field: sex, op: '>', value: 1}"),
            r"EXC-99-test: field 'sex' is of kind 'category'; operator '>' needs",
        ),
        (
            one_rule("{is_true: igg_g_l}"),
            r"EXC-99-test: field 'igg_g_l' is of kind 'float'; is_true needs bool",
        ),
        (
            one_rule("{field: hiv_positive, op: '==', value: true}"),
            r"EXC-99-test: field 'hiv_positive' is of kind 'bool'",
        ),
        (
            one_rule("{field: igg_g_l, op: '<', value: '4'}"),
            r"EXC-99-test: igg_g_l < needs a number",
        ),
        (
            one_rule("{field: b_cell_therapy_agent, op: '==', value: rituximabb}"),
            r"EXC-99-test: b_cell_therapy_agent has no category \['rituximabb'\]",
        ),
        (
            one_rule("{days_since: igg_g_l, op: '>', value: 3}"),
            r"EXC-99-test: field 'igg_g_l' is of kind 'float'; days_since needs date",
        ),
        (
            one_rule(
                "{within_days: {exposure: aspirin, days: 3, boundary: inclusive}}"
            ),
            r"EXC-99-test: unknown exposure 'aspirin'",
        ),
        (
            one_rule("{derived: egfr, op: '<', value: 60}"),
            r"EXC-99-test: unknown derived variable 'egfr'",
        ),
        (one_rule("{field: igg_g_l, op: '~', value: 4}"), r"criterion EXC-99-test"),
        (one_rule("{frobnicate: igg_g_l}"), r"criterion EXC-99-test.*rule node needs"),
        (one_rule("{is_true: hiv_positive}", kind="maybe"), r"criterion EXC-99-test"),
        (
            HEADER + "  - {id: EXC-01-a, kind: exclusion, text: t, rule: {is_true: "
            "hiv_positive}}\n  - {id: EXC-01-a, kind: exclusion, text: t, rule: "
            "{is_true: pregnant}}\n",
            r"criterion EXC-01-a: duplicate id",
        ),
        (one_rule("{is_true: hiv_positive}").replace("0.5", "1.5"), r"risk_gate"),
        ("criteria: [", r"not valid YAML"),
    ],
)
def test_bad_criteria_files_fail_with_clear_messages(text, message) -> None:
    with pytest.raises(CriteriaError, match=message):
        parse_criteria(text, source="bad.yaml")


def test_load_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        one_rule("{is_true: no_such_field}", cid="INC-07-x", kind="inclusion")
    )
    with pytest.raises(CriteriaError, match=r"bad\.yaml.*\n.*criterion INC-07-x"):
        load_criteria(bad)
