"""External validation and local recalibration of a registered model.

``lnrisk evaluate`` scores any registered version on any cohort file and logs the full
report as its own MLflow run. ``lnrisk recalibrate`` lets a new site adapt the model
to its population: it refits only the calibration map on part of a local sample,
shows calibration before and after on the rest, and registers the result as a new
version (the challenger), which the promotion gate then judges.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from data_schema import OUTCOME_COLUMN, frame_to_features
from riskmodel import Calibration, LNRiskModel
from training.config import TrainingConfig
from training.data import (
    PopulationDefinition,
    config_population,
    load_outcome_cohort,
    read_cohort,
    split_by_patient,
)
from training.evaluation.evaluate import Evaluation, evaluate_model
from training.evaluation.metrics import calibration_in_the_large, calibration_slope
from training.fit import fit_calibration
from training.pipeline import held_out_metrics, model_card_context
from training.registry import tracking
from training.registry.tracking import Registered
from training.zone import fit_review_zone

RecalibrationMethod = Literal["intercept", "logistic", "isotonic"]


@dataclass(frozen=True)
class ValidationResult:
    run_id: str
    model_version: str
    metrics: dict[str, float]
    before: dict[str, float] | None = None
    new_version: str | None = None
    alias: str | None = None


def recalibrate_model(
    model: LNRiskModel, X: np.ndarray, y: np.ndarray, method: RecalibrationMethod
) -> LNRiskModel:
    """A copy of ``model`` whose calibration map is refitted on (X, y).

    ``intercept``: recalibration-in-the-large, logit p' = a + logit p (Steyerberg,
    Clinical Prediction Models, ch. 20). ``logistic``: logit p' = a + b · logit p.
    Both compose with a Platt map into another Platt map on the margin, so the stored
    format does not change. ``isotonic``: a monotone map refitted on the margin.
    The ranking of patients (AUROC) is unchanged by all three. The review zone's
    observed event-rate curve is refitted on the same patients with the new risks,
    so the zone keeps its meaning at the new site.
    """
    p = model.predict_proba(X)
    margin = model.margin(X)
    old = model.calibration
    if method == "isotonic":
        calibration = fit_calibration(margin, y, "isotonic")
    elif old.method == "platt":
        a, b = (
            (calibration_in_the_large(y, p), 1.0)
            if method == "intercept"
            else calibration_slope(y, p)
        )
        # logit p' = a + b·(c + d·m) = (a + b·c) + (b·d)·m
        calibration = Calibration("platt", a + b * old.intercept, b * old.slope)
    else:  # an isotonic map does not compose with a logistic one: refit on the margin
        calibration = fit_calibration(margin, y, "platt")
    zone = model.zone
    if zone is not None:
        zone = fit_review_zone(
            calibration.apply(margin),
            y,
            exclude_margin=zone.exclude_margin,
            pass_margin=zone.pass_margin,
        )
    return replace(
        model, calibration=calibration, zone=zone, metadata=dict(model.metadata)
    )


def _load_validation_cohort(
    config: TrainingConfig, path: str | Path, date_format: str | None = None
) -> tuple[pd.DataFrame, PopulationDefinition, list[dict[str, object]]]:
    """A validation file restricted to the config's population, with its attrition.

    ``date_format`` names the ``strftime`` format of the file's dates (None: ISO
    8601)."""
    cohort = load_outcome_cohort(read_cohort(path, date_format), what="validation")
    population = config_population(config)
    kept, attrition = population.apply(cohort, config.trial_criteria)
    return kept, population, attrition


def evaluate_registered(
    config: TrainingConfig,
    ref: str,
    cohort_path: str | Path,
    date_format: str | None = None,
) -> ValidationResult:
    """Score ``registered_model@ref`` (alias or version) on a cohort; log a run.

    ``date_format`` names the ``strftime`` format of the file's dates (None: ISO
    8601)."""
    tracking.configure()
    name = config.tracking.registered_model
    model, version = tracking.load_registered(name, ref)
    cohort, population, attrition = _load_validation_cohort(
        config, cohort_path, date_format
    )
    evaluation = evaluate_model(
        model, cohort, config.gate_threshold, population=attrition
    )
    source = str(Path(cohort_path).resolve())
    digest = tracking.dataset_digest(cohort, source=source)
    with tracking.tracked_run(
        config,
        kind="external_validation",
        data_digest=digest,
        name=f"evaluate-v{version.version}-on-{digest}",
        model_family=model.metadata.get("model_family", model.kind),
        data=cohort,
        source=source,
        log_data_as=("validation", "eval"),
        registered_model=name,
        model_version=version.version,
        model_ref=f"{name}@{ref}",
        **population.tags(),
    ) as run:
        run.metrics(evaluation.metrics)
        # The card of the model evaluated, as its own run logged it.
        run.evidence(evaluation, model_card=tracking.load_model_card(version.run_id))
    return ValidationResult(run.run_id, str(version.version), evaluation.metrics)


def recalibrate_registered(
    config: TrainingConfig,
    ref: str,
    cohort_path: str | Path,
    method: RecalibrationMethod = "logistic",
    *,
    fit_fraction: float = 0.5,
) -> ValidationResult:
    """Recalibrate ``registered_model@ref`` on a local sample; register a new version.

    The sample is split by patient: ``fit_fraction`` fits the new calibration map,
    the rest measures calibration before and after. The new version passes the
    registration gate and becomes the challenger (or the champion if none exists).

    Raises:
        training.registry.gate.RegistrationRefusedError: the recalibrated model
            failed the registration gate (the run is logged; no version).
    """
    tracking.configure()
    names = config.tracking
    model, version = tracking.load_registered(names.registered_model, ref)
    cohort, population, attrition = _load_validation_cohort(config, cohort_path)
    fit_part, eval_part = split_by_patient(cohort, 1 - fit_fraction, config.seed)
    new = recalibrate_model(
        model,
        frame_to_features(fit_part),
        fit_part[OUTCOME_COLUMN].to_numpy(int),
        method,
    )
    new.metadata.update(
        {
            "recalibrated_from": f"{names.registered_model}/{version.version}",
            "recalibration_method": method,
        }
    )
    before = evaluate_model(
        model, eval_part, config.gate_threshold, population=attrition
    )
    after = evaluate_model(new, eval_part, config.gate_threshold, population=attrition)
    run_id, registered = _log_recalibration(
        config,
        _Recalibration(model, new, version.version, method, fit_fraction),
        cohort,
        population,
        (fit_part, eval_part),
        (before, after),
        str(Path(cohort_path).resolve()),
    )
    return ValidationResult(
        run_id,
        str(version.version),
        after.metrics,
        before=before.metrics,
        new_version=registered.version,
        alias=registered.alias,
    )


@dataclass(frozen=True)
class _Recalibration:
    """A recalibration: the model adapted, the new one, and how."""

    old: LNRiskModel
    new: LNRiskModel
    version: str
    method: RecalibrationMethod
    fit_fraction: float


def _log_recalibration(
    config: TrainingConfig,
    recal: _Recalibration,
    cohort: pd.DataFrame,
    population: PopulationDefinition,
    parts: tuple[pd.DataFrame, pd.DataFrame],
    evaluations: tuple[Evaluation, Evaluation],
    source: str,
) -> tuple[str, Registered]:
    """Log the recalibration run; register the new version past the gate."""
    model, new, method = recal.old, recal.new, recal.method
    fit_fraction = recal.fit_fraction
    fit_part, eval_part = parts
    before, after = evaluations
    digest = tracking.dataset_digest(cohort, source=source)
    with tracking.tracked_run(
        config,
        kind="recalibration",
        name=f"recalibrate-v{recal.version}-{method}-on-{digest}",
        model_family=model.metadata.get("model_family", model.kind),
        data=cohort,
        source=source,
        data_digest=digest,
        recalibrated_from=recal.version,
        **population.tags(),
    ) as run:
        run.log_dataset(fit_part, name="recalibration", source=source, context="fit")
        run.log_dataset(eval_part, name="test", source=source, context="eval")
        run.params(
            {
                "recalibration.method": method,
                "recalibration.fit_fraction": fit_fraction,
                # how the held-back half was drawn, so the promotion gate can rebuild it
                "seed": config.seed,
                "split.test_fraction": 1 - fit_fraction,
                "split.stratify": True,
            }
        )
        run.metrics(after.metrics)
        run.metrics(before.metrics, prefix="before_")
        new.metadata.update(
            {"run_id": run.run_id, "held_out_metrics": held_out_metrics(after)}
        )
        registered = run.register_with_evidence(
            new,
            after,
            lambda version: model_card_context(
                config,
                run,
                new,
                version=version,
                source=source,
                digest=digest,
                dev=fit_part,
                test=eval_part,
                evaluation=after,
                calibration_method=f"{new.calibration.method} (recalibrated: {method})",
            ),
        )
    assert registered is not None  # a refusal was raised when the run ended
    return run.run_id, registered
