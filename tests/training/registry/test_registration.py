"""The registration gate: no version is registered (the first one included) unless its
held-out calibration and discrimination pass the config's absolute criteria."""

from __future__ import annotations

import json

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from training.cli import app
from training.config import load_config
from training.pipeline import train
from training.registry.gate import (
    RegistrationRefusedError,
    absolute_checks,
    registration_checks,
)

GOOD = {
    "auroc_ci_low": 0.80,
    "cal_slope": 1.02,
    "mean_predicted": 0.101,
    "prevalence": 0.100,
    "ici": 0.006,
}


def test_absolute_checks_pass_a_calibrated_model_above_the_baseline() -> None:
    checks = absolute_checks(GOOD, load_config().registration)
    assert all(c.passed for c in checks), checks


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"auroc_ci_low": 0.70}, "auroc_ci_low"),  # must be above RIFLE-LN's 0.70
        ({"cal_slope": 1.25}, "cal_slope"),
        ({"mean_predicted": 0.13}, "abs_mean_predicted_minus_observed"),
        ({"ici": float("nan")}, "ici"),
    ],
)
def test_absolute_checks_name_what_fails(change: dict, failing: str) -> None:
    checks = absolute_checks({**GOOD, **change}, load_config().registration)
    assert [c.name for c in checks if not c.passed] == [failing]


def test_registration_refuses_a_zone_it_cannot_measure() -> None:
    """Too few held-out events among auto-passed or reviewed patients (or no zone,
    NaN) is refused at registration; promotion's absolute checks do not ask."""
    criteria = load_config().registration
    enough = {"gate_passed_events": 40, "gate_reviewed_events": 25}
    assert all(c.passed for c in registration_checks({**GOOD, **enough}, criteria))
    few = {**GOOD, **enough, "gate_reviewed_events": criteria.min_gate_events - 1}
    assert [c.name for c in registration_checks(few, criteria) if not c.passed] == [
        "gate_reviewed_events"
    ]
    failing = [c.name for c in registration_checks(GOOD, criteria) if not c.passed]
    assert failing == ["gate_passed_events", "gate_reviewed_events"]
    assert "gate_passed_events" not in {c.name for c in absolute_checks(GOOD, criteria)}


def _refusing(small_config, name: str):
    """The small profile under its own registered model, with an unmeetable slope."""
    return small_config.model_copy(
        update={
            "registration": small_config.registration.model_copy(
                update={"cal_slope_min": 5.0, "cal_slope_max": 6.0}
            ),
            "tracking": small_config.tracking.model_copy(
                update={"registered_model": name}
            ),
        }
    )


@pytest.mark.slow
def test_a_refused_first_version_registers_nothing_and_says_why(
    small_config, small_cohort
) -> None:
    config = _refusing(small_config, "ln-risk-refused")
    with pytest.raises(RegistrationRefusedError, match="cal_slope") as refused:
        train(config, *small_cohort, show_progress=False)
    client = MlflowClient()
    assert not client.search_model_versions("name = 'ln-risk-refused'")
    run = client.get_run(refused.value.run_id)
    assert run.info.status == "FINISHED"  # the run is complete, with its evidence
    assert run.data.tags["registration"] == "refused"
    decision = json.loads(
        mlflow.artifacts.load_text(
            f"runs:/{run.info.run_id}/registration/decision.json"
        )
    )
    assert decision["passed"] is False
    failed = [c["name"] for c in decision["checks"] if not c["passed"]]
    assert failed == ["cal_slope"]
    card = mlflow.artifacts.load_text(
        f"runs:/{run.info.run_id}/model_card/model_card.md"
    )
    assert "not registered" in card


@pytest.mark.slow
def test_cli_train_exits_1_listing_the_failed_checks(
    small_config, small_cohort, tmp_path
) -> None:
    config = _refusing(small_config, "ln-risk-refused-cli")
    profile = tmp_path / "refusing.yaml"
    profile.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    cohort = tmp_path / "cohort.parquet"
    small_cohort[0].to_parquet(cohort)
    result = CliRunner().invoke(
        app,
        ["train", "--config", str(profile), "--cohort", str(cohort), "--no-progress"],
    )
    assert result.exit_code == 1, result.output
    assert "not registered" in result.output
    assert "[FAIL] cal_slope" in result.output
