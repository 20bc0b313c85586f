"""The served model format: round trips, and clear errors for broken folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xgboost as xgb

from data_schema import model_features
from riskmodel import Calibration, LNRiskModel, ModelFormatError, RiskBand

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


def _model() -> LNRiskModel:
    return LNRiskModel(
        booster=_booster(0),
        calibration=Calibration("platt", -0.3, 0.9),
        feature_names=FEATURES,
        band=RiskBand(
            (_booster(1), _booster(2), _booster(3)),
            (Calibration("platt", 0, 1),) * 3,
            level=0.8,
            inflation=1.5,
        ),
    )


def test_round_trip_keeps_predictions_band_and_calibration(tmp_path) -> None:
    model = _model()
    X = np.random.default_rng(9).normal(size=(50, len(FEATURES))).astype(np.float32)
    X[::3, 5] = np.nan
    model.save(tmp_path)
    again = LNRiskModel.load(tmp_path, expected_features=FEATURES)
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X))
    low, high = again.predict_band(X)
    np.testing.assert_allclose(low, model.predict_band(X)[0])
    assert (low <= high).all()
    assert again.band.inflation == 1.5 and again.band.level == 0.8
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".ubj"}


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


def test_a_model_has_exactly_one_scorer() -> None:
    with pytest.raises(ModelFormatError):
        LNRiskModel(booster=None, calibration=Calibration(), feature_names=FEATURES)
