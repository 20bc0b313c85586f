"""The FHIR mapping and the one-patient reader: units, windows, conflicts, bad input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment

from data_schema import PatientRecord, field_specs
from data_schema.fhir import load_mapping, read_patient, risk_assessment

DAY0 = date(2026, 12, 1)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "gender": "female",
    "birthDate": "1990-05-01",
}


def obs(rid: str, code: str, value: float, unit: str, days_ago: int = 10, **extra):
    """An Observation with a UCUM quantity, ``days_ago`` days before DAY0."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "effectiveDateTime": (DAY0 - timedelta(days=days_ago)).isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


def statement(rid: str, rxcui: str, status: str, mg: float | None = None, **extra):
    r = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}]},
        **extra,
    }
    if mg is not None:
        r["dosage"] = [
            {
                "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": mg, "code": "mg"}}],
            }
        ]
    return r


@pytest.fixture(params=["rows", "columns"])
def engine(request) -> str:
    """Every reader test runs through both implementations of the rules."""
    return request.param


@pytest.fixture
def read(engine):
    def read(*resources, **kw):
        return read_patient([PATIENT, *resources], DAY0, engine=engine, **kw)

    return read


def test_mapping_covers_every_record_field_once():
    m = load_mapping()
    carried = set(m.carried())
    assert carried.isdisjoint(m.not_carried)
    assert carried | set(m.not_carried) == set(field_specs())
    for concept in m.concepts.values():
        for code in concept.codes:
            assert code.source, f"{concept.name} {code.code} cites no source"


# Each conversion with a worked value: (field, LOINC, value sent, unit, record value).
WORKED = [
    ("c3_g_l", "4485-9", 72.0, "mg/dL", 0.72),
    ("c3_g_l", "4485-9", 0.72, "g/L", 0.72),
    ("c4_g_l", "4498-2", 140.0, "mg/L", 0.14),
    ("creatinine_umol_l", "2160-0", 0.8, "mg/dL", 70.72),
    ("creatinine_umol_l", "14682-9", 0.0707, "mmol/L", 70.7),
    ("hemoglobin_g_l", "718-7", 12.5, "g/dL", 125.0),
    ("hemoglobin_g_l", "718-7", 7.8, "mmol/L", 125.6892),
    ("albumin_g_l", "1751-7", 3.8, "g/dL", 38.0),
    ("crp_mg_l", "1988-5", 1.2, "mg/dL", 12.0),
    ("igg_g_l", "2465-3", 1200.0, "mg/dL", 12.0),
    ("leukocytes_10e9_l", "6690-2", 5400.0, "/uL", 5.4),
    ("platelets_10e9_l", "777-3", 250.0, "10*3/uL", 250.0),
    ("alt_u_l", "1742-6", 0.5, "ukat/L", 30.0),
    ("urine_protein_g_24h", "2889-4", 650.0, "mg/(24.h)", 0.65),
    ("urine_protein_g_24h", "2890-2", 500.0, "mg/g", 0.5),
    ("urine_protein_g_24h", "2890-2", 56.6, "mg/mmol", 0.500344),
    ("weight_kg", "29463-7", 150.0, "[lb_av]", 68.0388555),
    ("height_cm", "8302-2", 65.0, "[in_i]", 165.1),
    ("height_cm", "8302-2", 1.65, "m", 165.0),
    ("anti_dsdna_iu_ml", "33799-8", 210.0, "[IU]/mL", 210.0),
]


@pytest.mark.parametrize(("field", "code", "value", "unit", "expected"), WORKED)
def test_unit_conversion_worked_values(field, code, value, unit, expected, read):
    reading = read(obs("o1", code, value, unit))
    assert reading.record[field] == pytest.approx(expected, rel=1e-9)
    assert reading.provenance[field] == "Observation/o1"
    PatientRecord.model_validate(reading.record)


