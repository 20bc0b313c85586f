"""Training settings: validated objects with clinical defaults, loaded from YAML.

Bad values fail here, before any data is touched (the OHDSI PatientLevelPrediction
``create*Settings`` pattern).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

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


class ModelSettings(_Settings):
    """XGBoost hyperparameters (binary:logistic, histogram trees)."""

    family: Literal["xgboost"] = "xgboost"
    n_estimators: int = Field(400, ge=10, le=5000)
    max_depth: int = Field(3, ge=1, le=12)
    learning_rate: float = Field(0.04, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    n_jobs: int = Field(2, ge=1, le=64)


class CalibrationSettings(_Settings):
    """Calibration of the booster's margin, fitted on out-of-fold predictions."""

    method: Literal["platt", "isotonic"] = "platt"
    cv_folds: int = Field(5, ge=2, le=20)


class TrackingSettings(_Settings):
    """MLflow names. The tracking URI itself comes from the environment."""

    experiment: str = "ln-risk-2y"
    registered_model: str = "ln-risk"
    champion_alias: str = "champion"


class TrainingConfig(_Settings):
    """Everything that determines a training run, hashed into ``config_hash``."""

    seed: int = Field(7, ge=0)
    gate_threshold: float = Field(0.5, gt=0, lt=1)
    cohort: CohortSettings = CohortSettings()
    split: SplitSettings = SplitSettings()
    model: ModelSettings = ModelSettings()
    calibration: CalibrationSettings = CalibrationSettings()
    tracking: TrackingSettings = TrackingSettings()

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
