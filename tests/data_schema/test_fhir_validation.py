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
