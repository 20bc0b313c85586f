"""The served model format: round trips, and clear errors for broken folders."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import xgboost as xgb

from data_schema import model_features
from data_schema.fields import field_specs
from riskmodel import Calibration, LNRiskModel, ModelFormatError
from riskmodel.imputation import Imputer
from training.imputation import fit_imputer
from training.zone import fit_review_zone

FEATURES = model_features()


def _booster(seed: int) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, len(FEATURES))).astype(np.float32)
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "seed": seed},
        xgb.DMatrix(X, label=y),
        num_boost_round=10,
    )


@functools.cache
def _imputer_and_data() -> tuple[Imputer, np.ndarray]:
    """The chained equations of a random table (fitted once: the slow part)."""
    rng = np.random.default_rng(4)
    X = np.abs(rng.normal(size=(400, len(FEATURES)))).astype(np.float64)
    specs = field_specs()
    for j, name in enumerate(FEATURES):  # flags are 0/1 (`male` is one)
        if name == "male" or specs[name].kind == "bool":
            X[:, j] = rng.integers(0, 2, 400)
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 0] = np.nan_to_num(X[:, 0])
    X.flags.writeable = False
    return fit_imputer(X, FEATURES, draws=8), X


def _model() -> LNRiskModel:
    rng = np.random.default_rng(5)
    imputer, X = _imputer_and_data()
    model = LNRiskModel(
        booster=_booster(0),
        calibration=Calibration("platt", -0.3, 0.9),
        feature_names=FEATURES,
        imputer=imputer,
        monotone={"c3_g_l": -1},
    )
    risk = model.predict_proba(np.nan_to_num(X).astype(np.float32))
    outcome = (rng.random(400) < risk).astype(int)
    model.zone = fit_review_zone(risk, outcome, exclude_margin=0.2, pass_margin=0.1)
    return model


def test_round_trip_keeps_predictions_gate_and_calibration(tmp_path) -> None:
    model = _model()
    X = np.random.default_rng(9).normal(size=(50, len(FEATURES))).astype(np.float32)
    X[::3, 5] = np.nan
    model.save(tmp_path)
    again = LNRiskModel.load(tmp_path, expected_features=FEATURES)
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X))
    before, after = model.gate(X, 0.5), again.gate(X, 0.5)
    np.testing.assert_array_equal(after.state, before.state)
    np.testing.assert_allclose(after.low, before.low)
    np.testing.assert_allclose(after.high, before.high)
    assert after.to_obtain == before.to_obtain
    assert again.imputer == model.imputer and again.zone == model.zone
    assert again.monotone == {"c3_g_l": -1}
    # plain files only: the gate's parameters are JSON numbers, nothing to unpickle
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".ubj"}
    manifest = json.loads((tmp_path / "model.json").read_text())
    assert {"imputation", "review_zone", "monotone"} <= set(manifest)


def test_isotonic_calibration_is_plain_numbers() -> None:
    cal = Calibration("isotonic", x=(-2.0, 0.0, 2.0), y=(0.1, 0.3, 0.9))
    np.testing.assert_allclose(cal.apply(np.array([-5.0, 1.0, 5.0])), [0.1, 0.6, 0.9])
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_schema_drift_is_refused_with_the_difference(tmp_path) -> None:
    _model().save(tmp_path)
    with pytest.raises(ModelFormatError, match="missing from model"):
        LNRiskModel.load(tmp_path, expected_features=(*FEATURES, "new_lab"))


def test_broken_folders_give_clear_errors(tmp_path) -> None:
    with pytest.raises(ModelFormatError, match=r"no model\.json"):
        LNRiskModel.load(tmp_path)
    _model().save(tmp_path)
    manifest = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ModelFormatError, match="not supported"):
        LNRiskModel.load(tmp_path)


def test_broken_gate_parameters_are_a_format_error(tmp_path) -> None:
    _model().save(tmp_path)
    manifest = json.loads((tmp_path / "model.json").read_text())
    manifest["review_zone"]["event_rate"] = manifest["review_zone"]["event_rate"][::-1]
    (tmp_path / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="gate parameters"):
        LNRiskModel.load(tmp_path)


def test_a_model_has_exactly_one_scorer() -> None:
    with pytest.raises(ModelFormatError):
        LNRiskModel(booster=None, calibration=Calibration(), feature_names=FEATURES)
