"""End to end: a real `bentoml serve` process on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from data_schema import frame_to_records, model_features, records_to_features
from riskmodel import LNRiskModel
from tests.servers import PROJECT, free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def serve(env: dict[str, str] | None = None):  # -> context manager of the URL
    """`bentoml serve` of the service on a free loopback port, until /readyz is 200."""
    port = free_port()
    return running(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:LNRiskService",
         "--host", "127.0.0.1", "--port", str(port)],
        port=port, ready_path="/readyz", env=env,
    )  # fmt: skip


@pytest.fixture(scope="module")
def server(imported) -> Iterator[str]:
    """A real server of the champion the import step copied from MLflow."""
    with serve({"LNRISK_MODEL": str(imported.tag)}) as url:
        yield url


def test_served_probability_equals_in_process_model(server: str, imported) -> None:
    import bentoml

    from synthetic.generator import generate_cohort

    records = frame_to_records(generate_cohort(n=50, seed=123))
    payload = {
        "patients": [r.model_dump(mode="json", exclude_none=True) for r in records]
    }
    resp = httpx.post(f"{server}/predict_risk", json=payload, timeout=30)
    assert resp.status_code == 200, resp.text
    served = np.array([p["risk_2y"] for p in resp.json()])
    model = LNRiskModel.load(
        bentoml.models.get(imported.tag).path, expected_features=model_features()
    )
    np.testing.assert_allclose(
        served, model.predict_proba(records_to_features(records)), rtol=1e-6
    )
    assert {p["model_version"] for p in resp.json()} == {imported.mlflow_version}


def test_malformed_request_gets_4xx_naming_the_field(server: str) -> None:
    resp = httpx.post(
        f"{server}/predict_risk",
        json={"patients": [{"sex": "female", "c4_g_l": "very low"}]},
        timeout=10,
    )
    assert 400 <= resp.status_code < 500
    assert "c4_g_l" in resp.text


def test_model_info_carries_the_mlflow_provenance(server: str, imported) -> None:
    body = httpx.post(f"{server}/model_info", json={}, timeout=30).json()
    assert body["model_version"] == imported.mlflow_version
    assert body["mlflow_run_id"] == imported.run_id
    assert body["data_digest"] == imported.data_digest
    assert body["alias"] == "champion"


def test_health_and_metrics_endpoints(server: str) -> None:
    assert httpx.get(f"{server}/livez").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert "bentoml_service_request_total" in httpx.get(f"{server}/metrics").text


def test_screen_over_http_equals_the_library(server: str, imported) -> None:
    """The served `screen` decision is the library's, patient by patient."""
    from datetime import date

    import bentoml

    from eligibility import load_criteria, screen
    from synthetic.generator import generate_cohort

    model = LNRiskModel.load(
        bentoml.models.get(imported.tag).path, expected_features=model_features()
    )
    criteria = load_criteria()
    day = date(2026, 12, 1)
    records = frame_to_records(generate_cohort(n=60, seed=321, incidence=0.35))
    with httpx.Client(base_url=server, timeout=30) as http:
        for record in records:
            resp = http.post(
                "/screen",
                json={
                    "patient": record.model_dump(mode="json", exclude_none=True),
                    "screening_date": day.isoformat(),
                },
            )
            assert resp.status_code == 200, resp.text
            x = records_to_features([record], as_of=day)
            states = model.gate(x, criteria.risk_gate.threshold)
            want = screen(
                record,
                risk=float(states.risk[0]),
                gate=str(states.state[0]),
                screening_date=day,
                criteria=criteria,
            )
            assert resp.json()["status"] == want.status
            assert resp.json()["criteria_version"] == criteria.criteria_version


