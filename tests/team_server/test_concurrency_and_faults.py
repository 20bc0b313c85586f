"""Several writers at once, and the server or its database going away.

Four training processes at once give four complete runs and four versions, each
registered once; two promotions at once move ``@champion`` exactly once; a server
stopped in the middle of a training run fails that run with a message naming the
server and leaves its version without alias; a restarted server still has every
finished run. PostgreSQL itself cannot be restarted from a test (it is a shared
service), so its loss is simulated by terminating the server's database connections
(``pg_terminate_backend``): the next job must succeed.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.team_server.conftest import POSTGRES_URL
from tests.team_server.jobs import finish, new_home, run_job, start_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "ln-risk"
DS, RELEASE = "dana-scientist", "remy-release"


def _versions(server) -> list[dict]:
    found = server.api("model-versions/search", filter=f"name='{MODEL}'")
    return found.get("model_versions", [])


def _tags(entity: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}


def _aliases(server) -> dict[str, str]:
    model = server.api("registered-models/get", name=MODEL)["registered_model"]
    return {a["alias"]: a["version"] for a in model.get("aliases", [])}


def _train(server, profile, user: str = DS):
    return start_job(
        server, user, new_home(), "train", "--config", str(profile), "--no-progress"
    )


def _result(job) -> dict:
    assert job.returncode == 0, str(job)
    return json.loads(job.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def with_champion(team_server, small_profile) -> None:
    """A champion to promote over (the roles set-up created the registered model)."""
    if "champion" not in _aliases(team_server):
        _result(finish(_train(team_server, small_profile), ("train",)))


def test_four_trainings_at_once_then_two_promotions_at_once(
    team_server, small_profile, with_champion
) -> None:
    before = {v["version"] for v in _versions(team_server)}
    procs = [_train(team_server, small_profile) for _ in range(4)]
    jobs = [finish(p, ("train",)) for p in procs]
    results = [_result(job) for job in jobs]
    for job in jobs:
        assert "locked" not in job.stderr, str(job)
    new = [v for v in _versions(team_server) if v["version"] not in before]
    assert len(new) == 4
    assert sorted(v["run_id"] for v in new) == sorted(r["run_id"] for r in results)
    assert all(_tags(v)["lnrisk.state"] == "complete" for v in new)
    for result in results:
        run = team_server.api("runs/get", run_id=result["run_id"])["run"]
        assert run["info"]["status"] == "FINISHED"

    champion = _aliases(team_server)["champion"]
    challenger = _aliases(team_server)["challenger"]
    procs = [
        start_job(team_server, RELEASE, new_home(), "promote", "--config",
                  str(small_profile))
        for _ in range(2)
    ]  # fmt: skip
    jobs = [finish(p, ("promote",)) for p in procs]
    codes = sorted(j.returncode for j in jobs)
    assert codes[0] == 0 and codes[1] != 0, "\n".join(map(str, jobs))
    aliases = _aliases(team_server)
    assert aliases["champion"] == challenger
    assert aliases["previous-champion"] == champion
    promoted = team_server.search_runs(
        "tags.run_kind = 'promotion' and tags.decision = 'promoted' and "
        f"tags.challenger_version = '{challenger}'"
    )
    assert len(promoted) == 1


def test_server_stopped_mid_run_then_restarted(
    team_server, small_profile, with_champion
) -> None:
    finished = [
        r["info"]["run_id"]
        for r in team_server.search_runs()
        if r["info"]["status"] == "FINISHED"
    ]
    known = {v["version"] for v in _versions(team_server)}
    proc = _train(team_server, small_profile)
    pending = _wait_for_pending_version(team_server, known, proc)
    team_server.stop()
    try:
        job = finish(proc, ("train",), timeout=600)
    finally:
        team_server.start()
    assert job.returncode != 0, str(job)
    assert team_server.url.split("//")[1] in job.stderr, str(job)
    assert "cannot be reached" in job.stderr, str(job)
    version = team_server.api(
        "model-versions/get", name=MODEL, version=pending["version"]
    )["model_version"]
    assert _tags(version)["lnrisk.state"] in {"pending", "failed"}
    assert pending["version"] not in _aliases(team_server).values()
    for run_id in finished:
        run = team_server.api("runs/get", run_id=run_id)["run"]
        assert run["info"]["status"] == "FINISHED", run_id


def _wait_for_pending_version(server, known: set[str], proc) -> dict:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        for v in _versions(server):
            if v["version"] not in known and _tags(v).get("lnrisk.state") == "pending":
                return v
        if proc.poll() is not None:
            pytest.fail(f"training ended before its version was seen pending: "
                        f"{proc.stderr.read()[-2000:]}")  # fmt: skip
        time.sleep(0.2)
    pytest.fail("no pending version appeared")


def test_database_connections_lost_then_the_next_job_succeeds(
    team_server, small_profile, with_champion
) -> None:
    import psycopg

    databases = [
        team_server.settings.db_url.rsplit("/", 1)[1],
        team_server.settings.auth_db_url.rsplit("/", 1)[1],
    ]
    team_server.api("experiments/search", max_results=5)  # connections in the pool
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
            (databases,),
        ).fetchone()[0]
    assert killed > 0
    result = _result(run_job(
        team_server, DS, new_home(), "train", "--config", str(small_profile),
        "--no-progress",
    ))  # fmt: skip
    version = team_server.api(
        "model-versions/get", name=MODEL, version=result["model_version"]
    )["model_version"]
    assert _tags(version)["lnrisk.state"] == "complete"
