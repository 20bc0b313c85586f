"""`screen`, `screen_batch` and `noop` over HTTP: same decisions as the library."""

from __future__ import annotations

import itertools
from datetime import date
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from data_schema import frame_to_records, model_features
from eligibility import load_criteria
from eligibility.screen import screen_patients
from eligibility.table import Table
from riskmodel import LNRiskModel
from serving.schemas import BatchScreening, ScreeningDecision
from synthetic.generator import generate_cohort

DAY = date(2026, 12, 1)


@pytest.fixture(scope="module")
def served_model(served) -> LNRiskModel:
    import bentoml

    return LNRiskModel.load(
        Path(bentoml.models.get(served.tag).path), expected_features=model_features()
    )


@pytest.fixture(scope="module")
def patients() -> list:
    """1,000 synthetic patients, high-risk enough that many pass the gate."""
    return frame_to_records(generate_cohort(n=1000, seed=909, incidence=0.35))


def _library_decision(record, model: LNRiskModel, criteria):
    """What the library decides: the model's risk and gate, then the engine."""
    return screen_patients(model, Table.from_record(record, DAY), criteria).decision(0)


def _body(record) -> dict:
    return record.model_dump(mode="json", exclude_none=True)


@pytest.mark.slow
def test_screen_equals_the_library_for_1000_patients(
    client: TestClient, patients, served_model
) -> None:
    criteria = load_criteria()
    statuses = []
    for record in patients:
        resp = client.post(
            "/screen", json={"patient": _body(record), "screening_date": str(DAY)}
        )
        assert resp.status_code == 200, resp.text
        got = resp.json()
        # serialised without the response model: it must still be its exact shape
        assert ScreeningDecision.model_validate(got).model_dump(mode="json") == got
        want = _library_decision(record, served_model, criteria)
        assert got["status"] == want.status
        assert got["risk_2y"] == pytest.approx(want.risk, rel=1e-9)
        assert got["gate"] == want.gate
        assert got["missing_fields"] == list(want.missing_fields)
        assert got["to_confirm"] == list(want.to_confirm)
        assert [v["verdict"] for v in got["verdicts"]] == [
            v.verdict for v in want.verdicts
        ]
        statuses.append(got["status"])
    # both sides of the gate are exercised (synthetic patients rarely have every
    # datum an `eligible` needs; the engine's own tests cover that status)
    assert {"ineligible", "needs_review"} <= set(statuses)


def test_screen_batch_equals_screen(client: TestClient, patients, served_model):
    criteria = load_criteria()
    resp = client.post(
        "/screen_batch",
        json={"patients": [_body(r) for r in patients], "screening_date": str(DAY)},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["patients"]) == len(patients)
    for record, got in zip(patients, body["patients"], strict=True):
        want = _library_decision(record, served_model, criteria)
        assert got["patient_id"] == record.patient_id
        assert got["status"] == want.status
        assert got["missing_fields"] == list(want.missing_fields)
        assert got["to_confirm"] == list(want.to_confirm)
        assert got["verdicts"] == {v.id: v.verdict for v in want.verdicts}
        assert got["gate"] == want.gate
        assert got["gate_to_obtain"] == list(want.gate_to_obtain)
        assert got["risk_low"] == pytest.approx(want.risk_range[0], rel=1e-6)
        assert got["risk_high"] == pytest.approx(want.risk_range[1], rel=1e-6)
    # attrition: step 0 is everyone, each step removes what it rules out
    steps = body["attrition"]
    assert steps[0]["remaining"] == len(patients)
    for before, after in itertools.pairwise(steps):
        assert after["remaining"] == before["remaining"] - after["ruled_out_here"]
    ineligible = body["counts"]["ineligible"]
    assert steps[-1]["remaining"] == len(patients) - ineligible
    assert body["criteria_version"] == criteria.criteria_version
    # the body is serialised without the response model: it must still match it
    assert BatchScreening.model_validate(body).model_dump(mode="json") == body
    # the same patients sent as columns get the same answer, byte for byte
    rows = [_body(r) for r in patients]
    names = dict.fromkeys(name for row in rows for name in row)
    columns = {name: [row.get(name) for row in rows] for name in names}
    as_columns = client.post(
        "/screen_batch", json={"columns": columns, "screening_date": str(DAY)}
    )
    assert as_columns.status_code == 200, as_columns.text
    assert as_columns.content == resp.content