def test_load_2000_requests_at_concurrency_32_without_errors(server: str) -> None:
    """A bounded load test: every request answered 200 (no 503 shedding, no 5xx).

    Known and not yet explained: in about one run in six, one keep-alive connection
    is closed by the server before a response, with nothing in the server log (seen
    with async and sync endpoints alike). A client retries such a request once on a
    new connection; the test allows that for at most 5 of 2,000 requests and fails
    on any non-200 answer.
    """
    import asyncio

    from synthetic.generator import generate_cohort

    bodies = [
        {"patient": r.model_dump(mode="json", exclude_none=True)}
        for r in frame_to_records(generate_cohort(n=200, seed=77))
    ]
    resets: list[str] = []

    async def run() -> list[int]:
        limit = asyncio.Semaphore(32)
        async with httpx.AsyncClient(
            base_url=server,
            timeout=60,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
        ) as http:

            async def one(i: int) -> int:
                async with limit:
                    path = "/screen" if i % 4 else "/predict_risk"
                    body = bodies[i % len(bodies)]
                    if path == "/predict_risk":
                        body = {"patients": [body["patient"]]}
                    try:
                        return (await http.post(path, json=body)).status_code
                    except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                        resets.append(f"{path}: {exc!r}")
                        async with httpx.AsyncClient(base_url=server) as fresh:
                            return (await fresh.post(path, json=body)).status_code

            return await asyncio.gather(*(one(i) for i in range(2000)))

    codes = asyncio.run(run())
    assert len(codes) == 2000
    assert set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    assert len(resets) <= 5, resets


def _fuzz(server: str, schema, mode, failures: list[str]) -> list[int]:
    seen: list[int] = []

    from hypothesis import HealthCheck, given, settings

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=mode))
    def check(case) -> None:
        response = case.call(base_url=server, timeout=30)
        seen.append(response.status_code)
        if response.status_code >= 500:
            failures.append(
                f"{mode.value} {case.method} {case.path} -> "
                f"{response.status_code}: {response.text[:300]} — body: "
                f"{json.dumps(case.body, default=str)[:2000]}"
            )

    check()
    return seen


def test_openapi_fuzzing_never_gets_a_5xx(server: str) -> None:
    """schemathesis over /docs.json: valid and invalid inputs, never a server error."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    failures: list[str] = []
    valid = _fuzz(server, schema, GenerationMode.POSITIVE, failures)
    invalid = _fuzz(server, schema, GenerationMode.NEGATIVE, failures)
    assert not failures, "\n".join(failures[:10])
    # the fuzzer really reached the endpoints: valid input answered, invalid refused
    assert len(valid) >= 100 and len(invalid) >= 100
    assert valid.count(200) >= 50
    assert sum(400 <= c < 500 for c in invalid) >= 50


#: Bodies a client may send whatever the spec declares: only the first two are read.
MEDIA_TYPES = [
    "application/json",
    "application/fhir+json",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "application/vnd.bentoml+pickle",
    None,
]


def _send_as(http, case, media: str | None):  # -> httpx.Response
    """The case's body re-sent as ``media`` (multipart and forms field by field)."""
    import json

    from schemathesis.core import NotSet

    sent = {} if isinstance(case.body, NotSet) else case.body
    body = sent if isinstance(sent, dict) else {"body": sent}
    path = case.formatted_path
    if media == "multipart/form-data":
        files = {k: (None, json.dumps(v)) for k, v in body.items()}
        return http.post(path, files=files or {"empty": (None, "")})
    if media == "application/x-www-form-urlencoded":
        form = {k: json.dumps(v) for k, v in body.items()}
        return http.post(path, data=form or {"empty": ""})
    headers = {"content-type": media} if media else {}
    return http.post(path, content=json.dumps(sent).encode(), headers=headers)


