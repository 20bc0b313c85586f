"""Training settings: validated objects with clinical defaults, loaded from YAML.

Bad values fail here, before any data is touched (the OHDSI PatientLevelPrediction
``create*Settings`` pattern).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from eligibility import DEFAULT_CRITERIA_PATH, TrialCriteria, load_criteria

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortSettings(_Settings):
    """The synthetic cohort generated when no cohort file is given."""

    n: int = Field(20_000, ge=200, le=5_000_000, description="patients")
    seed: int = Field(7, ge=0)
    incidence: float = Field(0.10, gt=0.01, lt=0.5, description="2-year LN incidence")
    shift: str = Field("none", description="named population shift (synthetic.SHIFTS)")


class SplitSettings(_Settings):
    """How patients are split into development and held-out test sets."""

    test_fraction: float = Field(0.25, gt=0.05, lt=0.8)
    stratify: bool = True


ModelFamily = Literal["xgboost", "logistic", "rifle_ln"]


class ModelSettings(_Settings):
    """Which candidate to fit, and XGBoost's hyperparameters (the search's start).

    ``xgboost``: gradient-boosted trees on every predictor, missing values native.
    ``logistic``: L2 logistic regression on every predictor (median imputation plus
    missing indicators, standardised; anti-dsDNA on the log10 scale).
    ``rifle_ln``: the published RIFLE-LN predictors (male sex, age at SLE onset,
    anti-dsDNA positivity; Chan et al., Front Immunol 2023) in an unpenalised
    logistic model — the baseline a useful gate must beat.
    """

    family: ModelFamily = "xgboost"
    n_estimators: int = Field(400, ge=10, le=5000)
    max_depth: int = Field(3, ge=1, le=12)
    learning_rate: float = Field(0.04, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    n_jobs: int = Field(2, ge=1, le=64)
    # Directions every cited cohort agrees on (clinical.md §3): the trees may not
    # learn the opposite from noise, so lower complement never lowers the risk.
    monotone_increasing: tuple[str, ...] = ("anti_dsdna_iu_ml",)
    monotone_decreasing: tuple[str, ...] = ("c3_g_l", "c4_g_l")


class SearchSettings(_Settings):
    """Random search of XGBoost hyperparameters by cross-validation.

    The metric is a proper scoring rule by default: the gate is an absolute
    probability, so ranking (AUROC) alone is the wrong target.
    """

    enabled: bool = True
    n_iter: int = Field(8, ge=1, le=200, description="parameter settings tried")
    cv_folds: int = Field(3, ge=2, le=10)
    metric: Literal["log_loss", "brier", "auroc"] = "log_loss"
    max_depth: tuple[int, ...] = (2, 3, 4)
    learning_rate: tuple[float, ...] = (0.03, 0.05, 0.08)
    n_estimators: tuple[int, ...] = (200, 400, 600)
    min_child_weight: tuple[float, ...] = (1.0, 5.0, 10.0)
    subsample: tuple[float, ...] = (0.7, 0.85, 1.0)


class CalibrationSettings(_Settings):
    """Calibration of the booster's margin, fitted on out-of-fold predictions."""

    method: Literal["platt", "isotonic"] = "platt"
    cv_folds: int = Field(5, ge=2, le=20)


class PopulationSettings(_Settings):
    """Who the model is developed for: SLE without prior kidney involvement.

    Patients meeting any criterion of the named groups of the criteria file (each a
    route to the condition, e.g. a biopsy, proteinuria > 0.5 g/24 h) are left out
    before the split; the attrition is reported with every run.
    """

    exclude_groups: tuple[str, ...] = ("kidney-involvement",)
    reference_date: date | None = Field(
        None,
        description="the date the criteria are read on (default: today); the "
        "records describe the patients at that date",
    )


class GateSettings(_Settings):
    """The three-valued gate: plausible values of missing predictors and the zone.

    The review zone auto-excludes patients like those whose observed 2-year event
    rate was at most ``gate − exclude_margin``, and auto-passes those like patients
    whose rate was above ``gate + pass_margin`` (riskmodel.zone); missing predictors
    are completed ``draws`` times by chained equations over ``sweeps`` passes.
    """

    exclude_margin: float = Field(0.15, gt=0, lt=1)
    pass_margin: float = Field(0.10, ge=0, lt=1)
    draws: int = Field(32, ge=8, le=256)
    sweeps: int = Field(3, ge=1, le=20)


