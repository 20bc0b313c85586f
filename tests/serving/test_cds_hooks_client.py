"""An independent CDS Hooks client: HealthChain 0.16's models against a real server.

HealthChain pins httpx, FastAPI and fhir.resources below what BentoML needs, so it
lives in its own virtual environment (kept in ``.lnrisk/venvs/``, made on first use
with pip from PyPI); the client script runs there, over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from tests.servers import PROJECT, free_port, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEALTHCHAIN = "healthchain==0.16.*"
VENV = PROJECT / ".lnrisk" / "venvs" / "healthchain-0.16"
CLIENT = Path(__file__).parent / "clients" / "healthchain_cds.py"


def healthchain_python() -> Path:
    """The venv's interpreter, made (and HealthChain installed) if missing."""
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import healthchain.models"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", HEALTHCHAIN],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return python


def test_healthchain_models_accept_discovery_requests_and_cards(
    served, tmp_path
) -> None:
    from serving.cds_hooks import prefetch_for
    from synthetic.fhir import patient_bundles
    from synthetic.generator import generate_cohort

    python = healthchain_python()
    charts = []
    for bundle in patient_bundles(
        generate_cohort(n=6, seed=5, incidence=0.6), date.today(), seed=5
    ):
        resources = [e["resource"] for e in bundle["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        charts.append({"patientId": patient["id"], "prefetch": prefetch_for(resources)})
    charts_file = tmp_path / "charts.json"
    charts_file.write_text(json.dumps(charts))
    port = free_port()
    with running(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:LNRiskService",
         "--host", "127.0.0.1", "--port", str(port)],
        port=port, ready_path="/readyz", env={"LNRISK_MODEL": served.tag},
    ) as url:  # fmt: skip
        out = subprocess.run(
            [str(python), str(CLIENT), url, str(charts_file)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["services"] == 1 and seen["cards"] == len(charts)
    assert "observations" in seen["prefetch_keys"]
    assert set(seen["indicators"]) <= {"info", "warning", "critical"}
    assert all(s.startswith("LN 2-year risk ") for s in seen["summaries"])
    assert "prefetch lacks: observations" in seen["missing_summary"]
    assert seen["feedback_status"] == 200
