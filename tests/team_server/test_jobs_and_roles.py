"""Every job against the team server over HTTP, as the role that may run it.

A data scientist trains (the first version becomes the champion), evaluates and
recalibrates; a reviewer is refused with a message naming the permission; a data
scientist cannot move ``@champion`` and a release manager can, the promotion run
recording who did it; ``import-model`` pulls the champion into a BentoML store in
another folder. Artifacts reach the server's folder through its proxy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.team_server.jobs import new_home, run_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "ln-risk"
DS, REVIEWER, RELEASE = "dana-scientist", "rita-reviewer", "remy-release"


def _version(server, version: str) -> dict:
    return server.api("model-versions/get", name=MODEL, version=version)[
        "model_version"
    ]


def _alias(server, alias: str) -> str | None:
    model = server.api("registered-models/get", name=MODEL)["registered_model"]
    found = [a["version"] for a in model.get("aliases", []) if a["alias"] == alias]
    return found[0] if found else None


def _tags(entity: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in entity.get("tags", [])}


def _result(job) -> dict:
    assert job.returncode == 0, str(job)
    return json.loads(job.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(team_server, small_profile) -> dict:
    """A data scientist's training run (the champion, if it was the first)."""
    job = run_job(
        team_server, DS, new_home(), "train", "--config", str(small_profile),
        "--no-progress",
    )  # fmt: skip
    return _result(job)


@pytest.fixture(scope="module")
def cohort_file(team_server, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cohort") / "site.parquet"
    job = run_job(
        team_server, DS, new_home(), "cohort", "--out", str(out), "--n", "3000",
        "--seed", "5",
    )  # fmt: skip
    assert job.returncode == 0, str(job)
    return out


def test_training_registers_a_complete_version_with_proxied_artifacts(
    team_server, trained
) -> None:
    version = _version(team_server, trained["model_version"])
    assert _tags(version)["lnrisk.state"] == "complete"
    assert version["run_id"] == trained["run_id"]
    aliases = (_alias(team_server, "champion"), _alias(team_server, "challenger"))
    assert trained["model_version"] in aliases
    run = team_server.api("runs/get", run_id=trained["run_id"])["run"]
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:")
    stored = {p.name for p in Path(team_server.settings.artifacts).rglob("*")}
    for name in ("model_card.md", "model.json", "MLmodel"):
        assert name in stored, name


def test_a_reviewer_cannot_log_runs(team_server, small_profile) -> None:
    job = run_job(
        team_server, REVIEWER, new_home(), "train", "--config", str(small_profile),
        "--no-progress",
    )  # fmt: skip
    assert job.returncode == 3, str(job)
    assert "permission denied" in job.stderr, str(job)
    assert "EDIT on the experiment" in job.stderr
    assert "Traceback" not in job.stderr


def test_jobs_over_http_and_the_roles_of_promotion(
    team_server, trained, small_profile, cohort_file, tmp_path
) -> None:
    profile = ("--config", str(small_profile))
    before = _alias(team_server, "champion")
    ev = run_job(
        team_server, DS, new_home(), "evaluate", "--cohort", str(cohort_file), *profile
    )
    assert ev.returncode == 0, str(ev)
    challenger = _result(
        run_job(team_server, DS, new_home(), "train", *profile, "--no-progress")
    )
    assert _alias(team_server, "challenger") == challenger["model_version"]
    compared = run_job(
        team_server, REVIEWER, new_home(), "compare", "--champion", "--challenger",
        *profile, "--ui-url", team_server.url,
    )  # fmt: skip
    assert compared.returncode == 0, str(compared)
    assert challenger["run_id"][:8] in compared.stdout + compared.stderr

    refused = run_job(team_server, DS, new_home(), "promote", *profile)
    assert refused.returncode == 3, str(refused)
    assert "MANAGE on the registered model" in refused.stderr
    assert _alias(team_server, "champion") == before

    promoted = run_job(team_server, RELEASE, new_home(), "promote", *profile)
    assert promoted.returncode == 0, str(promoted)
    assert "PROMOTED" in promoted.stderr
    assert _alias(team_server, "champion") == challenger["model_version"]
    assert _alias(team_server, "previous-champion") == before
    runs = team_server.search_runs(
        "tags.run_kind = 'promotion' and tags.decision = 'promoted'"
    )
    mine = [
        r
        for r in runs
        if _tags(r["data"])["challenger_version"] == challenger["model_version"]
    ]
    assert [_tags(r["data"])["promoted_by"] for r in mine] == [RELEASE]


def test_recalibrate_and_import_into_another_machines_store(
    team_server, trained, small_profile, cohort_file
) -> None:
    profile = ("--config", str(small_profile))
    recal = run_job(
        team_server, DS, new_home(), "recalibrate", "--cohort", str(cohort_file),
        "--method", "intercept", *profile,
    )  # fmt: skip
    assert recal.returncode == 0, str(recal)
    other_machine = new_home()
    imported = run_job(team_server, REVIEWER, other_machine, "import-model")
    assert imported.returncode == 0, str(imported)
    champion_now = _alias(team_server, "champion")
    assert f"version {champion_now}" in imported.stderr, str(imported)
    assert list((other_machine / "bentoml" / "models").rglob("model.json"))
