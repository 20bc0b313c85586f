"""Training end to end in a real (temporary) MLflow store."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from data_schema import frame_to_features, validate_cohort
from riskmodel import LNRiskModel
from synthetic.generator import generate_cohort
from training.data import split_by_patient
from training.evaluation.metrics import METRIC_KEYS
from training.evaluation.report import REPORT_METRIC_KEYS
from training.registry.pyfunc import to_pyfunc_frame

pytestmark = pytest.mark.slow


def test_split_is_by_patient_and_reproducible() -> None:
    df = validate_cohort(generate_cohort(n=1000, seed=3))
    dev, test = split_by_patient(df, 0.25, seed=5)
    again_dev, _ = split_by_patient(df, 0.25, seed=5)
    assert set(dev.patient_id).isdisjoint(test.patient_id)
    assert len(dev) + len(test) == len(df)
    assert list(dev.patient_id) == list(again_dev.patient_id)
    # stratified: event rates agree within 2 points
    assert abs(dev.ln_within_2y.mean() - test.ln_within_2y.mean()) < 0.02


def test_run_is_fully_tracked(trained, small_config) -> None:
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    # the same metric names every run, the oracle's among them
    assert set(REPORT_METRIC_KEYS) <= set(run.data.metrics)
    assert {f"oracle_{k}" for k in METRIC_KEYS} <= set(run.data.metrics)
    artifacts = _artifact_paths(client, trained.run_id)
    for path in (
        "evaluation/report.json",
        "plots/roc.png",
        "plots/calibration.png",
        "plots/decision_curve.png",
        "plots/risk_histogram.png",
        "plots/feature_importance.png",
        "model_card/model_card.md",
        "model_card/model_card.html",
        "search/results.json",
    ):
        assert path in artifacts, path
    assert run.data.params["model.max_depth"] == str(small_config.model.max_depth)
    assert run.data.params["seed"] == str(small_config.seed)
    for tag in ("git_commit", "config_hash", "data_digest", "model_family"):
        assert run.data.tags[tag], tag
    assert run.data.tags["config_hash"] == small_config.config_hash()
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert {"cohort", "test"} <= set(inputs)
    assert inputs["cohort"].digest == trained.data_digest
    # The held-out AUROC of a reasonable model on this DGP is well above chance.
    assert 0.7 < trained.metrics["auroc"] <= trained.metrics["oracle_auroc"] + 0.02


def test_first_model_becomes_champion_and_later_ones_do_not(
    trained, small_config, small_cohort
) -> None:
    from training.pipeline import train

    client = MlflowClient()
    champion = client.get_model_version_by_alias("ln-risk", "champion")
    assert trained.alias == "champion"
    assert str(champion.version) == trained.model_version
    second = train(
        small_config.model_copy(update={"seed": 8}), *small_cohort, show_progress=False
    )
    assert second.alias == "challenger"
    assert int(second.model_version) > int(trained.model_version)
    challenger = client.get_model_version_by_alias("ln-risk", "challenger")
    assert str(challenger.version) == second.model_version
    assert (
        str(client.get_model_version_by_alias("ln-risk", "champion").version)
        == trained.model_version
    )


def test_logged_model_loads_without_pickle_and_matches_native(trained) -> None:
    pyfunc = mlflow.pyfunc.load_model(f"models:/ln-risk/{trained.model_version}")
    local = mlflow.artifacts.download_artifacts(
        f"models:/ln-risk/{trained.model_version}"
    )
    from pathlib import Path

    files = {p.suffix for p in Path(local).rglob("*") if p.is_file()}
    assert not files & {".pkl", ".pickle", ".joblib", ".cloudpickle"}
    native = LNRiskModel.load(next(Path(local).rglob("ln_risk_model")))
    cohort = validate_cohort(generate_cohort(n=300, seed=99))
    via_mlflow = np.asarray(pyfunc.predict(to_pyfunc_frame(cohort))).reshape(-1)
    direct = native.predict_proba(frame_to_features(cohort))
    np.testing.assert_allclose(via_mlflow, direct, rtol=1e-6)


def _artifact_paths(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            out |= _artifact_paths(client, run_id, item.path)
        else:
            out.add(item.path)
    return out
