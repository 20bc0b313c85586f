"""HTTP contract through the service's ASGI app (in process, real BentoML)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from data_schema import PatientRecord, model_features, records_to_features
from riskmodel import LNRiskModel

PATIENT = {
    "patient_id": "P-17",
    "sex": "male",
    "age_years": 24.0,
    "disease_duration_years": 0.5,
    "anti_dsdna_iu_ml": 800.0,
    "c3_g_l": 0.45,
    "c4_g_l": 0.05,
    "anti_c1q_positive": True,
    "urine_protein_g_24h": 0.4,
    "hydroxychloroquine_current": False,
}


def test_ready_and_docs(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    spec = client.get("/docs.json").json()
    assert "/predict_risk" in spec["paths"]
    endpoint = spec["paths"]["/predict_risk"]["post"]
    assert "not a diagnostic device" in endpoint["description"].lower()
    # units and ranges of the patient fields reach the API docs
    text = str(spec["components"]["schemas"])
    assert "Unit: g/L" in text and "Valid range 0.05–4" in text


def test_predict_risk_one_and_many(client: TestClient, served) -> None:
    import bentoml

    resp = client.post("/predict_risk", json={"patients": [PATIENT, {"sex": "female"}]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [b["patient_id"] for b in body] == ["P-17", None]
    model = LNRiskModel.load(
        Path(bentoml.models.get(served.tag).path), expected_features=model_features()
    )
    features = records_to_features(
        [PatientRecord(**PATIENT), PatientRecord(sex="female")]
    )
    expected = model.predict_proba(features)
    np.testing.assert_allclose([b["risk_2y"] for b in body], expected, rtol=1e-6)
    states = model.gate(features, 0.5)
    assert [b["gate"] for b in body] == list(states.state)
    np.testing.assert_allclose([b["risk_low"] for b in body], states.low, rtol=1e-6)
    np.testing.assert_allclose([b["risk_high"] for b in body], states.high, rtol=1e-6)
    assert [b["gate_to_obtain"] for b in body] == [list(t) for t in states.to_obtain]
    # a record with only sex recorded cannot be settled: key labs are named
    assert body[1]["gate"] == "undetermined"
    assert body[1]["gate_to_obtain"]
    for b in body:
        assert b["risk_low"] <= b["risk_2y"] <= b["risk_high"]
        assert b["gate_threshold"] == 0.5
        assert b["model_name"] == "ln-risk"
        assert b["model_version"] == served.mlflow_version


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"c3_g_l": 12.0}, "c3_g_l"),
        ({"c3_g_l": "low"}, "c3_g_l"),
        ({"hypertension": "yes"}, "hypertension"),
        ({"blood_type": "A"}, "blood_type"),
        ({"sex": None}, "sex"),
    ],
)
def test_bad_input_is_4xx_naming_the_field(
    client: TestClient, patch: dict, field: str
) -> None:
    resp = client.post("/predict_risk", json={"patients": [{**PATIENT, **patch}]})
    assert 400 <= resp.status_code < 500
    assert field in resp.text


def test_empty_or_malformed_body_is_4xx(client: TestClient) -> None:
    assert client.post("/predict_risk", json={"patients": []}).status_code == 400
    assert client.post("/predict_risk", json={}).status_code == 400
    resp = client.post(
        "/predict_risk",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert 400 <= resp.status_code < 500
