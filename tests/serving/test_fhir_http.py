"""`POST /screen_fhir`: a Bundle in, `/screen`'s decision and a RiskAssessment out."""

from __future__ import annotations

import copy
from datetime import date

import pytest
from fhir.resources.R4B.riskassessment import RiskAssessment
from starlette.testclient import TestClient

from data_schema.fhir import read_patient
from synthetic.fhir import patient_bundles
from synthetic.generator import generate_cohort

DAY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def bundles() -> list[dict]:
    cohort = generate_cohort(n=40, seed=77, incidence=0.35)
    return list(patient_bundles(cohort, DAY, seed=77))


def _screen_fhir(client: TestClient, bundle: dict):
    return client.post(
        "/screen_fhir", json={"bundle": bundle, "screening_date": str(DAY)}
    )


def test_screen_fhir_answers_like_screen_on_the_record_it_read(client, bundles):
    statuses = set()
    for bundle in bundles:
        resp = _screen_fhir(client, bundle)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        resources = [e["resource"] for e in bundle["entry"]]
        record = read_patient(resources, DAY).record
        plain = client.post(
            "/screen",
            json={"patient": _json(record), "screening_date": str(DAY)},
        ).json()
        for key in ("status", "risk_2y", "gate", "reasons", "missing_fields"):
            assert body[key] == plain[key], key
        assert [v["verdict"] for v in body["verdicts"]] == [
            v["verdict"] for v in plain["verdicts"]
        ]
        ra = RiskAssessment.model_validate(body["risk_assessment"])
        assert float(ra.prediction[0].probabilityDecimal) == pytest.approx(
            body["risk_2y"], abs=1e-6
        )
        assert {b.reference for b in ra.basis} == set(body["provenance"].values())
        assert body["provenance"]["c3_g_l"].startswith("Observation/") or (
            "c3_g_l" not in record
        )
        statuses.add(body["status"])
    assert len(statuses) >= 2  # the cohort exercises more than one decision


def _json(record: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in record.items()}


def test_verdicts_name_the_resource_behind_their_evidence(client, bundles):
    body = _screen_fhir(client, bundles[0]).json()
    sourced = [v for v in body["verdicts"] if v["sources"]]
    assert sourced
    for v in sourced:
        assert set(v["sources"]) <= set(v["evidence"])
        for field, ref in v["sources"].items():
            assert body["provenance"][field] == ref


def test_a_bad_resource_is_reported_and_the_rest_used(client, bundles):
    bundle = copy.deepcopy(bundles[1])
    first_obs = next(
        e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
    )
    first_obs["resource"]["valueQuantity"]["code"] = "furlong"
    first_obs["resource"]["valueQuantity"]["unit"] = "furlong"
    bundle["entry"].append({"resource": {"resourceType": "Observation", "id": "x"}})
    resp = _screen_fhir(client, bundle)
    assert resp.status_code == 200, resp.text
    problems = {p["resource"]: p["why"] for p in resp.json()["mapping_problems"]}
    assert (
        "furlong not accepted" in problems[f"Observation/{first_obs['resource']['id']}"]
    )
    assert "fails FHIR R4B validation" in problems["Observation/x"]


@pytest.mark.parametrize(
    ("bundle", "says"),
    [
        ({"resourceType": "Patient"}, "resourceType"),
        ({"resourceType": "Bundle", "entry": []}, "no Patient resource"),
        (
            {
                "resourceType": "Bundle",
                "entry": [{"resource": {"resourceType": "Patient", "id": "p"}}],
            },
            "sex",
        ),
    ],
)
def test_a_bundle_without_a_usable_patient_gets_400(client, bundle, says):
    resp = _screen_fhir(client, bundle)
    assert resp.status_code == 400, resp.text
    assert says in resp.text
