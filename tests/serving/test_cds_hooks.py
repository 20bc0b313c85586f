"""CDS Hooks 2.0 through the service's ASGI app: discovery, patient-view, feedback."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from serving.cds_hooks import Discovery


@pytest.fixture(scope="module")
def service_id(client: TestClient) -> str:
    return client.get("/cds-services").json()["services"][0]["id"]


def test_discovery_names_the_patient_view_service(client: TestClient) -> None:
    resp = client.get("/cds-services")
    assert resp.status_code == 200
    document = Discovery.model_validate(resp.json())
    (service,) = document.services
    assert service.hook == "patient-view"
    assert service.id == "nct05585671-ln-risk"
    assert "not a diagnostic device" in service.description.lower()
    assert service.prefetch is not None
    assert service.prefetch["patient"] == "Patient/{{context.patientId}}"
    for template in service.prefetch.values():
        assert "{{context.patientId}}" in template


def test_every_prefetch_query_asks_only_for_the_codes_the_mapping_reads() -> None:
    from data_schema.fhir import load_mapping
    from serving.cds_hooks import PREFETCH_KEYS, prefetch_templates

    m = load_mapping()
    templates = prefetch_templates(m)
    for rtype, key in PREFETCH_KEYS.items():
        query, _, codes = templates[key].partition("&code=")
        if rtype == "Immunization":
            query, _, codes = templates[key].partition("&vaccine-code=")
        assert query == f"{rtype}?patient={{{{context.patientId}}}}"
        read = {
            c.key for con in m.concepts.values() if rtype in con.resources
            for c in con.codes
        }  # fmt: skip
        assert set(codes.split(",")) == read
    assert "http://loinc.org|4485-9," in templates["observations"]  # C3


def test_the_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/docs.json").json()["paths"]
    assert "/cds-services" in paths
    assert "/cds-services/{service}/feedback" in paths


def test_feedback_is_audited_without_free_text(
    client: TestClient, service_id: str
) -> None:
    log = Path(os.environ["LNRISK_HOME"]).resolve() / "audit" / "audit.jsonl"
    card = str(uuid.uuid4())
    body = {
        "feedback": [
            {
                "card": card,
                "outcome": "accepted",
                "outcomeTimestamp": "2026-12-01T10:00:00Z",
            },
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "code": "already-screened",
                        "system": "urn:lnrisk:cds:override-reason",
                    },
                    "userComment": "Mrs Jane Roe was screened last week",
                },
                "outcomeTimestamp": "2026-12-01T10:01:00Z",
            },
        ]
    }
    resp = client.post(
        f"/cds-services/{service_id}/feedback",
        json=body,
        headers={"X-Request-ID": "fb-1"},
    )
    assert resp.status_code == 200, resp.text
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    (entry,) = [e for e in lines if e["request_id"] == "fb-1"]
    assert entry["endpoint"] == "cds_feedback"
    assert (entry["accepted"], entry["overridden"], entry["comments"]) == (1, 1, 1)
    assert entry["override_reasons"] == ["already-screened"]
    assert card in entry["cards"]
    assert "Jane Roe" not in log.read_text()


def test_feedback_names_bad_fields_and_unknown_services(
    client: TestClient, service_id: str
) -> None:
    bad = client.post(
        f"/cds-services/{service_id}/feedback",
        json={"feedback": [{"card": "x", "outcome": "ignored"}]},
    )
    assert bad.status_code == 422
    assert "outcome" in bad.text and "outcomeTimestamp" in bad.text
    unknown = client.post("/cds-services/nope/feedback", json={"feedback": []})
    assert 400 <= unknown.status_code < 500


@pytest.fixture(scope="module")
def charts() -> list[list[dict]]:
    """Synthetic patients' FHIR resources as of today (patient-view screens today)."""
    from datetime import date

    from synthetic.fhir import patient_bundles
    from synthetic.generator import generate_cohort

    cohort = generate_cohort(n=10, seed=5, incidence=0.6)
    bundles = patient_bundles(cohort, date.today(), seed=5)
    charts = [[e["resource"] for e in b["entry"]] for b in bundles]
    # and a chart without labs: the gate cannot be settled, the card says what to get
    unmeasured = [r for r in charts[0] if r["resourceType"] != "Observation"]
    return [*charts, unmeasured]


def hook_call(resources: list[dict], **changes) -> dict:
    from serving.cds_hooks import prefetch_for

    patient = next(r for r in resources if r["resourceType"] == "Patient")
    call = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/77", "patientId": patient["id"]},
        "prefetch": prefetch_for(resources),
    }
    return {**call, **changes}


