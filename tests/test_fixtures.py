"""The test fixtures match the code: the saved model loads with today's features and
format, and the cohort is a valid cohort table. When they fail, rerun
``tests/fixtures/make_fixtures.py``."""

from __future__ import annotations

import pandas as pd

from data_schema import model_features, validate_cohort
from riskmodel import LNRiskModel
from tests.conftest import FIXTURES


def test_the_fixture_model_loads_with_todays_features() -> None:
    model = LNRiskModel.load(FIXTURES / "model", expected_features=model_features())
    assert model.kind == "xgboost"
    assert model.imputer is not None and model.zone is not None
    assert set(model.metadata["held_out_metrics"]) >= {"auroc", "cal_slope"}


def test_the_fixture_cohort_is_a_valid_cohort_of_20() -> None:
    cohort = validate_cohort(pd.read_csv(FIXTURES / "cohort.csv"))
    assert len(cohort) == 20 and cohort["patient_id"].is_unique
