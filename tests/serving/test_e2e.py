"""End to end: a real `bentoml serve` process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from data_schema import frame_to_records, model_features, records_to_features
from riskmodel import LNRiskModel

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROJECT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(imported) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:LNRiskService",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"bentoml serve exited early:\n{out[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("bentoml serve did not become ready within 90 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_served_probability_equals_in_process_model(server: str, imported) -> None:
    import bentoml

    from training.synthetic import generate_cohort

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


def test_health_and_metrics_endpoints(server: str) -> None:
    assert httpx.get(f"{server}/livez").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 200
    assert "bentoml_service_request_total" in httpx.get(f"{server}/metrics").text
