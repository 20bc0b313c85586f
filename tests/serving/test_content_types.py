"""Content types at the edge: JSON and FHIR JSON in, anything else 415."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

PATIENT = {"patient_id": "P-3", "sex": "female", "age_years": 31.0, "c3_g_l": 0.6}
ENDPOINTS = ["/screen", "/predict_risk", "/screen_batch", "/explain", "/model_info"]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_multipart_body_gets_415_naming_what_is_accepted(
    client: TestClient, path: str
) -> None:
    resp = client.post(path, files={"patient": ("p.json", json.dumps(PATIENT))})
    assert resp.status_code == 415
    body = resp.json()
    assert body["accepted"] == ["application/json", "application/fhir+json"]
    assert body["content_type"].startswith("multipart/form-data")
    assert resp.headers["accept-post"] == "application/json, application/fhir+json"


@pytest.mark.parametrize(
    "media",
    [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/xml",
        "application/vnd.bentoml+pickle",
        "application/octet-stream",
    ],
)
def test_other_media_types_get_415(client: TestClient, media: str) -> None:
    resp = client.post(
        "/screen",
        content=json.dumps({"patient": PATIENT}),
        headers={"content-type": media},
    )
    assert resp.status_code == 415, resp.text
    assert resp.json()["content_type"] == media


def test_a_body_without_a_content_type_gets_415(client: TestClient) -> None:
    resp = client.post("/screen", content=json.dumps({"patient": PATIENT}).encode())
    assert resp.status_code == 415
    assert resp.json()["content_type"] is None
    # an empty POST declares nothing and needs nothing
    assert client.post("/model_info").status_code == 200


@pytest.mark.parametrize(
    "media", ["application/fhir+json", "application/json; charset=utf-8"]
)
def test_json_and_fhir_json_answer_alike(client: TestClient, media: str) -> None:
    body = json.dumps({"patient": PATIENT, "screening_date": "2026-12-01"})
    plain = client.post(
        "/screen", content=body, headers={"content-type": "application/json"}
    )
    other = client.post("/screen", content=body, headers={"content-type": media})
    assert plain.status_code == other.status_code == 200, other.text
    assert other.json() == plain.json()