class RegistrationCriteria(_Settings):
    """What every new model version must show on its held-out patients to be
    registered at all (the first version, which becomes the champion, included).

    Calibration-in-the-large here is the absolute difference between the mean
    predicted risk and the observed rate (probability scale). The AUROC floor is the
    published baseline's: RIFLE-LN reported AUROC 0.70 (Chan et al., Front Immunol
    2023; clinical.md §1.2); the lower 95 % bound of the new model's must exceed it.

    The slope's bounds allow for the sampling spread of the held-out set: on the
    default profile's 4,600 held-out patients (~450 events) the *true* risk's own
    slope has a standard deviation of about 0.05 between fresh test sets, so
    [0.9, 1.1] would refuse a perfectly calibrated model about one time in twenty
    before any estimation error; [0.8, 1.2] is two such deviations wider.
    """

    cal_slope_min: float = 0.8
    cal_slope_max: float = 1.2
    max_abs_citl: float = Field(0.02, ge=0, description="|mean predicted − observed|")
    max_ici: float = Field(0.02, ge=0)
    min_auroc_ci_low: float = Field(
        0.70, ge=0, le=1, description="published baseline AUROC to beat (RIFLE-LN)"
    )
    min_gate_events: int = Field(
        10,
        ge=0,
        description="held-out events needed among auto-passed and among reviewed "
        "patients to measure the review zone",
    )


class PromotionCriteria(_Settings):
    """What a challenger must show, on the same held-out data as the champion,
    besides the registration criteria."""

    auroc_not_below_champion_ci: bool = Field(
        True,
        description="challenger AUROC ≥ the lower 95 % CI bound of the champion's",
    )


class TrackingSettings(_Settings):
    """MLflow names. The tracking URI itself comes from the environment."""

    experiment: str = "ln-risk-2y"
    registered_model: str = "ln-risk"
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"


class TrainingConfig(_Settings):
    """Everything that determines a training run, hashed into ``config_hash``.

    The trial's gate is not a training setting: it is read from the criteria file
    (``criteria``; default NCT05585671's), the same file the service screens with.
    """

    seed: int = Field(7, ge=0)
    criteria: str | None = Field(
        None, description="criteria YAML whose risk gate applies (default: NCT05585671)"
    )
    cohort: CohortSettings = CohortSettings()
    split: SplitSettings = SplitSettings()
    model: ModelSettings = ModelSettings()
    search: SearchSettings = SearchSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    population: PopulationSettings = PopulationSettings()
    gate: GateSettings = GateSettings()
    registration: RegistrationCriteria = RegistrationCriteria()
    promotion: PromotionCriteria = PromotionCriteria()
    tracking: TrackingSettings = TrackingSettings()

    @cached_property
    def trial_criteria(self) -> TrialCriteria:
        """The criteria file in force (its ``risk_gate`` is the gate of every run)."""
        return load_criteria(self.criteria or DEFAULT_CRITERIA_PATH)

    @property
    def gate_threshold(self) -> float:
        """The risk gate of :meth:`trial_criteria` (risk must be above it)."""
        return self.trial_criteria.risk_gate.threshold

    def config_hash(self) -> str:
        """Short SHA-256 of the canonical JSON of this config."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def flat_params(self) -> dict[str, str | int | float | bool]:
        """``section.key`` → value, for ``mlflow.log_params``."""
        flat: dict[str, str | int | float | bool] = {}
        for key, value in self.model_dump(mode="json").items():
            if isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        return flat


def load_config(path: str | Path | None = None, **overrides: object) -> TrainingConfig:
    """Load a YAML profile (default: ``training/configs/default.yaml``).

    Args:
        path: YAML file; missing keys take the defaults above.
        **overrides: top-level keys to replace (e.g. ``seed=3``).

    Raises:
        pydantic.ValidationError: naming every invalid setting.
    """
    data = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text()) or {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return TrainingConfig.model_validate(data)