def test_openapi_fuzzing_in_every_media_type_never_gets_a_5xx(server: str) -> None:
    """Each operation's generated bodies sent in every media type, declared or not:
    JSON and FHIR JSON are read, the rest refused with 415, nothing fails."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    failures: list[str] = []
    seen: dict[str | None, list[int]] = {m: [] for m in MEDIA_TYPES}
    with httpx.Client(base_url=server, timeout=30) as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            if operation.method.upper() != "POST":
                continue

            @settings(
                max_examples=6,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
            def check(case) -> None:
                for media in MEDIA_TYPES:
                    code = _send_as(http, case, media).status_code
                    seen[media].append(code)
                    if code >= 500:
                        failures.append(f"{media} {case.path} -> {code}")

            check()
    assert not failures, "\n".join(failures[:10])
    for media, codes in seen.items():
        assert len(codes) >= 30, media
        if media in ("application/json", "application/fhir+json"):
            assert codes.count(200) >= 10, (media, codes)
        else:
            assert set(codes) == {415}, (media, set(codes))


def test_a_restart_keeps_the_audit_log_whole(imported, tmp_path) -> None:
    """Two server lifetimes append to one log; every line is intact JSON."""
    import json

    log = tmp_path / "audit.jsonl"
    env = {
        "LNRISK_AUDIT_LOG": str(log),
        "LNRISK_AUDIT_SALT": "test-salt",
        "LNRISK_MODEL": str(imported.tag),
    }
    patient = {
        "patient": {"patient_id": "MRN-000123", "sex": "female", "age_years": 33}
    }
    for _ in range(2):
        with serve(env) as url:
            for _ in range(5):
                assert httpx.post(f"{url}/screen", json=patient, timeout=30).is_success
    lines = log.read_text().splitlines()
    assert len(lines) == 10
    entries = [json.loads(line) for line in lines]
    assert {e["endpoint"] for e in entries} == {"screen"}
    assert len({e["input_sha256"] for e in entries}) == 1  # same salt, same input
    assert all(e["criteria_version"].startswith("NCT05585671@") for e in entries)
    assert "MRN-000123" not in log.read_text()


def test_startup_names_what_is_missing(tmp_path) -> None:
    """No criteria file, or no model in the store: the error says which and how."""
    probe = "from serving.service import LNRiskService; LNRiskService()"
    base = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "empty-store"),
        "LNRISK_MODEL": "",  # the default, ln-risk:latest
    }
    no_model = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT, env=base,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert no_model.returncode != 0
    assert "no model 'ln-risk:latest' in the BentoML store" in no_model.stderr
    assert "lnrisk import-model" in no_model.stderr
    no_criteria = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT,
        env={**base, "LNRISK_CRITERIA": str(tmp_path / "missing.yaml")},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert no_criteria.returncode != 0
    assert "cannot load the eligibility criteria" in no_criteria.stderr
    assert "missing.yaml" in no_criteria.stderr


def test_the_python_client_example_runs(server: str) -> None:
    """README's bentoml.SyncHTTPClient example against the real server."""
    out = subprocess.run(
        [sys.executable, "examples/screen_client.py", server],
        cwd=PROJECT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    first = out.stdout.splitlines()[0].split()
    assert first[0] in {"eligible", "ineligible", "needs_review"}
    assert first[2].startswith("NCT05585671@")
    assert "INC-01-age: met" in out.stdout
    assert "('R-1', 'ineligible')" in out.stdout  # the registry sent as columns
    assert "InvalidArgument" in out.stdout and "c3_g_l" in out.stdout


def test_bento_builds_exports_and_imports_with_the_model(imported, tmp_path) -> None:
    """`bentoml build` packs the model; `bentoml export` makes one movable file that
    another BentoML store can import."""
    import tarfile

    def bentoml_cli(*args: str, home: Path | None = None) -> str:
        env = {**os.environ, **({"BENTOML_HOME": str(home)} if home else {})}
        env.pop("LNRISK_MODEL", None)  # build what a site gets: ln-risk:latest
        done = subprocess.run(
            [sys.executable, "-m", "bentoml", *args], cwd=PROJECT, env=env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    bentoml_cli("build", ".")
    archive = tmp_path / "ln-risk-service.bento"
    bentoml_cli("export", "ln-risk-service:latest", str(archive))
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith("booster.ubj") and "models/ln-risk/" in n for n in names)
    assert any(n.endswith("src/eligibility/nct05585671.yaml") for n in names)
    assert not any(n.endswith(".pkl") or "mlflow_pyfunc" in n for n in names)
    site = tmp_path / "site-store"
    bentoml_cli("import", str(archive), home=site)
    assert "ln-risk-service" in bentoml_cli("list", home=site)
