"""The promotion gate: champion moves only for a challenger that passes."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from riskmodel import Calibration
from synthetic import cohort_from_source
from training.config import load_config
from training.registry import tracking
from training.registry.promote import decide, promote
from training.registry.pyfunc import log_pyfunc_model

CONFIG = load_config()

GOOD = {
    "auroc": 0.82,
    "auroc_ci_low": 0.80,
    "cal_slope": 1.02,
    "mean_predicted": 0.101,
    "prevalence": 0.100,
    "ici": 0.006,
}


def test_a_challenger_meeting_every_criterion_passes() -> None:
    passed, checks = decide(GOOD, {**GOOD, "auroc": 0.83}, CONFIG)
    assert passed
    assert {c.name for c in checks} == {
        "auroc_vs_champion",
        "cal_slope",
        "abs_mean_predicted_minus_observed",
        "ici",
        "auroc_ci_low",
    }


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"auroc": 0.79}, "auroc_vs_champion"),  # below champion's CI low of 0.80
        ({"cal_slope": 0.75}, "cal_slope"),
        ({"cal_slope": 1.25}, "cal_slope"),
        ({"mean_predicted": 0.125}, "abs_mean_predicted_minus_observed"),
        ({"ici": 0.03}, "ici"),
        ({"ici": float("nan")}, "ici"),  # cannot be computed: fails
        ({"auroc_ci_low": 0.69}, "auroc_ci_low"),  # not above RIFLE-LN's 0.70
    ],
)
def test_each_criterion_can_refuse(change: dict, failing: str) -> None:
    champion = {**GOOD, "auroc_ci_low": 0.80}
    passed, checks = decide({**GOOD, **change}, champion, CONFIG)
    assert not passed
    assert [c.name for c in checks if not c.passed] == [failing]


@pytest.mark.slow
def test_gate_refuses_a_miscalibrated_challenger_and_keeps_champion(
    trained, small_config
) -> None:
    client = MlflowClient()
    champion_before = client.get_model_version_by_alias("ln-risk", "champion").version
    model, _ = tracking.load_registered("ln-risk", "champion")
    # Same ranking, predictions pushed towards the extremes: slope ≈ 1/2.5.
    old = model.calibration
    bad = dataclasses.replace(
        model,
        calibration=Calibration("platt", old.intercept * 2.5, old.slope * 2.5),
    )
    # The registration gate would refuse this model: register it past the gate, as
    # a version registered before the gate existed would be.
    with mlflow.start_run(
        experiment_id=tracking.ensure_experiment(small_config.tracking.experiment),
        run_name="test-miscalibrated-challenger",
    ), tempfile.TemporaryDirectory() as tmp:  # fmt: skip
        mlflow.set_tags(client.get_run(trained.run_id).data.tags)
        mlflow.log_params(client.get_run(trained.run_id).data.params)
        _, version = log_pyfunc_model(bad.save(Path(tmp) / "ln_risk_model"), "ln-risk")
    tracking.set_alias("ln-risk", "challenger", version)

    decision = promote(small_config, readers={"synthetic": cohort_from_source})

    assert not decision.promote
    assert "cal_slope" in " ".join(decision.reasons)
    assert client.get_model_version_by_alias("ln-risk", "champion").version == (
        champion_before
    )
    logged_run = client.get_run(decision.run_id)
    assert logged_run.data.tags["decision"] == "refused"
    assert logged_run.data.metrics["challenger_cal_slope"] < 0.9