@pytest.mark.slow
def test_patient_view_cards_state_screen_s_decision(
    client: TestClient, service_id: str, charts
) -> None:
    """Each card carries the decision /screen gives the record read from FHIR."""
    from datetime import date

    from data_schema import PatientRecord
    from data_schema.fhir import read_patient
    from serving.cds_hooks import HookResponse

    statuses = set()
    for resources in charts:
        resp = client.post(f"/cds-services/{service_id}", json=hook_call(resources))
        assert resp.status_code == 200, resp.text
        (card,) = HookResponse.model_validate(resp.json()).cards
        record = PatientRecord.model_validate(
            read_patient(resources, date.today()).record
        )
        patient = record.model_dump(mode="json", exclude_none=True)
        plain = client.post("/screen", json={"patient": patient}).json()
        statuses.add(plain["status"])
        risk = round(plain["risk_2y"] * 100)
        assert card.summary.startswith(f"LN 2-year risk {risk} % — NCT05585671 ")
        assert len(card.summary) < 140
        assert f"Decision: **{plain['status']}**" in card.detail
        assert card.indicator == {"eligible": "warning"}.get(plain["status"], "info")
        assert plain["model_version"] in card.source.label
        assert plain["criteria_version"] in card.source.label
        if plain["status"] == "needs_review" and plain["gate_to_obtain"]:
            assert "candidate: obtain" in card.summary
        for verdict in plain["verdicts"]:
            failing = "not_met" if verdict["kind"] == "inclusion" else "met"
            if verdict["verdict"] == failing:
                assert f"`{verdict['id']}`" in card.detail
    assert statuses == {"ineligible", "needs_review"}  # more than one decision


def test_a_prefetch_without_an_entry_gets_a_card_naming_it(
    client: TestClient, service_id: str, charts
) -> None:
    call = hook_call(charts[0])
    del call["prefetch"]["observations"]
    call["prefetch"]["conditions"] = None
    resp = client.post(f"/cds-services/{service_id}", json=call)
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    assert "conditions, observations" in card["summary"]
    assert "Decision:" not in card["detail"] and "%" not in card["summary"]
    bare = client.post(
        f"/cds-services/{service_id}",
        json={**call, "prefetch": None, "fhirServer": "https://ehr.example.org/fhir"},
    )
    assert bare.status_code == 200
    (card,) = bare.json()["cards"]
    assert "patient" in card["summary"] and "fhirServer" in card["detail"]


def test_a_chart_without_a_usable_patient_gets_a_card(
    client: TestClient, service_id: str, charts
) -> None:
    resources = [dict(r) for r in charts[1]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    patient.pop("gender", None)
    resp = client.post(f"/cds-services/{service_id}", json=hook_call(resources))
    assert resp.status_code == 200, resp.text
    (card,) = resp.json()["cards"]
    assert card["summary"].startswith("LN risk not computed")
    assert "sex" in card["detail"]
    other = hook_call(charts[2])
    other["context"]["patientId"] = "someone-else"
    (card,) = client.post(f"/cds-services/{service_id}", json=other).json()["cards"]
    assert "not the patient in context" in card["detail"]


def test_bad_calls_get_4xx_naming_the_field(
    client: TestClient, service_id: str, charts
) -> None:
    call = hook_call(charts[0])
    wrong_hook = client.post(
        f"/cds-services/{service_id}", json={**call, "hook": "order-select"}
    )
    assert wrong_hook.status_code == 400 and "patient-view" in wrong_hook.text
    no_context = {k: v for k, v in call.items() if k != "context"}
    resp = client.post(f"/cds-services/{service_id}", json=no_context)
    assert resp.status_code == 422 and "context" in resp.text
    assert client.post("/cds-services/other", json=call).status_code == 404


@pytest.mark.slow
def test_fuzzed_hook_calls_never_get_a_5xx(client: TestClient, service_id: str) -> None:
    """schemathesis on the CDS routes, with the real service id in the path so that
    generated prefetches reach the FHIR reader: cards or 4xx, never a server error."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_dict(client.get("/docs.json").json())
    failures: list[str] = []
    codes: list[int] = []
    posts = [
        op
        for result in schema.get_all_operations()
        if (op := result.ok()).path.startswith("/cds-services/")
    ]
    for operation in posts:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=60,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                case.path_parameters["service"] = service_id
                sent = case.as_transport_kwargs(base_url="http://testserver")
                keys = ("method", "url", "headers", "json", "params", "content")
                resp = client.request(**{k: v for k, v in sent.items() if k in keys})
                codes.append(resp.status_code)
                if resp.status_code >= 500:
                    failures.append(f"{case.path}: {resp.text[:200]}")

            check()
    assert not failures, failures[:5]
    assert codes.count(200) >= 30  # generated calls were answered with cards
    assert sum(400 <= c < 500 for c in codes) >= 30


def _decision(**changes):  # -> eligibility.Decision
    from eligibility import Decision

    base = {
        "status": "needs_review",
        "reasons": (),
        "missing_fields": (),
        "to_confirm": (),
        "verdicts": (),
        "risk": 0.63,
        "risk_range": (0.41, 0.82),
        "gate": "undetermined",
        "gate_to_obtain": ("c3_g_l", "c4_g_l"),
        "criteria_version": "NCT05585671@test",
    }
    return Decision(**{**base, **changes})


def test_summaries_name_what_to_obtain_within_140_characters() -> None:
    from data_schema import field_specs
    from serving.cds_hooks import summary

    assert (
        summary(_decision(), "NCT05585671")
        == "LN 2-year risk 63 % — NCT05585671 candidate: obtain Complement C3, "
        "Complement C4"
    )
    everything = tuple(field_specs())
    long = summary(_decision(gate_to_obtain=everything), "NCT05585671")
    assert len(long) < 140
    assert long.endswith(f" +{len(everything) - long.count(', ') - 1} more")
    below = summary(_decision(status="ineligible", gate="below"), "NCT05585671")
    assert (
        below == "LN 2-year risk 63 % — NCT05585671 not eligible: risk below the gate"
    )
