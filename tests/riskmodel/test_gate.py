"""The three-valued gate: missing predictors never make a confident exclusion."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from data_schema import frame_to_features, model_features
from riskmodel import LNRiskModel
from synthetic import generate_cohort
from tests.conftest import FIXTURES

FEATURES = model_features()
KEY_LABS = {
    "anti_dsdna_iu_ml",
    "c3_g_l",
    "c4_g_l",
    "urine_protein_g_24h",
    "anti_c1q_positive",
}


@pytest.fixture(scope="module")
def model() -> LNRiskModel:
    found = LNRiskModel.load(FIXTURES / "model", expected_features=FEATURES)
    found.set_threads(1)
    return found


@pytest.fixture(scope="module")
def patients() -> np.ndarray:
    """600 synthetic patients with every value recorded."""
    cohort = generate_cohort(n=600, seed=41, incidence=0.3, missing_values=False)
    return frame_to_features(cohort)


def _only(X: np.ndarray, kept: tuple[str, ...]) -> np.ndarray:
    out = np.full_like(X, np.nan)
    for name in kept:
        j = FEATURES.index(name)
        out[:, j] = X[:, j]
    return out


def test_complete_records_have_one_risk_read_against_the_edges(model, patients) -> None:
    states = model.gate(patients, 0.5)
    np.testing.assert_array_equal(states.low, states.risk)
    np.testing.assert_array_equal(states.high, states.risk)
    expected = np.where(
        states.risk <= states.exclude_edge,
        "below",
        np.where(states.risk > states.pass_edge, "above", "undetermined"),
    )
    np.testing.assert_array_equal(states.state, expected)
    assert all(t == () for t in states.to_obtain)  # nothing is missing
    assert 0 < states.exclude_edge < 0.5 < states.pass_edge < 1


@pytest.mark.parametrize("kept", [(), ("male",), ("male", "age_years")])
def test_deleting_every_predictor_never_gives_below(model, patients, kept) -> None:
    states = model.gate(_only(patients, kept), 0.5)
    assert "below" not in set(states.state)
    # what would settle the gate is named, the key labs among the first
    undetermined = states.state == "undetermined"
    assert undetermined.any()
    for names in np.array(states.to_obtain, dtype=object)[undetermined]:
        assert set(names[:8]) & KEY_LABS, names[:8]
        assert not set(names) & set(kept)


def test_a_missing_lab_widens_the_range_around_the_risk(model, patients) -> None:
    X = patients.copy()
    for lab in ("anti_dsdna_iu_ml", "c3_g_l", "c4_g_l"):
        X[:, FEATURES.index(lab)] = np.nan
    complete = model.gate(patients, 0.5)
    missing = model.gate(X, 0.5)
    assert (missing.low <= missing.risk).all() and (missing.risk <= missing.high).all()
    assert (missing.high - missing.low).mean() > 0.02
    # the model constrains these labs to one direction: their most alarming
    # plausible values reach at least the complete record's risk for nearly everyone
    assert (missing.high >= complete.risk - 1e-9).mean() > 0.9
    # a missing lab can settle the gate in either direction: never a confident
    # exclusion of someone whose complete record is not excluded
    newly_below = (missing.state == "below") & (complete.state != "below")
    assert newly_below.mean() < 0.02


def test_one_record_gets_the_same_gate_alone_and_in_a_batch(model, patients) -> None:
    X = patients[:40].copy()
    X[::2, FEATURES.index("urine_protein_g_24h")] = np.nan
    X[1::3, FEATURES.index("c3_g_l")] = np.nan
    batch = model.gate(X, 0.5)
    for i in (0, 1, 3, 7):
        alone = model.gate(X[i : i + 1], 0.5)
        assert alone.state[0] == batch.state[i]
        assert alone.low[0] == pytest.approx(batch.low[i], abs=1e-6)
        assert alone.high[0] == pytest.approx(batch.high[i], abs=1e-6)
        assert alone.to_obtain[0] == batch.to_obtain[i]


def test_the_gate_parameters_load_without_unpickling(monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the model tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    loaded = LNRiskModel.load(FIXTURES / "model", expected_features=FEATURES)
    assert loaded.imputer is not None and loaded.zone is not None
    states = loaded.gate(np.full((1, len(FEATURES)), np.nan, np.float32), 0.5)
    assert states.state[0] == "undetermined"
