"""Shared fixtures: real, temporary MLflow and BentoML stores for the whole session.

The environment is set here, at conftest import, because BentoML reads BENTOML_HOME
when it is first imported and every test module imports it after this file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_STORE = Path(tempfile.mkdtemp(prefix="lnrisk-test-"))
os.environ["LNRISK_HOME"] = str(_STORE)
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STORE / 'mlflow.db'}"
os.environ.pop("MLFLOW_REGISTRY_URI", None)
os.environ["BENTOML_HOME"] = str(_STORE / "bentoml")
os.environ["BENTOML_DO_NOT_TRACK"] = "True"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
# The in-process service serves the fixture model (tests/fixtures/model): HTTP tests
# start without a training run. End-to-end tests of the MLflow hand-off serve the
# imported champion by setting LNRISK_MODEL for their server process.
FIXTURE_MODEL_TAG = "ln-risk:fixture"
os.environ["LNRISK_MODEL"] = FIXTURE_MODEL_TAG
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_STORE, ignore_errors=True)


@pytest.fixture(scope="session")
def store_dir() -> Path:
    """The session's temporary store folder (MLflow DB, artifacts, BentoML home)."""
    return _STORE


@pytest.fixture(scope="session")
def small_config():  # -> TrainingConfig
    """A fast training profile: small synthetic cohort, fewer trees and folds.

    1,000 held-out patients (~100 events) estimate calibration loosely (the slope's
    95 % interval is about ±0.3), so the registration gate is widened for this
    profile; the gate's own tests use the default criteria.
    """
    from training.config import load_config

    base = load_config()
    return base.model_copy(
        update={
            "registration": base.registration.model_copy(
                update={
                    "cal_slope_min": 0.6,
                    "cal_slope_max": 1.6,
                    "max_abs_citl": 0.04,
                    "max_ici": 0.04,
                    "min_auroc_ci_low": 0.6,
                    "min_gate_events": 0,
                }
            ),
            "cohort": base.cohort.model_copy(update={"n": 4000, "seed": 11}),
            "model": base.model.model_copy(update={"n_estimators": 120}),
            "search": base.search.model_copy(
                update={"n_iter": 2, "cv_folds": 2, "n_estimators": (80, 120)}
            ),
            "calibration": base.calibration.model_copy(update={"cv_folds": 3}),
        }
    )


@pytest.fixture(scope="session")
def small_cohort(small_config):  # -> tuple[pd.DataFrame, str]
    """The small profile's synthetic cohort and its recorded data source."""
    from synthetic import cohort_source, generate_cohort

    c = small_config.cohort
    return (
        generate_cohort(n=c.n, seed=c.seed, incidence=c.incidence, shift=c.shift),
        cohort_source(c.n, c.seed, c.incidence, c.shift),
    )


@pytest.fixture(scope="session")
def trained(small_config, small_cohort):  # -> TrainingResult
    """One real training run logged and registered in the session's MLflow store."""
    from training.pipeline import train

    return train(small_config, *small_cohort, show_progress=False)


@dataclass(frozen=True)
class Served:
    """The model the in-process service serves, as the import step would record it."""

    tag: str
    mlflow_version: str
    run_id: str
    data_digest: str


@pytest.fixture(scope="session")
def served() -> Served:
    """The fixture model in the session's BentoML store, under its fixed tag."""
    import shutil as sh

    import bentoml

    found = Served(FIXTURE_MODEL_TAG, "fixture", "fixture-run", "fixture-data")
    try:
        bentoml.models.get(FIXTURE_MODEL_TAG)
    except bentoml.exceptions.NotFound:
        metadata = {
            "mlflow_model": "ln-risk",
            "mlflow_version": found.mlflow_version,
            "mlflow_alias": "champion",
            "mlflow_run_id": found.run_id,
            "data_digest": found.data_digest,
        }
        with bentoml.models.create(
            FIXTURE_MODEL_TAG, labels={"purpose": "test fixture"}, metadata=metadata
        ) as model:
            for item in (FIXTURES / "model").iterdir():
                sh.copy2(item, Path(model.path) / item.name)
    return found


@pytest.fixture(scope="session")
def imported(trained) -> Iterator[object]:
    """The champion copied into the session's BentoML store."""
    from serving.import_model import import_registered_model
    from training.registry import tracking

    tracking.configure()
    yield import_registered_model("ln-risk", "champion")
