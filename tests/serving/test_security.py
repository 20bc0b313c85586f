"""Authentication, the audit trail, logs without patient data, explain, model_info."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from serving.security import AuditLog

PATIENT = {
    "patient_id": "SECRET-ID-42",
    "sex": "female",
    "age_years": 27.0,
    "anti_dsdna_iu_ml": 640.0,
    "c3_g_l": 0.61,
    "c4_g_l": 0.07,
}


@pytest.fixture
def secured(client: TestClient, monkeypatch) -> TestClient:
    """The shared app with an API key configured (read per request)."""
    monkeypatch.setenv("LNRISK_API_KEY", "s3cret-key")
    return client


@pytest.fixture
def audit_path() -> Path:
    """The service's default audit log under the session's LNRISK_HOME."""
    return Path(os.environ["LNRISK_HOME"]).resolve() / "audit" / "audit.jsonl"


AUTH = {"Authorization": "Bearer s3cret-key"}


def test_api_key_is_required_except_for_probes(secured: TestClient) -> None:
    body = {"patients": [PATIENT]}
    missing = secured.post("/predict_risk", json=body)
    wrong = secured.post("/predict_risk", json=body, headers={"X-API-Key": "nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json() == {"error": "unauthorized"}  # nothing else leaks
    assert secured.post("/predict_risk", json=body, headers=AUTH).status_code == 200
    ok = secured.post("/predict_risk", json=body, headers={"X-API-Key": "s3cret-key"})
    assert ok.status_code == 200
    assert secured.get("/readyz").status_code == 200
    assert secured.get("/livez").status_code == 200
    # (/metrics is answered only by a real server: see test_e2e.py)


def test_audit_lines_carry_no_identifiers_or_values(secured, audit_path) -> None:
    secured.post(
        "/predict_risk",
        json={"patients": [PATIENT]},
        headers={**AUTH, "X-Request-ID": "req-1"},
    )
    text = audit_path.read_text()
    # (values written with a '.' cannot hide inside the hex hashes by chance)
    assert "SECRET-ID-42" not in text and "0.61" not in text and "640.0" not in text
    assert all(
        v not in (640, 640.0, 0.61, 27.0)
        for r in map(json.loads, text.splitlines())
        for v in r.values()
    )
    lines = [json.loads(line) for line in text.splitlines()]
    line = next(r for r in lines if r["request_id"] == "req-1")
    assert line["endpoint"] == "predict_risk"
    assert line["n_patients"] == 1
    assert len(line["input_sha256"]) == 64
    assert {"model_version", "criteria_version", "gate_above", "time"} <= set(line)
    assert line["gate_above"] + line["gate_below"] + line["gate_undetermined"] == 1


def test_rejected_input_is_logged_without_its_values(secured, caplog) -> None:
    caplog.set_level(logging.ERROR)
    bad = {**PATIENT, "patient_id": "SECRET ID WITH SPACES", "c3_g_l": 77.7}
    resp = secured.post("/predict_risk", json={"patients": [bad]}, headers=AUTH)
    assert resp.status_code == 400
    assert "patient_id" in resp.text and "c3_g_l" in resp.text
    assert "SECRET ID WITH SPACES" not in caplog.text
    assert "77.7" not in caplog.text
    assert "patients.0.c3_g_l" in caplog.text  # the field is still named


def test_explain_contributions_add_up_to_the_margin(secured, served) -> None:
    import bentoml

    from data_schema import PatientRecord, model_features, records_to_features
    from riskmodel import LNRiskModel

    resp = secured.post("/explain", json={"patient": PATIENT, "top": 41}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    model = LNRiskModel.load(bentoml.models.get(served.tag).path)
    X = records_to_features([PatientRecord(**PATIENT)])
    total = body["baseline_log_odds"] + sum(
        c["log_odds"] for c in body["contributions"]
    )
    np.testing.assert_allclose(total, model.margin(X)[0], rtol=1e-4)
    assert len(body["contributions"]) == len(model_features())
    top = body["contributions"][0]
    assert top["description"] and top["unit"]
    assert top["direction"] in ("raises", "lowers")
    first_abs = [abs(c["log_odds"]) for c in body["contributions"]]
    assert first_abs == sorted(first_abs, reverse=True)


def test_model_info_names_the_served_version(secured, served) -> None:
    body = secured.post("/model_info", json={}, headers=AUTH).json()
    assert body["model_version"] == served.mlflow_version
    assert body["mlflow_run_id"] == served.run_id
    assert body["data_digest"] == served.data_digest
    assert "auroc" in body["headline_metrics"]
    assert "not a diagnostic device" in body["disclaimer"].lower()


def test_audit_log_survives_a_restart(tmp_path) -> None:
    path = tmp_path / "a.jsonl"
    first = AuditLog(path, salt="pepper")
    first.write(endpoint="x", n=1)
    again = AuditLog(path, salt="pepper")  # a restarted service appends
    again.write(endpoint="y", n=2)
    assert [json.loads(x)["endpoint"] for x in path.read_text().splitlines()] == [
        "x",
        "y",
    ]
    assert first.hash_bytes(b'{"a": 1}') == again.hash_bytes(b'{"a": 1}')
    assert first.hash_bytes(b'{"a": 1}') != AuditLog(path, salt="salt").hash_bytes(
        b'{"a": 1}'
    )
