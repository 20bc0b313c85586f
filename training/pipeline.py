"""The training pipeline: cohort → validation → split → fit → evaluate → MLflow.

Plain functions that the CLI (``lnrisk train``) and the tests call directly.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.model_selection import train_test_split

from data_schema import (
    OUTCOME_COLUMN,
    TRUE_RISK_COLUMN,
    field_specs,
    frame_to_features,
    validate_cohort,
)
from riskmodel.pyfunc import ARTIFACT_KEY, to_pyfunc_frame
from training import tracking
from training.config import CohortSettings, TrainingConfig
from training.evaluation import (
    attach_band,
    band_description,
    band_steps,
    evaluate_model,
    log_evidence,
)
from training.model import fit_candidate, progress_steps
from training.model_card import ModelCardContext
from training.synthetic import generate_cohort


@dataclass(frozen=True)
class TrainingResult:
    """What a training run produced."""

    run_id: str
    model_uri: str
    model_version: str
    alias: str
    metrics: dict[str, float]
    report: dict[str, Any]
    data_digest: str
    seconds: float


def read_cohort(path: str | Path) -> pd.DataFrame:
    """Read a cohort table from Parquet or CSV (by extension)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cohort file not found: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"unsupported cohort file type {path.suffix!r} (parquet or csv)")


def load_cohort(
    path: str | Path | None, settings: CohortSettings
) -> tuple[pd.DataFrame, str]:
    """The cohort table and a description of its source.

    With no path, generates the synthetic cohort described by ``settings``.
    """
    if path is not None:
        return read_cohort(path), str(Path(path).resolve())
    df = generate_cohort(
        n=settings.n,
        seed=settings.seed,
        incidence=settings.incidence,
        shift=settings.shift,
    )
    return df, synthetic_source(settings)


def synthetic_source(settings: CohortSettings) -> str:
    """The data source recorded for the synthetic cohort of ``settings``.

    A description of the generator call, from which the cohort can be regenerated
    (:func:`training.promote.synthetic_source_settings` reads it back).
    """
    return (
        f"synthetic://clinical.md-s8?n={settings.n}&seed={settings.seed}"
        f"&incidence={settings.incidence}&shift={settings.shift}"
    )