def test_unknown_unit_is_reported_and_not_used(read):
    reading = read(obs("o1", "4485-9", 72.0, "mg/mL"), obs("o2", "4498-2", 0.2, "g/L"))
    assert "c3_g_l" not in reading.record
    assert reading.record["c4_g_l"] == 0.2  # the rest is still used
    (p,) = reading.problems
    assert (p.resource, p.field) == ("Observation/o1", "c3_g_l")
    assert "unit mg/mL not accepted" in p.why


def test_reference_range_gives_the_upper_limit_in_the_record_unit(read):
    high = {"high": {"value": 1.1, "code": "mg/dL", "system": UCUM}}
    reading = read(obs("o1", "2160-0", 0.8, "mg/dL", referenceRange=[high]))
    assert reading.record["creatinine_uln_umol_l"] == pytest.approx(97.24)


@pytest.mark.parametrize(
    ("days_ago", "used"), [(0, True), (180, True), (181, False), (-1, False)]
)
def test_look_back_window_of_c3_is_180_days(days_ago, used, read):
    reading = read(obs("o1", "4485-9", 0.7, "g/L", days_ago=days_ago))
    assert ("c3_g_l" in reading.record) is used
    assert not reading.problems  # outside the window is not a problem


def test_most_recent_result_wins(read):
    reading = read(
        obs("old", "4485-9", 0.9, "g/L", days_ago=40),
        obs("new", "4485-9", 65.0, "mg/dL", days_ago=5),
    )
    assert reading.record["c3_g_l"] == pytest.approx(0.65)
    assert reading.provenance["c3_g_l"] == "Observation/new"


def test_conflicting_results_on_one_day_leave_the_field_unknown(read):
    reading = read(
        obs("a", "4485-9", 0.9, "g/L", days_ago=5),
        obs("b", "4485-9", 0.6, "g/L", days_ago=5),
        obs("older", "4485-9", 0.8, "g/L", days_ago=30),
    )
    assert "c3_g_l" not in reading.record
    assert {p.resource for p in reading.problems} == {"Observation/a", "Observation/b"}
    assert all("conflicting results on 2026-11-26" in p.why for p in reading.problems)


def test_the_same_result_twice_in_two_units_is_no_conflict(read):
    reading = read(
        obs("a", "4485-9", 0.9, "g/L", days_ago=5),
        obs("b", "4485-9", 90.0, "mg/dL", days_ago=5),
    )
    assert reading.record["c3_g_l"] == pytest.approx(0.9)
    assert not reading.problems


def test_bad_resources_are_reported_one_by_one_and_the_rest_used(read):
    no_status = obs("nostatus", "4498-2", 0.2, "g/L")
    del no_status["status"]
    reading = read(
        obs("good", "4485-9", 0.7, "g/L"),
        no_status,
        obs("potassium", "2823-3", 4.1, "mmol/L"),
        obs("cancelled", "718-7", 120.0, "g/L", status="cancelled"),
        {"resourceType": "Encounter", "id": "e1", "status": "finished"},
        {"id": "x"},
    )
    assert reading.record["c3_g_l"] == 0.7
    why = {p.resource: p.why for p in reading.problems}
    assert "fails FHIR R4B validation: status" in why["Observation/nostatus"]
    assert "is not in the mapping" in why["Observation/potassium"]
    assert why["Observation/cancelled"] == "status cancelled: not used"
    assert why["Encounter/e1"] == "Encounter is not read"
    assert "no resourceType" in why["entry 6"]
    assert {"c4_g_l", "hemoglobin_g_l"}.isdisjoint(reading.record)


def test_out_of_range_value_is_reported_not_clipped(read):
    reading = read(obs("o1", "4485-9", 900.0, "g/L"))
    assert "c3_g_l" not in reading.record
    assert "is not a valid value" in reading.problems[0].why


def test_patient_without_known_sex_is_reported(engine):
    reading = read_patient([{**PATIENT, "gender": "unknown"}], DAY0, engine=engine)
    assert "sex" not in reading.record
    assert reading.problems[0].field == "sex"


