"""External validation and local recalibration on a shifted population."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from data_schema import frame_to_features, validate_cohort
from synthetic.generator import generate_cohort
from training.data import config_population, split_by_patient
from training.evaluation.metrics import (
    calibration_in_the_large,
    calibration_slope,
    ici_e50_e90,
)
from training.registry import tracking
from training.registry.validation import (
    evaluate_registered,
    recalibrate_model,
    recalibrate_registered,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    path = tmp_path_factory.mktemp("external") / "external.parquet"
    generate_cohort(n=8000, seed=77, shift="external").to_parquet(path)
    return path


def test_recalibration_methods_fix_what_they_promise(trained) -> None:
    model, _ = tracking.load_registered("ln-risk", "champion")
    cohort = generate_cohort(n=20_000, seed=78, shift="external")
    X, y = frame_to_features(cohort), cohort["ln_within_2y"].to_numpy(int)
    before = model.predict_proba(X)
    for method in ("intercept", "logistic", "isotonic"):
        p = recalibrate_model(model, X, y, method).predict_proba(X)
        # on the sample it was fitted on, calibration-in-the-large is ~0
        assert abs(calibration_in_the_large(y, p)) < 0.05, method
        # ranking is unchanged (isotonic may tie, never reverse)
        order = np.argsort(before)
        assert (np.diff(p[order]) >= -1e-12).all(), method
    _, slope = calibration_slope(y, recalibrate_model(model, X, y, "logistic")
                                 .predict_proba(X))  # fmt: skip
    assert abs(slope - 1) < 0.05


def test_evaluate_logs_an_external_validation_run(trained, small_config, shifted):
    result = evaluate_registered(small_config, "champion", shifted)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["run_kind"] == "external_validation"
    assert run.data.tags["model_version"] == result.model_version
    assert {"auroc", "ici", "cal_slope", "share_above_gate"} <= set(run.data.metrics)


def test_recalibration_on_a_shifted_cohort_improves_ici(
    trained, small_config, shifted
) -> None:
    result = recalibrate_registered(small_config, "champion", shifted, "logistic")
    assert result.before is not None
    assert result.metrics["ici"] < result.before["ici"]
    assert result.new_version is not None
    # a new version, never a silent change of the champion
    champion = MlflowClient().get_model_version_by_alias("ln-risk", "champion")
    assert str(champion.version) != result.new_version
    # the recalibrated model's own ICI on fresh shifted data is small
    model, _ = tracking.load_registered("ln-risk", result.new_version)
    fresh = generate_cohort(n=20_000, seed=79, shift="external")
    ici, _, _ = ici_e50_e90(
        fresh["ln_within_2y"].to_numpy(int),
        model.predict_proba(frame_to_features(fresh)),
    )
    assert ici < 0.03


def test_a_recalibrated_challenger_can_face_the_gate(
    trained, small_config, shifted
) -> None:
    from training.registry.promote import promote

    result = recalibrate_registered(small_config, "champion", shifted, "intercept")
    assert result.alias == "challenger"
    decision = promote(small_config, dry_run=True)  # rebuilds the held-back half
    assert decision.challenger_version == result.new_version
    # the held-back half of the file's development population (kidney-free)
    cohort = pd.read_parquet(shifted)
    kept, _ = config_population(small_config).apply(
        validate_cohort(cohort), small_config.trial_criteria
    )
    _, held_back = split_by_patient(kept, 0.5, small_config.seed)
    assert len(kept) < len(cohort)
    assert decision.n_patients == len(held_back)
    champion = MlflowClient().get_model_version_by_alias("ln-risk", "champion")
    assert str(champion.version) == decision.champion_version  # dry run moved nothing
