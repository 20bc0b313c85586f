"""The training pipeline: cohort → validation → split → fit → evaluate → registry.

Plain functions that the CLI (``lnrisk train``) and the tests call directly. The
cohort arrives as a table with the description of its source; the pipeline neither
generates data nor talks to MLflow itself (the registry's tracked run does).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from data_schema import OUTCOME_COLUMN, frame_to_features
from riskmodel import LNRiskModel
from training.config import TrainingConfig
from training.data import (
    DATE_FORMAT_TAG,
    STEP_COHORT,
    STEP_LEFT_OUT,
    STEP_NOT_RULED_OUT,
    STEP_POPULATION,
    PopulationDefinition,
    config_population,
    load_outcome_cohort,
    split_by_patient,
)
from training.evaluation.characteristics import characteristics_table
from training.evaluation.evaluate import Evaluation, evaluate_model
from training.evaluation.metrics import MODEL_CARD_METRICS
from training.evaluation.model_card import ModelCardContext
from training.fit import fit_candidate, progress_steps
from training.registry.tracking import Registered, TrackedRun, git_commit, tracked_run


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


@dataclass(frozen=True)
class _Fitted:
    """A fitted model with the data it was developed and evaluated on."""

    cohort: pd.DataFrame
    population: PopulationDefinition
    attrition: list[dict[str, Any]]
    dev: pd.DataFrame
    test: pd.DataFrame
    model: LNRiskModel
    search_results: list[dict[str, float]]
    evaluation: Evaluation


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


def fit_and_evaluate(
    config: TrainingConfig, raw: pd.DataFrame, *, show_progress: bool = True
) -> _Fitted:
    """Validate, leave out who the model is not for, split, fit, evaluate.

    Nothing here reads a synthetic true risk except the evaluation, which reports
    it beside the observed outcomes; the model is the same without it.
    """
    with _progress(show_progress) as progress:
        task = progress.add_task("loading cohort", total=progress_steps(config) + 4)

        def step(description: str) -> None:
            progress.update(task, advance=1, description=description)

        cohort = load_outcome_cohort(raw)
        definition = config_population(config)
        population, attrition = definition.apply(cohort, config.trial_criteria)
        step(f"{len(population):,} of {len(cohort):,} patients in the population")
        dev, test = split_by_patient(
            population, config.split.test_fraction, config.seed, config.split.stratify
        )
        X_dev, y_dev = frame_to_features(dev), dev[OUTCOME_COLUMN].to_numpy(int)
        step(f"split {len(dev):,} development / {len(test):,} test")
        model, search_results = fit_candidate(X_dev, y_dev, config, progress=step)
        evaluation = evaluate_model(
            model, test, config.gate_threshold, population=attrition
        )
        step("evaluated on held-out patients")
    return _Fitted(
        cohort, definition, attrition, dev, test, model, search_results, evaluation
    )


def population_metrics(attrition: list[dict[str, Any]]) -> dict[str, float]:
    """Cohort, left out and kept: the fixed metric names of every training run."""
    by_step = {row["step"]: row["patients"] for row in attrition}
    return {
        "population_cohort": by_step[STEP_COHORT],
        "population_left_out": by_step[STEP_LEFT_OUT],
        "population_not_ruled_out": by_step[STEP_NOT_RULED_OUT],
        "population_development": by_step[STEP_POPULATION],
    }


def gate_description(model: LNRiskModel) -> str | None:
    """One sentence on how the model's gate decides (model card)."""
    if model.zone is None or model.imputer is None:
        return None
    zone = model.zone
    return (
        f"Three-valued gate. Review zone: auto-exclude where held-out patients' "
        f"observed 2-year LN rate was at most the gate − {zone.exclude_margin:g}, "
        f"auto-pass where it was above the gate + {zone.pass_margin:g} (a centred "
        f"isotonic curve of {zone.n_patients:,} out-of-fold development patients, "
        f"{zone.n_events:,} events); missing predictors completed "
        f"{model.imputer.draws} times by chained equations, and the gate is "
        "undetermined when their plausible values reach across an edge."
    )


def held_out_metrics(evaluation: Evaluation) -> dict[str, float]:
    """The held-out metrics a saved model carries (shown by ``model_info``)."""
    return {k: float(evaluation.metrics[k]) for k in MODEL_CARD_METRICS}


