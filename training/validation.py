"""External validation and local recalibration of a registered model.

``lnrisk evaluate`` scores any registered version on any cohort file and logs the full
report as its own MLflow run. ``lnrisk recalibrate`` lets a new site adapt the model
to its population: it refits only the calibration map on part of a local sample,
shows calibration before and after on the rest, and registers the result as a new
version (the challenger), which the promotion gate then judges.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np

from data_schema import OUTCOME_COLUMN, frame_to_features, validate_cohort
from riskmodel import Calibration, LNRiskModel
from training import tracking
from training.config import TrainingConfig
from training.evaluation import band_description, evaluate_model, log_evidence
from training.metrics import calibration_in_the_large, calibration_slope
from training.model import fit_calibration
from training.model_card import ModelCardContext
from training.pipeline import read_cohort, split_by_patient, synthetic_input_example

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
    The ranking of patients (AUROC) is unchanged by all three.
    """
    p = model.predict_proba(X)
    if method == "intercept":
        a, b = calibration_in_the_large(y, p), 1.0
    elif method == "logistic":
        a, b = calibration_slope(y, p)

    def refit(old: Calibration, margin: np.ndarray) -> Calibration:
        if method == "isotonic":
            return fit_calibration(margin, y, "isotonic")
        if old.method == "platt":
            # logit p' = a + b·(c + d·m) = (a + b·c) + (b·d)·m
            return Calibration("platt", a + b * old.intercept, b * old.slope)
        # An isotonic map does not compose with a logistic one: refit on the margin.
        return fit_calibration(margin, y, "platt")

    band = model.band
    if band is not None:
        # The band's members move with the model: same transform, same data.
        features = np.asarray(X, dtype=np.float32)
        margins = [
            np.asarray(b.inplace_predict(features, predict_type="margin"), float)
            for b in band.boosters
        ]
        band = replace(
            band,
            calibrations=tuple(
                refit(c, m) for c, m in zip(band.calibrations, margins, strict=True)
            ),
        )
    return replace(
        model,
        calibration=refit(model.calibration, model.margin(X)),
        band=band,
        metadata=dict(model.metadata),
    )


def _load_validation_cohort(path: str | Path):  # -> pd.DataFrame
    cohort = validate_cohort(read_cohort(path))
    if OUTCOME_COLUMN not in cohort:
        raise ValueError(
            f"{path}: validation needs the observed outcome column {OUTCOME_COLUMN!r}"
        )
    return cohort


def evaluate_registered(
    config: TrainingConfig, ref: str, cohort_path: str | Path
) -> ValidationResult:
    """Score ``registered_model@ref`` (alias or version) on a cohort; log a run."""
    tracking.configure()
    name = config.tracking.registered_model
    model, version = tracking.load_registered(name, ref)
    cohort = _load_validation_cohort(cohort_path)
    evaluation = evaluate_model(model, cohort, config.gate_threshold)
    source = str(Path(cohort_path).resolve())
    experiment_id = tracking.ensure_experiment(config.tracking.experiment)
    digest = tracking.dataset_digest(cohort, source=source)
    run_name = f"evaluate-v{version.version}-on-{digest}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        tracking.log_dataset(cohort, name="validation", source=source, context="eval")
        tracking.log_tags(
            tracking.run_tags(
                run_kind="external_validation",
                model_family=model.metadata.get("model_family", model.kind),
                data_digest=digest,
                data_source=source,
                config_hash=config.config_hash(),
                gate_threshold=config.gate_threshold,
                registered_model=name,
                model_version=version.version,
                model_ref=f"{name}@{ref}",
            )
        )
        mlflow.log_metrics(evaluation.metrics)
        with tempfile.TemporaryDirectory() as tmp:
            # The card of the model evaluated, as its own run logged it.
            log_evidence(
                evaluation,
                Path(tmp),
                context=None,
                model_card=tracking.load_model_card(version.run_id),
            )
    return ValidationResult(run.info.run_id, str(version.version), evaluation.metrics)


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
    the rest measures calibration before and after. The new version becomes the
    challenger (or the champion if none exists).
    """
    tracking.configure()
    names = config.tracking
    model, version = tracking.load_registered(names.registered_model, ref)
    cohort = _load_validation_cohort(cohort_path)
    fit_part, eval_part = split_by_patient(cohort, 1 - fit_fraction, config.seed)
    X_fit = frame_to_features(fit_part)
    new = recalibrate_model(
        model, X_fit, fit_part[OUTCOME_COLUMN].to_numpy(int), method
    )
    new.metadata.update(
        {
            "recalibrated_from": f"{names.registered_model}/{version.version}",
            "recalibration_method": method,
        }
    )
    before = evaluate_model(model, eval_part, config.gate_threshold)
    after = evaluate_model(new, eval_part, config.gate_threshold)

    source = str(Path(cohort_path).resolve())
    digest = tracking.dataset_digest(cohort, source=source)
    experiment_id = tracking.ensure_experiment(names.experiment)
    run_name = f"recalibrate-v{version.version}-{method}-on-{digest}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        tracking.log_dataset(
            fit_part, name="recalibration", source=source, context="fit"
        )
        tracking.log_dataset(eval_part, name="test", source=source, context="eval")
        tracking.log_tags(
            tracking.run_tags(
                run_kind="recalibration",
                model_family=model.metadata.get("model_family", model.kind),
                data_digest=digest,
                data_source=source,
                config_hash=config.config_hash(),
                gate_threshold=config.gate_threshold,
                recalibrated_from=version.version,
            )
        )
        mlflow.log_params(
            {
                "recalibration.method": method,
                "recalibration.fit_fraction": fit_fraction,
                # how the held-back half was drawn, so the promotion gate can rebuild it
                "seed": config.seed,
                "split.test_fraction": 1 - fit_fraction,
                "split.stratify": True,
            }
        )
        mlflow.log_metrics(after.metrics)
        mlflow.log_metrics({f"before_{k}": v for k, v in before.metrics.items()})
        new.metadata["run_id"] = run.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = new.save(Path(tmp) / "ln_risk_model")
            logged = tracking.log_model_and_register(
                model_dir,
                synthetic_input_example(),
                registered_model=names.registered_model,
                champion_alias=names.champion_alias,
                challenger_alias=names.challenger_alias,
            )
            tracking.log_tags(
                {
                    "registered_model": names.registered_model,
                    "model_version": logged.version,
                }
            )
            log_evidence(
                after,
                Path(tmp),
                context=ModelCardContext(
                    model_name=names.registered_model,
                    model_version=logged.version,
                    run_id=run.info.run_id,
                    model_family=str(new.metadata.get("model_family", new.kind)),
                    calibration_method=f"{new.calibration.method} "
                    f"(recalibrated: {method})",
                    config=config.model_dump(mode="json"),
                    config_hash=config.config_hash(),
                    git_commit=tracking.git_commit(),
                    data_source=source,
                    data_digest=digest,
                    n_development=len(fit_part),
                    n_test=len(eval_part),
                    events_development=int(fit_part[OUTCOME_COLUMN].sum()),
                    events_test=int(eval_part[OUTCOME_COLUMN].sum()),
                    report=after.report,
                    uncertainty_method=band_description(new),
                ),
            )
    return ValidationResult(
        run.info.run_id,
        str(version.version),
        after.metrics,
        before=before.metrics,
        new_version=logged.version,
        alias=logged.alias,
    )