def test_screen_batch_refuses_bad_columns_naming_field_and_row(client) -> None:
    both = {"patients": [{"sex": "male"}], "columns": {"sex": ["male"]}}
    for body in (both, {}, {"screening_date": str(DAY)}):
        resp = client.post("/screen_batch", json=body)
        assert resp.status_code == 400, resp.text
        assert "either `patients`" in resp.text
    resp = client.post(
        "/screen_batch",
        json={"columns": {"sex": ["male", "female"], "c3_g_l": [0.8, -2.0]}},
    )
    assert resp.status_code == 400
    assert ["columns", "c3_g_l", 1] in [e["loc"] for e in resp.json()["detail"]]
    resp = client.post(
        "/screen_batch",
        json={
            "columns": {
                "sex": ["male", "female"],
                "ivig_ever": [None, False],
                "ivig_last_date": [None, "2025-01-01"],
            }
        },
    )
    assert resp.status_code == 400
    assert "row 1: ivig_last_date: given although ivig_ever is false" in resp.text
    too_many = {"columns": {"sex": ["female"] * 10_001}}
    resp = client.post("/screen_batch", json=too_many)
    assert resp.status_code == 400 and "at most 10,000" in resp.text


def test_missing_data_is_needs_review_not_an_error(client: TestClient) -> None:
    """A high-risk patient with almost nothing recorded: needs_review, and why."""
    patient = {
        "sex": "male",
        "age_years": 22,
        "anti_dsdna_iu_ml": 900,
        "c3_g_l": 0.4,
        "c4_g_l": 0.04,
        "anti_c1q_positive": True,
        "anti_nucleosome_positive": True,
        "disease_duration_years": 0.3,
    }
    resp = client.post(
        "/screen", json={"patient": patient, "screening_date": "2026-12-01"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    if body["risk_2y"] > body["gate_threshold"]:
        assert body["status"] == "needs_review"
        assert body["missing_fields"]  # says what to obtain
    else:  # below the gate the risk decides first
        assert body["status"] == "ineligible"
    assert body["status"] != "eligible"


def test_every_response_names_model_and_criteria_versions(client: TestClient) -> None:
    criteria = load_criteria()
    patient = {"sex": "female", "age_years": 40}
    calls = [
        ("/predict_risk", {"patients": [patient]}),
        ("/explain", {"patient": patient}),
        ("/screen", {"patient": patient}),
        ("/screen_batch", {"patients": [patient]}),
        ("/model_info", {}),
    ]
    for path, body in calls:
        resp = client.post(path, json=body)
        assert resp.status_code == 200, (path, resp.text)
        out = resp.json()
        out = out[0] if isinstance(out, list) else out
        assert out["criteria_version"] == criteria.criteria_version, path
        assert out["model_version"], path
    info = client.post("/model_info", json={}).json()
    assert info["criteria_trial"] == "NCT05585671"
    assert info["n_criteria"] == len(criteria.criteria)


def test_screen_defaults_the_date_to_today(client: TestClient) -> None:
    resp = client.post("/screen", json={"patient": {"sex": "female"}})
    assert resp.status_code == 200
    assert resp.json()["screening_date"] == date.today().isoformat()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/screen", {"patient": {"sex": "female", "c3_g_l": -1}}, "c3_g_l"),
        ("/screen", {"patient": {"sex": "female", "favourite": 1}}, "favourite"),
        (
            "/screen",
            {"patient": {"sex": "female"}, "screening_date": "soon"},
            "screening_date",
        ),
        ("/screen_batch", {"patients": []}, "patients"),
        ("/screen_batch", {"patients": [{"sex": "x"}]}, "sex"),
    ],
)
def test_screening_rejects_bad_input_with_the_field(client, path, body, field) -> None:
    resp = client.post(path, json=body)
    assert 400 <= resp.status_code < 500, resp.text
    assert field in resp.text


