"""A rolling restart under load: SIGTERM drains what the old server accepted.

Two real ``bentoml serve`` processes, an HTTP load loop in front of them playing the
load balancer: requests go to the old server until its readiness probe fails (or it
refuses a connection, which was never accepted, so it is re-sent), then to the new
one. Every request must end in 200, the requests in flight at the SIGTERM included.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.servers import PROJECT, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONCURRENCY = 8
BATCH = 1500  # patients per batch request: long enough to be in flight at SIGTERM
PROBE_SECONDS = 1.0  # readiness probe period (Kubernetes: periodSeconds >= 1)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen


@contextlib.contextmanager
def bentoml_serve(env: dict[str, str]) -> Iterator[Server]:
    """A `bentoml serve` the test may signal itself; killed at the end if alive."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", "serving.service:LNRiskService",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.3)
        else:
            log.seek(0)
            pytest.fail(f"server did not start:\n{log.read().decode()[-3000:]}")
        yield Server(url, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


@dataclass
class Load:
    old_down: bool = False
    codes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    resent: int = 0
    to_new: int = 0  # answered by the new server
    drained: int = 0  # sent to the old server before SIGTERM, answered after it
    sigterm_at: float = float("inf")
    unready_after: float = float("nan")  # seconds from SIGTERM to a failed probe


async def _one(http: httpx.AsyncClient, load: Load, old: str, new: str, body) -> None:
    path, payload = body
    target = new if load.old_down else old
    started = time.monotonic()
    try:
        try:
            resp = await http.post(target + path, json=payload)
        except httpx.ConnectError:
            load.old_down = True
            load.resent += 1
            target = new
            resp = await http.post(target + path, json=payload)
    except httpx.HTTPError as exc:
        load.errors.append(f"{target}{path}: {exc!r}")
        return
    load.codes.append(resp.status_code)
    load.to_new += target == new
    if target == old and started < load.sigterm_at < time.monotonic():
        load.drained += 1


async def _run(old: Server, new: Server, bodies: list, seconds: float) -> Load:
    load = Load()
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_keepalive_connections=0)  # one connection per request

    async def client(i: int) -> None:
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            n = i
            while time.monotonic() < stop_at:
                await _one(http, load, old.url, new.url, bodies[n % len(bodies)])
                n += CONCURRENCY

    async def probe() -> None:  # the balancer's readiness check, every second
        async with httpx.AsyncClient(timeout=10) as http:
            while not load.old_down and time.monotonic() < stop_at:
                try:
                    ready = (await http.get(old.url + "/readyz")).status_code == 200
                except httpx.TimeoutException:
                    ready = True  # a slow answer is not a failed probe
                except httpx.HTTPError:
                    ready = False
                if not ready:
                    load.old_down = True
                    load.unready_after = time.monotonic() - load.sigterm_at
                await asyncio.sleep(PROBE_SECONDS)

    async def terminate() -> None:
        # between two probes: the balancer learns of it half a period late
        await asyncio.sleep(round(seconds / 3) + PROBE_SECONDS / 2)
        load.sigterm_at = time.monotonic()
        old.proc.send_signal(signal.SIGTERM)  # what an orchestrator sends

    await asyncio.gather(probe(), terminate(), *(client(i) for i in range(CONCURRENCY)))
    return load


def test_sigterm_under_load_fails_no_request(served) -> None:
    from data_schema import frame_to_records
    from synthetic.generator import generate_cohort

    records = frame_to_records(generate_cohort(n=BATCH, seed=5))
    patients = [r.model_dump(mode="json", exclude_none=True) for r in records]
    bodies = [("/screen_batch", {"patients": patients, "screening_date": "2026-12-01"})]
    bodies += [("/predict_risk", {"patients": [{"sex": "female", "age_years": 30.0}]})]
    env = {"LNRISK_MODEL": served.tag}
    with bentoml_serve(env) as old, bentoml_serve(env) as new:
        load = asyncio.run(_run(old, new, bodies, seconds=12.0))
        assert old.proc.wait(timeout=60) == 0  # the old server shut down cleanly
    assert not load.errors, load.errors[:5]
    assert load.codes and set(load.codes) == {200}, {
        c: load.codes.count(c) for c in set(load.codes)
    }
    assert load.drained >= 1  # requests were in flight at SIGTERM, and answered
    # the balancer saw the old server go unready after the SIGTERM, not before
    assert 0 <= load.unready_after < PROBE_SECONDS + 1, load.unready_after
    assert load.to_new > 0  # the load moved to the new server
