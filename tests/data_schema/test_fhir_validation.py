"""FHIR validation of one patient's resources: what is validated, and the cache of
resources seen before."""

from __future__ import annotations

import copy
from datetime import date

from data_schema.fhir import read_patient
from data_schema.fhir.reader import ValidationCache

DAY = date(2026, 6, 1)
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}
C3 = {
    "resourceType": "Observation",
    "id": "c3",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "4485-9"}]},
    "effectiveDateTime": "2026-05-20",
    "valueQuantity": {
        "value": 0.7, "unit": "g/L", "system": "http://unitsofmeasure.org",
        "code": "g/L",
    },
}  # fmt: skip


def _problems(resources, cache) -> dict[str, str]:
    reading = read_patient(resources, DAY, cache=cache)
    return {p.resource: p.why for p in reading.problems}


def test_a_resource_seen_before_is_not_validated_again() -> None:
    cache = ValidationCache()
    first = read_patient([PATIENT, C3], DAY, cache=cache)
    assert first.record["c3_g_l"] == 0.7
    assert (cache.hits, cache.misses) == (0, 2)
    again = read_patient(copy.deepcopy([PATIENT, C3]), DAY, cache=cache)
    assert again.record == first.record
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_changed_resource_under_the_same_id_is_validated_again() -> None:
    cache = ValidationCache()
    assert "Observation/c3" not in _problems([PATIENT, C3], cache)
    broken = {k: v for k, v in C3.items() if k != "status"}  # status is required
    why = _problems([PATIENT, broken], cache)["Observation/c3"]
    assert why.startswith("fails FHIR R4B validation: status")
    assert cache.misses == 3
    assert "Observation/c3" not in _problems([PATIENT, C3], cache)  # valid again


def test_the_cache_keeps_its_size() -> None:
    cache = ValidationCache(size=3)
    for i in range(10):
        read_patient([{**PATIENT, "id": f"p{i}"}], DAY, cache=cache)
    assert len(cache._seen) == 3


def test_a_resource_with_codes_the_mapping_does_not_read_is_reported_not_validated():
    cache = ValidationCache()
    other = {
        "resourceType": "Observation",
        "id": "other",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]},
        "valueQuantity": "not a quantity",  # invalid, but never read
    }
    why = _problems([PATIENT, other], cache)["Observation/other"]
    assert why == "code http://loinc.org|2093-3 is not in the mapping"
    assert cache.misses == 1  # the Patient only


def test_a_resource_without_a_code_is_validated() -> None:
    why = _problems([PATIENT, {"resourceType": "Observation", "id": "x"}], None)
    assert why["Observation/x"].startswith("fails FHIR R4B validation")


def test_a_result_older_than_every_window_of_its_code_is_not_validated() -> None:
    cache = ValidationCache()
    old = {**C3, "id": "old", "effectiveDateTime": "2025-06-01"}  # > 180 days
    old["valueQuantity"] = {**C3["valueQuantity"], "value": "not a number"}
    reading = read_patient([PATIENT, C3, old], DAY, cache=cache)
    assert reading.record["c3_g_l"] == 0.7
    why = {p.resource: p.why for p in reading.problems}["Observation/old"]
    assert why == "no valueQuantity: not used"  # the rule's own check, not FHIR's
    assert cache.misses == 2  # the Patient and the current C3
    recent = {**old, "effectiveDateTime": "2026-05-01"}  # inside the window
    why = _problems([PATIENT, C3, recent], cache)["Observation/old"]
    assert why.startswith("fails FHIR R4B validation: valueQuantity")


def test_a_urine_result_of_any_age_is_validated() -> None:
    """Earlier urine results are read over the whole history (earlier abnormal
    urinalysis), so none of them is too old to be validated."""
    urine = {
        **C3,
        "id": "u",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2889-4"}]},
        "effectiveDateTime": "2015-01-01",
        "valueQuantity": {"value": "junk"},
    }
    why = _problems([PATIENT, urine], ValidationCache())["Observation/u"]
    assert why.startswith("fails FHIR R4B validation")


JUNK = [5, "x", [], {}, [5], [{"system": 5}], {"coding": 5}, {"coding": [5, "a"]}]


def test_junk_where_fhir_has_structure_never_breaks_the_reader() -> None:
    """Resources a rule does not read are not validated; whatever they hold, the
    reader reports them and reads the rest."""
    resources = [PATIENT, C3]
    for i, junk in enumerate(JUNK):
        for element in ("status", "valueQuantity", "effectiveDateTime", "category"):
            old = {**C3, "id": f"old{i}{element}", "effectiveDateTime": "2020-01-01"}
            resources.append({**old, element: junk})
        resources.append({"resourceType": "Condition", "id": f"c{i}", "code": junk,
                          "evidence": junk, "verificationStatus": junk})  # fmt: skip
        resources.append({"resourceType": "MedicationStatement", "id": f"m{i}",
                          "medicationCodeableConcept": {"coding": [{"system": "s",
                          "code": "c"}]}, "dosage": junk})  # fmt: skip
    reading = read_patient(resources, DAY, cache=ValidationCache())
    assert reading.record["c3_g_l"] == 0.7
    assert reading.record["sex"] == "female"