def model_card_context(
    config: TrainingConfig,
    run: TrackedRun,
    model: LNRiskModel,
    *,
    version: str | None,
    source: str,
    digest: str,
    dev: pd.DataFrame,
    test: pd.DataFrame,
    evaluation: Evaluation,
    calibration_method: str | None = None,
) -> ModelCardContext:
    """What the model card of a model developed on ``dev`` and tested on ``test``
    shows (a training or recalibration run)."""
    return ModelCardContext(
        model_name=config.tracking.registered_model,
        model_version=version,
        run_id=run.run_id,
        model_family=str(model.metadata.get("model_family", model.kind)),
        calibration_method=calibration_method or model.calibration.method,
        config=config.model_dump(mode="json"),
        config_hash=config.config_hash(),
        git_commit=git_commit(),
        data_source=source,
        data_digest=digest,
        n_development=len(dev),
        n_test=len(test),
        events_development=int(dev[OUTCOME_COLUMN].sum()),
        events_test=int(test[OUTCOME_COLUMN].sum()),
        report=evaluation.report,
        gate_method=gate_description(model),
        selected_hyperparameters=model.metadata.get("hyperparameters"),
        characteristics=characteristics_table({"development": dev, "test": test}),
        parameters=len(model.linear.terms)
        if model.linear
        else len(model.feature_names),
    )


def _log_training_run(
    config: TrainingConfig,
    fitted: _Fitted,
    source: str,
    date_format: str | None = None,
) -> tuple[Registered, str]:
    """Log the run, pass the registration gate, log the evidence."""
    family = config.model.family
    model, dev, test = fitted.model, fitted.dev, fitted.test
    name = f"train-{family}-{config.calibration.method}-{config.config_hash()}"
    with tracked_run(
        config,
        kind="train",
        name=name,
        model_family=family,
        data=fitted.cohort,
        source=source,
        log_data_as=("cohort", "training"),
    ) as run:
        digest = run.data_digest
        test_digest = run.log_dataset(
            test, name="test", source=source, context="evaluation"
        )
        run.tags({"test_digest": test_digest, **fitted.population.tags()})
        if date_format is not None:
            run.tags({DATE_FORMAT_TAG: date_format})
        run.params(config.flat_params())
        run.params(
            {
                "n_development": len(dev),
                "n_test": len(test),
                "events_development": int(dev[OUTCOME_COLUMN].sum()),
                "events_test": int(test[OUTCOME_COLUMN].sum()),
            }
        )
        run.table(pd.DataFrame(fitted.attrition), "population/attrition.json")
        run.metrics(population_metrics(fitted.attrition))
        if "hyperparameters" in model.metadata:
            run.params(model.metadata["hyperparameters"], prefix="selected.")
        if fitted.search_results:
            run.table(pd.DataFrame(fitted.search_results), "search/results.json")
        run.metrics(fitted.evaluation.metrics)
        model.metadata.update(
            {
                "run_id": run.run_id,
                "model_family": family,
                "data_digest": digest,
                "config_hash": config.config_hash(),
                "git_commit": git_commit(),
                "held_out_metrics": held_out_metrics(fitted.evaluation),
                "gate_method": gate_description(model),
            }
        )
        registered = run.register_with_evidence(
            model,
            fitted.evaluation,
            lambda version: model_card_context(
                config,
                run,
                model,
                version=version,
                source=source,
                digest=digest,
                dev=dev,
                test=test,
                evaluation=fitted.evaluation,
            ),
        )
    assert registered is not None  # a refusal was raised when the run ended
    return registered, digest


def train(
    config: TrainingConfig,
    cohort: pd.DataFrame,
    source: str,
    *,
    show_progress: bool = True,
    date_format: str | None = None,
) -> TrainingResult:
    """Fit, evaluate and log one model; register it if it passes the gate.

    The first registered version becomes the champion, later ones the challenger.

    Args:
        config: validated training settings.
        cohort: a table in the ``PatientRecord`` schema with an ``ln_within_2y``
            outcome column.
        source: where the cohort came from (a file path or ``synthetic://…``),
            recorded with the run so it can be rebuilt.
        show_progress: draw a progress bar on the terminal.
        date_format: the ``strftime`` format the source file's dates were read with
            (None: ISO 8601), recorded so that the source is read the same way again.

    Raises:
        data_schema.CohortValidationError: listing every bad row of the cohort.
        ValueError: the cohort has no outcome column.
        training.registry.gate.RegistrationRefusedError: the model failed the
            registration gate (the run and its evidence are logged; no version).
    """
    started = time.perf_counter()
    fitted = fit_and_evaluate(config, cohort, show_progress=show_progress)
    registered, digest = _log_training_run(config, fitted, source, date_format)
    return TrainingResult(
        run_id=registered.run_id,
        model_uri=registered.model_uri,
        model_version=registered.version,
        alias=registered.alias,
        metrics=fitted.evaluation.metrics,
        report=fitted.evaluation.report,
        data_digest=digest,
        seconds=time.perf_counter() - started,
    )
