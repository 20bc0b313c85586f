"""Shared fixtures: real, temporary MLflow and BentoML stores for the whole session.

The environment is set here, at conftest import, because BentoML reads BENTOML_HOME
when it is first imported and every test module imports it after this file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
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
                }
            ),
            "cohort": base.cohort.model_copy(update={"n": 4000, "seed": 11}),
            "model": base.model.model_copy(update={"n_estimators": 120}),
            "search": base.search.model_copy(
                update={"n_iter": 2, "cv_folds": 2, "n_estimators": (80, 120)}
            ),
            "calibration": base.calibration.model_copy(update={"cv_folds": 3}),
            "uncertainty": base.uncertainty.model_copy(update={"n_members": 3}),
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


@pytest.fixture(scope="session")
def imported(trained) -> Iterator[object]:
    """The champion copied into the session's BentoML store."""
    from serving.import_model import import_registered_model
    from training.registry import tracking

    tracking.configure()
    yield import_registered_model("ln-risk", "champion")