def test_noop_parses_the_same_input(client: TestClient) -> None:
    assert client.post("/noop", json={"patient": {"sex": "male"}}).json() == {
        "ok": True
    }
    assert client.post("/noop", json={"patient": {"sex": "?"}}).status_code == 400


def test_body_over_the_limit_gets_413(client: TestClient, monkeypatch) -> None:
    monkeypatch.setenv("LNRISK_MAX_BODY_MB", "0.01")  # ~10 kB
    big = {"patients": [{"sex": "female", "age_years": 30}] * 1000}
    resp = client.post("/screen_batch", json=big)
    assert resp.status_code == 413
    assert resp.json()["limit_bytes"] == int(0.01 * 1024 * 1024)
    # streamed without a declared length: counted as it arrives
    chunks = (b'{"patients": [' + b'{"sex": "female"},' * 1000 + b'{"sex": "male"}]}',)
    resp = client.post(
        "/screen_batch",
        content=iter(chunks),
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 413
    monkeypatch.delenv("LNRISK_MAX_BODY_MB")
    assert client.post("/screen_batch", json=big).status_code == 200


def test_batched_risk_endpoint_answers_like_the_plain_one(client: TestClient) -> None:
    patients = [{"sex": "female", "age_years": 30}, {"sex": "male", "c3_g_l": 0.4}]
    plain = client.post("/predict_risk", json={"patients": patients})
    batched = client.post("/predict_risk_batched", json={"patients": patients})
    assert plain.status_code == batched.status_code == 200
    assert batched.json() == plain.json()
    bad = client.post("/predict_risk_batched", json={"patients": [{"sex": "?"}]})
    assert bad.status_code == 400 and "sex" in bad.text
    # audited once per merged batch, under a batch id
    import json
    import os

    log = Path(os.environ["LNRISK_HOME"]).resolve() / "audit" / "audit.jsonl"
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    batched = [x for x in lines if x["endpoint"] == "predict_risk_batched"]
    assert batched and batched[-1]["request_id"].startswith("batch-")
    assert batched[-1]["n_patients"] == 2 and len(batched[-1]["input_sha256"]) == 64


@pytest.mark.parametrize("path", ["/screen", "/screen_batch"])
def test_a_screening_date_out_of_range_is_a_4xx_naming_it(
    client: TestClient, path: str
) -> None:
    """Year 1 is a valid ISO date, but no screening happened then: calendar windows
    counted back from it would leave the calendar (a 500 before the range)."""
    patient = {"sex": "male", "soc_regimen_stable_since": "2000-01-01"}
    body = (
        {"patient": patient, "screening_date": "0001-02-01"}
        if path == "/screen"
        else {"patients": [patient], "screening_date": "0001-02-01"}
    )
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert "screening_date" in resp.text


@pytest.mark.parametrize("path", ["/screen", "/screen_batch"])
def test_a_number_as_a_date_is_a_4xx_naming_the_field(
    client: TestClient, path: str
) -> None:
    """A number is not read as Unix time: 0 would become 1970-01-01."""
    patient = {"sex": "female", "date_of_birth": 0}
    body = (
        {"patient": patient, "screening_date": 1_700_000_000}
        if path == "/screen"
        else {"patients": [patient], "screening_date": 1_700_000_000}
    )
    resp = client.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert "date_of_birth" in resp.text and "screening_date" in resp.text
    assert "not a number" in resp.text