def test_medications_current_dose_and_stable_since(read):
    reading = read(
        statement(
            "hcq", "5521", "active", 200, effectivePeriod={"start": "2026-03-01"}
        ),
        statement("pred", "8640", "not-taken"),
        statement("aza", "1256", "stopped", effectivePeriod={"end": "2025-01-01"}),
    )
    r = reading.record
    assert r["hydroxychloroquine_current"] is True
    assert r["hydroxychloroquine_mg_day"] == 400.0  # 200 mg twice a day
    assert r["hydroxychloroquine_dose_unchanged_since"] == date(2026, 3, 1)
    assert r["soc_regimen_stable_since"] == date(2026, 3, 1)
    assert r["prednisone_mg_day"] == 0.0
    assert r["immunosuppressant_current"] is False
    assert "immunosuppressant_name" not in r
    PatientRecord.model_validate(r)


def test_exposure_needs_a_recorded_negative_to_be_false(read):
    nothing = read()
    assert "ivig_ever" not in nothing.record  # absence stays unknown
    refused = {
        "resourceType": "MedicationAdministration",
        "id": "ivig",
        "status": "not-done",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]
        },
        "effectiveDateTime": "2026-01-01",
    }
    assert read(refused).record["ivig_ever"] is False


def test_risk_assessment_is_valid_fhir():
    resource = risk_assessment(
        0.63,
        patient_id="p1",
        basis=["Observation/o1", "Condition/c1"],
        model_name="ln-risk",
        model_version="3",
        occurrence=DAY0,
    )
    parsed = RiskAssessment.model_validate(resource)
    prediction = parsed.prediction[0]
    assert float(prediction.probabilityDecimal) == 0.63
    assert float(prediction.whenRange.high.value) == 2
    assert [b.reference for b in parsed.basis] == ["Observation/o1", "Condition/c1"]
    alone = risk_assessment(
        0.2,
        patient_id="p1",
        basis=[],
        model_name="ln-risk",
        model_version="3",
        occurrence=DAY0,
    )
    assert "basis" not in alone  # no empty arrays in FHIR JSON
    with pytest.raises(ValueError, match="probability"):
        risk_assessment(
            1.2,
            patient_id="p1",
            basis=[],
            model_name="m",
            model_version="1",
            occurrence=DAY0,
        )


def test_two_current_agents_or_last_doses_on_one_day_are_a_conflict(read):
    administration = {
        "resourceType": "MedicationAdministration",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-06-01",
    }
    reading = read(
        statement("aza", "1256", "active", effectivePeriod={"start": "2026-01-01"}),
        statement("mtx", "6851", "active", effectivePeriod={"start": "2026-02-01"}),
        {
            **administration,
            "id": "rtx",
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": "121191"}]
            },
        },
        {
            **administration,
            "id": "bel",
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.whocc.no/atc", "code": "L04AG04"}]
            },
        },
    )
    r = reading.record
    assert r["immunosuppressant_current"] is True
    assert "immunosuppressant_name" not in r  # which one is current is ambiguous
    assert r["immunosuppressant_dose_unchanged_since"] == date(2026, 2, 1)
    assert r["b_cell_therapy_ever"] is True
    assert r["b_cell_therapy_last_date"] == date(2026, 6, 1)
    assert "b_cell_therapy_agent" not in r
    assert "b_cell_therapy_half_life_days" not in r
    conflicts = {(p.resource, p.field) for p in reading.problems}
    assert conflicts == {
        ("MedicationStatement/aza", "immunosuppressant_name"),
        ("MedicationStatement/mtx", "immunosuppressant_name"),
        ("MedicationAdministration/rtx", "b_cell_therapy_agent"),
        ("MedicationAdministration/bel", "b_cell_therapy_agent"),
        ("MedicationAdministration/rtx", "b_cell_therapy_half_life_days"),
        ("MedicationAdministration/bel", "b_cell_therapy_half_life_days"),
    }