def split_by_patient(
    df: pd.DataFrame, test_fraction: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Development and held-out test sets; each patient lands in exactly one."""
    ids = df["patient_id"].to_numpy()
    per_patient = df.groupby("patient_id", sort=False)[OUTCOME_COLUMN].max()
    dev_ids, test_ids = train_test_split(
        per_patient.index.to_numpy(),
        test_size=test_fraction,
        random_state=seed,
        stratify=per_patient.to_numpy() if stratify else None,
    )
    test_mask = np.isin(ids, test_ids)
    assert not np.isin(dev_ids, test_ids).any()
    return (
        df.loc[~test_mask].reset_index(drop=True),
        df.loc[test_mask].reset_index(drop=True),
    )


def synthetic_input_example(n: int = 3, seed: int = 20261125) -> pd.DataFrame:
    """A few synthetic patients (never real data) as the logged input example."""
    specs = field_specs()
    cols = [name for name, s in specs.items() if s.role == "predictor"]
    example = generate_cohort(n=200, seed=seed).head(n)[cols]
    return to_pyfunc_frame(example)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=False,
    )
    with progress:
        yield progress


def train(
    config: TrainingConfig,
    cohort_path: str | Path | None = None,
    *,
    show_progress: bool = True,
) -> TrainingResult:
    """Fit, evaluate and log one model; register it as champion (first) or challenger.

    Args:
        config: validated training settings.
        cohort_path: a Parquet/CSV cohort in the ``PatientRecord`` schema with an
            ``ln_within_2y`` outcome column; ``None`` generates the synthetic cohort.
        show_progress: draw a progress bar on the terminal.

    Raises:
        data_schema.CohortValidationError: listing every bad row of the cohort.
        ValueError: the cohort has no outcome column.
    """
    started = time.perf_counter()
    tracking.configure()
    experiment_id = tracking.ensure_experiment(config.tracking.experiment)
    with _progress(show_progress) as progress:
        total = progress_steps(config) + band_steps(config) + 4
        task = progress.add_task("loading cohort", total=total)

        def step(description: str) -> None:
            progress.update(task, advance=1, description=description)

        raw, source = load_cohort(cohort_path, config.cohort)
        cohort = validate_cohort(raw)
        if OUTCOME_COLUMN not in cohort:
            raise ValueError(
                f"the cohort has no {OUTCOME_COLUMN!r} column: training needs the "
                "observed 2-year outcome (1 = new-onset LN within 24 months)"
            )
        step(f"validated {len(cohort):,} patients")
        dev, test = split_by_patient(
            cohort, config.split.test_fraction, config.seed, config.split.stratify
        )
        X_dev, y_dev = frame_to_features(dev), dev[OUTCOME_COLUMN].to_numpy(int)
        y_test = test[OUTCOME_COLUMN].to_numpy(int)
        step(f"split {len(dev):,} development / {len(test):,} test")

        model, search_results = fit_candidate(X_dev, y_dev, config, progress=step)
        dev_truth = (
            dev[TRUE_RISK_COLUMN].to_numpy(float) if TRUE_RISK_COLUMN in dev else None
        )
        attach_band(model, X_dev, y_dev, config, true_risk=dev_truth, progress=step)
        evaluation = evaluate_model(model, test, config.gate_threshold)
        step("evaluated on held-out patients")

        family = config.model.family
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"train-{family}-{config.calibration.method}-{config.config_hash()}",
        ) as run:
            digest = tracking.log_dataset(
                cohort, name="cohort", source=source, context="training"
            )
            test_digest = tracking.log_dataset(
                test, name="test", source=source, context="evaluation"
            )
            tracking.log_tags(
                tracking.run_tags(
                    run_kind="train",
                    model_family=family,
                    data_digest=digest,
                    data_source=source,
                    config_hash=config.config_hash(),
                    gate_threshold=config.gate_threshold,
                    test_digest=test_digest,
                )
            )
            mlflow.log_params(config.flat_params())
            mlflow.log_params(
                {
                    "n_development": len(dev),
                    "n_test": len(test),
                    "events_development": int(y_dev.sum()),
                    "events_test": int(y_test.sum()),
                }
            )
            if "hyperparameters" in model.metadata:
                mlflow.log_params(
                    {
                        f"selected.{k}": v
                        for k, v in model.metadata["hyperparameters"].items()
                    }
                )
            if search_results:
                mlflow.log_table(pd.DataFrame(search_results), "search/results.json")
            mlflow.log_metrics(evaluation.metrics)
            model.metadata.update(
                {
                    "run_id": run.info.run_id,
                    "model_family": family,
                    "data_digest": digest,
                    "config_hash": config.config_hash(),
                    "git_commit": tracking.git_commit(),
                }
            )
            with tempfile.TemporaryDirectory() as tmp:
                model_dir = model.save(Path(tmp) / ARTIFACT_KEY)
                logged = tracking.log_model_and_register(
                    model_dir,
                    synthetic_input_example(),
                    registered_model=config.tracking.registered_model,
                    champion_alias=config.tracking.champion_alias,
                    challenger_alias=config.tracking.challenger_alias,
                )
                tracking.log_tags(
                    {
                        "registered_model": config.tracking.registered_model,
                        "model_version": logged.version,
                    }
                )
                log_evidence(
                    evaluation,
                    Path(tmp),
                    context=ModelCardContext(
                        model_name=config.tracking.registered_model,
                        model_version=logged.version,
                        run_id=run.info.run_id,
                        model_family=family,
                        calibration_method=model.calibration.method,
                        config=config.model_dump(mode="json"),
                        config_hash=config.config_hash(),
                        git_commit=tracking.git_commit(),
                        data_source=source,
                        data_digest=digest,
                        n_development=len(dev),
                        n_test=len(test),
                        events_development=int(y_dev.sum()),
                        events_test=int(y_test.sum()),
                        report=evaluation.report,
                        uncertainty_method=band_description(model),
                        selected_hyperparameters=model.metadata.get("hyperparameters"),
                    ),
                )
        step("logged to MLflow")
    return TrainingResult(
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        model_version=logged.version,
        alias=logged.alias,
        metrics=evaluation.metrics,
        report=evaluation.report,
        data_digest=digest,
        seconds=time.perf_counter() - started,
    )
