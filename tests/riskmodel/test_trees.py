"""The numpy tree walk gives the booster's margins bit for bit, or is not used."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
import xgboost as xgb

from data_schema import frame_to_features, model_features
from riskmodel import Calibration, LNRiskModel
from riskmodel.trees import MAX_ROWS, TreeArrays, compile_booster, probe_rows

FEATURES = model_features()


def _train(seed: int, X: np.ndarray, y: np.ndarray, **params) -> xgb.Booster:
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "seed": seed, **params},
        xgb.DMatrix(X, label=y),
        num_boost_round=60,
    )


@pytest.fixture(scope="module")
def cohort_features() -> tuple[np.ndarray, np.ndarray]:
    from synthetic.generator import generate_cohort

    cohort = generate_cohort(n=20_000, seed=41)
    X = frame_to_features(cohort, as_of=date(2026, 12, 1))
    return X, cohort["ln_within_2y"].to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize(
    "params", [{}, {"max_depth": 6, "eta": 0.3}, {"base_score": 0.0953333}]
)
def test_margins_equal_the_boosters_bit_for_bit(cohort_features, params) -> None:
    """20,000 synthetic patients (about half the values missing), deep and shallow
    trees, a base score whose log-odds round differently in float32 and float64."""
    X, y = cohort_features
    booster = _train(3, X[:10_000], y[:10_000], **params)
    trees = compile_booster(booster)
    assert trees is not None
    expected = booster.inplace_predict(X, predict_type="margin")
    np.testing.assert_array_equal(trees.margin(X), expected)
    # one patient at a time too: the service's case
    for row in X[:50]:
        got = trees.margin(row[None, :])
        np.testing.assert_array_equal(
            got, booster.inplace_predict(row[None, :], predict_type="margin")
        )


def test_probe_rows_reach_both_sides_of_every_threshold(cohort_features) -> None:
    X, y = cohort_features
    trees = TreeArrays.from_booster(_train(5, X[:5000], y[:5000]))
    probe = probe_rows(trees, X.shape[1])
    inner = np.flatnonzero(trees.left != np.arange(len(trees.left)))
    for node in inner[:200]:
        column = probe[:, trees.feature[node]]
        threshold = trees.value[node]
        assert (column == threshold).any() and (column < threshold).any()
        assert np.isnan(column).any()


def test_unsupported_boosters_keep_scoring_with_xgboost() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = X[:, 0] + rng.normal(size=200)
    regression = xgb.train(
        {"objective": "reg:squarederror"}, xgb.DMatrix(X, label=y), 5
    )
    assert compile_booster(regression) is None
    dart = xgb.train(
        {"objective": "binary:logistic", "booster": "dart"},
        xgb.DMatrix(X, label=(y > 0).astype(int)),
        5,
    )
    assert compile_booster(dart) is None


@pytest.mark.slow
def test_a_compiled_model_scores_like_the_booster(cohort_features) -> None:
    """Compiled for a few rows, booster for many; the same numbers."""
    X, y = cohort_features
    model = LNRiskModel(
        booster=_train(1, X[:8000], y[:8000]),
        calibration=Calibration("platt", -0.2, 1.1),
        feature_names=FEATURES,
    )
    few = X[-MAX_ROWS:]
    before = model.predict_proba(few)
    assert model.compile_trees()
    assert model.trees is not None
    np.testing.assert_array_equal(model.predict_proba(few), before)
    many = X[:500]  # above MAX_ROWS the booster scores
    np.testing.assert_array_equal(
        model.predict_proba(many),
        model.calibration.apply(
            model.booster.inplace_predict(many, predict_type="margin").astype(
                np.float64
            )
        ),
    )