# --- earlier urinalyses: abnormal_urinalysis_ever / _last_date ---
PROTEIN_24H, UPCR, RBC, WBC = "2889-4", "2890-2", "13945-1", "5821-4"


def protein(rid: str, grams: float, days_ago: int):
    return obs(rid, PROTEIN_24H, grams, "g/(24.h)", days_ago=days_ago)


def test_an_earlier_proteinuria_above_half_a_gram_is_an_abnormal_urinalysis(read):
    reading = read(
        protein("now", 0.3, days_ago=10),
        protein("before", 0.8, days_ago=200),
        protein("older", 0.2, days_ago=400),
    )
    r = reading.record
    assert r["urine_protein_g_24h"] == 0.3  # the current value is untouched
    assert r["abnormal_urinalysis_ever"] is True
    assert r["abnormal_urinalysis_last_date"] == DAY0 - timedelta(days=200)
    assert reading.provenance["abnormal_urinalysis_ever"] == "Observation/before"
    assert reading.provenance["abnormal_urinalysis_last_date"] == "Observation/before"
    assert not reading.problems
    PatientRecord.model_validate(r)


def test_the_last_date_is_the_most_recent_abnormal_result(read):
    reading = read(
        protein("first", 1.2, days_ago=700),
        protein("second", 0.6, days_ago=300),
        protein("normal", 0.1, days_ago=150),
    )
    assert reading.record["abnormal_urinalysis_ever"] is True
    assert reading.record["abnormal_urinalysis_last_date"] == DAY0 - timedelta(300)
    assert reading.provenance["abnormal_urinalysis_ever"] == "Observation/second"


def test_the_threshold_is_strict(read):
    reading = read(protein("edge", 0.5, days_ago=200))
    assert reading.record["abnormal_urinalysis_ever"] is False


def test_an_earlier_ratio_in_mg_per_g_is_converted_before_it_is_judged(read):
    reading = read(obs("upcr", UPCR, 650.0, "mg/g", days_ago=200))
    assert reading.record["abnormal_urinalysis_ever"] is True  # 0.65 g/24 h
    assert reading.provenance["abnormal_urinalysis_ever"] == "Observation/upcr"
    assert "urine_protein_g_24h" not in reading.record  # outside the 90-day window


def test_an_earlier_result_in_a_unit_not_accepted_is_reported_once(read):
    reading = read(obs("bad", UPCR, 650.0, "mg/L", days_ago=200))
    assert "abnormal_urinalysis_ever" not in reading.record
    assert [(p.resource, p.field) for p in reading.problems] == [
        ("Observation/bad", "urine_protein_g_24h")
    ]


def test_earlier_haematuria_alone_is_unknown_menses_and_infection_are_not_coded(
    read,
):
    reading = read(
        obs("rbc", RBC, 8, "/[HPF]", days_ago=200),
        protein("normal", 0.2, days_ago=300),
    )
    assert "abnormal_urinalysis_ever" not in reading.record
    assert "abnormal_urinalysis_last_date" not in reading.record
    (p,) = reading.problems
    assert (p.resource, p.field) == ("Observation/rbc", "abnormal_urinalysis_ever")
    day = (DAY0 - timedelta(days=200)).isoformat()
    assert p.why == (
        f"urine_rbc_per_hpf 8 cells/hpf on {day}: menses or infection is not "
        "coded, so it may or may not count as abnormal"
    )


def test_earlier_proteinuria_decides_even_with_uncertain_haematuria(read):
    reading = read(
        obs("rbc", RBC, 8, "/[HPF]", days_ago=100),
        obs("wbc", WBC, 12, "/[HPF]", days_ago=100),
        protein("high", 0.9, days_ago=300),
    )
    assert reading.record["abnormal_urinalysis_ever"] is True
    assert reading.record["abnormal_urinalysis_last_date"] == DAY0 - timedelta(300)
    assert not reading.problems


