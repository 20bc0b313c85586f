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