def test_only_normal_earlier_results_are_a_normal_history(read):
    reading = read(
        protein("a", 0.2, days_ago=400),
        obs("b", RBC, 3, "/[HPF]", days_ago=200),
        obs("c", WBC, 5, "/[HPF]", days_ago=200),
    )
    assert reading.record["abnormal_urinalysis_ever"] is False
    assert "abnormal_urinalysis_last_date" not in reading.record
    assert reading.provenance["abnormal_urinalysis_ever"] == "Observation/b"
    assert not reading.problems


def test_todays_urinalysis_is_not_an_earlier_one(read):
    alone = read(protein("now", 0.9, days_ago=10), obs("r", RBC, 9, "/[HPF]", 10))
    assert "abnormal_urinalysis_ever" not in alone.record  # no earlier urinalysis
    assert not alone.problems
    with_history = read(
        protein("now", 0.9, days_ago=10),
        protein("earlier", 0.2, days_ago=40),  # inside the window, but earlier
    )
    assert with_history.record["urine_protein_g_24h"] == 0.9
    assert with_history.record["abnormal_urinalysis_ever"] is False
    assert with_history.provenance["abnormal_urinalysis_ever"] == (
        "Observation/earlier"
    )


def test_the_current_day_is_per_field(read):
    # day 30 holds the current RBC count, but the protein of that day is earlier
    # than the current protein (day 10)
    reading = read(
        protein("now", 0.2, days_ago=10),
        protein("then", 0.7, days_ago=30),
        obs("rbc", RBC, 3, "/[HPF]", days_ago=30),
    )
    assert reading.record["urine_rbc_per_hpf"] == 3
    assert reading.record["abnormal_urinalysis_ever"] is True
    assert reading.provenance["abnormal_urinalysis_ever"] == "Observation/then"


def test_a_future_dated_result_is_not_history(read):
    reading = read(protein("future", 0.9, days_ago=-5))
    assert "abnormal_urinalysis_ever" not in reading.record
    reading = read(protein("future", 0.9, days_ago=-5), protein("p", 0.1, 200))
    assert reading.record["abnormal_urinalysis_ever"] is False


def test_conflicting_results_on_the_current_day_are_not_earlier_ones(read):
    reading = read(
        protein("a", 0.9, days_ago=10),
        protein("b", 0.2, days_ago=10),
        protein("before", 0.1, days_ago=200),
    )
    assert "urine_protein_g_24h" not in reading.record  # the conflict
    assert reading.record["abnormal_urinalysis_ever"] is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": {"urine_protein_g_24h": 0.5, "no_such_field": 1}}, "unknown field"),
        ({"fields": {"urine_protein_g_24h": "high"}}, "is not a number"),
        ({"fields": {"urine_protein_g_24h": True}}, "is not a number"),
        ({"fields": {"c3_g_l": 0.9, "weight_kg": 80}, "needs_context": {}}, None),
        ({"fields": {"creatinine_uln_umol_l": 100}}, "is not a latest value"),
        ({"needs_context": {"c3_g_l": "menses"}}, "not in fields"),
        ({"needs_context": ["urine_rbc_per_hpf"]}, "maps a field to its context"),
        ({"fields": ["urine_protein_g_24h"]}, "a threshold per field"),
    ],
)
def test_history_rule_declarations_are_checked(tmp_path, change, message):
    import yaml

    from data_schema.fhir.mapping import MAPPING_PATH, MappingError

    raw = yaml.safe_load(MAPPING_PATH.read_text(encoding="utf-8"))
    rule = dict(raw["fields"]["abnormal_urinalysis_ever"], **change)
    if "fields" in change and "needs_context" not in change:
        rule["needs_context"] = {}
    raw["fields"]["abnormal_urinalysis_ever"] = rule
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    if message is None:
        assert load_mapping(path).fields["abnormal_urinalysis_ever"].thresholds
    else:
        with pytest.raises(MappingError, match=message):
            load_mapping(path)
