"""The promotion gate: ``champion`` moves only when a challenger passes the criteria.

Both models are scored on the same held-out patients — by default the challenger's own
test split, rebuilt from its run's logged data source and checked against the logged
digest — and the decision with every check and its numbers is logged as its own MLflow
run. A refused promotion leaves the champion untouched.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import mlflow
import pandas as pd
from mlflow import MlflowClient

from data_schema import OUTCOME_COLUMN, frame_to_features, validate_cohort
from training import tracking
from training.config import PromotionCriteria, TrainingConfig
from training.metrics import classification_report
from training.pipeline import read_cohort, split_by_patient
from training.synthetic import generate_cohort

PREVIOUS_CHAMPION_ALIAS = "previous-champion"


@dataclass(frozen=True)
class Check:
    """One promotion criterion: the challenger's value, the limit, the verdict."""

    name: str
    value: float
    limit: str
    passed: bool

    def __str__(self) -> str:
        mark = "pass" if self.passed else "FAIL"
        return f"[{mark}] {self.name} = {self.value:.4g} (required {self.limit})"


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    checks: tuple[Check, ...]
    champion_version: str
    challenger_version: str
    evaluated_on: str
    n_patients: int
    run_id: str = ""

    @property
    def reasons(self) -> list[str]:
        return [str(c) for c in self.checks if not c.passed] or ["all criteria met"]


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    criteria: PromotionCriteria,
) -> tuple[bool, tuple[Check, ...]]:
    """Apply the criteria to metrics computed on the same patients.

    A metric that could not be computed (NaN) fails its check.
    """

    def ok(passed: bool, *values: float) -> bool:
        return passed and all(math.isfinite(v) for v in values)

    checks: list[Check] = []
    if criteria.auroc_not_below_champion_ci and champion is not None:
        floor = champion["auroc_ci_low"]
        checks.append(
            Check(
                "auroc_vs_champion",
                challenger["auroc"],
                f"≥ champion's lower 95% CI bound {floor:.4f}",
                ok(challenger["auroc"] >= floor, challenger["auroc"], floor),
            )
        )
    slope = challenger["cal_slope"]
    checks.append(
        Check(
            "cal_slope",
            slope,
            f"in [{criteria.cal_slope_min}, {criteria.cal_slope_max}]",
            ok(criteria.cal_slope_min <= slope <= criteria.cal_slope_max, slope),
        )
    )
    citl = abs(challenger["mean_predicted"] - challenger["prevalence"])
    checks.append(
        Check(
            "abs_mean_predicted_minus_observed",
            citl,
            f"≤ {criteria.max_abs_citl}",
            ok(citl <= criteria.max_abs_citl, citl),
        )
    )
    checks.append(
        Check(
            "ici",
            challenger["ici"],
            f"≤ {criteria.max_ici}",
            ok(challenger["ici"] <= criteria.max_ici, challenger["ici"]),
        )
    )
    return all(c.passed for c in checks), tuple(checks)


def synthetic_source_settings(source: str) -> dict[str, object]:
    """Generator arguments recorded in a ``synthetic://`` data source."""
    query = parse_qs(urlparse(source).query)
    return {
        "n": int(query["n"][0]),
        "seed": int(query["seed"][0]),
        "incidence": float(query["incidence"][0]),
        "shift": query["shift"][0],
    }


def held_out_of_run(run_id: str) -> tuple[pd.DataFrame, str]:
    """Rebuild a training run's held-out test set and check it against its digest."""
    run = MlflowClient().get_run(run_id)
    source = run.data.tags["data_source"]
    if source.startswith("synthetic://"):
        cohort = generate_cohort(**synthetic_source_settings(source))
    else:
        cohort = read_cohort(source)
    cohort = validate_cohort(cohort)
    params = run.data.params
    needed = ("seed", "split.test_fraction", "split.stratify")
    if any(key not in params for key in needed):
        raise ValueError(
            f"run {run_id[:8]} does not record how its test set was split "
            f"({', '.join(needed)}); pass --cohort to evaluate on a file"
        )
    _, test = split_by_patient(
        cohort,
        float(params["split.test_fraction"]),
        int(params["seed"]),
        params["split.stratify"] == "True",
    )
    expected = run.data.tags.get("test_digest")
    digest = tracking.dataset_digest(test, source=source)
    if expected and digest != expected:
        raise ValueError(
            f"the rebuilt test set of run {run_id[:8]} has digest {digest}, not the "
            f"logged {expected}: its data source changed; pass --cohort explicitly"
        )
    return test, f"held-out test set of run {run_id[:8]} ({source})"


def promote(
    config: TrainingConfig,
    *,
    cohort_path: str | Path | None = None,
    dry_run: bool = False,
) -> PromotionDecision:
    """Evaluate champion and challenger on the same patients; move the alias if earned.

    Raises:
        LookupError: there is no challenger (or no champion) registered.
    """
    tracking.configure()
    names = config.tracking
    challenger, ch_version = tracking.load_registered(
        names.registered_model, names.challenger_alias
    )
    champion, cp_version = tracking.load_registered(
        names.registered_model, names.champion_alias
    )
    if cohort_path is not None:
        data = validate_cohort(read_cohort(cohort_path))
        described = str(Path(cohort_path).resolve())
    else:
        data, described = held_out_of_run(ch_version.run_id)
    X, y = frame_to_features(data), data[OUTCOME_COLUMN].to_numpy(int)
    gate = config.gate_threshold
    ch_metrics = classification_report(y, challenger.predict_proba(X), gate)
    cp_metrics = classification_report(y, champion.predict_proba(X), gate)
    passed, checks = decide(ch_metrics, cp_metrics, config.promotion)
    promote_now = passed and not dry_run

    if cohort_path is not None:
        source = described
    else:
        challenger_run = MlflowClient().get_run(ch_version.run_id)
        source = challenger_run.data.tags.get("data_source", described)
    experiment_id = tracking.ensure_experiment(names.experiment)
    run_name = f"promote-v{ch_version.version}-over-v{cp_version.version}"
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        tracking.log_tags(
            tracking.run_tags(
                run_kind="promotion",
                model_family=challenger.metadata.get("model_family", challenger.kind),
                data_digest=tracking.dataset_digest(data, source=source),
                data_source=source,
                config_hash=config.config_hash(),
                gate_threshold=gate,
                registered_model=names.registered_model,
                decision="promoted" if promote_now else "refused",
                dry_run=dry_run,
                champion_version=cp_version.version,
                challenger_version=ch_version.version,
                evaluated_on=described,
            )
        )
        mlflow.log_params(
            {f"criteria.{k}": v for k, v in config.promotion.model_dump().items()}
        )
        mlflow.log_metrics({f"challenger_{k}": v for k, v in ch_metrics.items()})
        mlflow.log_metrics({f"champion_{k}": v for k, v in cp_metrics.items()})
        mlflow.log_dict(
            {"checks": [asdict(c) for c in checks], "passed": passed},
            "promotion/decision.json",
        )
    if promote_now:
        client = MlflowClient()
        client.set_registered_model_alias(
            names.registered_model, PREVIOUS_CHAMPION_ALIAS, str(cp_version.version)
        )
        client.set_registered_model_alias(
            names.registered_model, names.champion_alias, str(ch_version.version)
        )
        client.delete_registered_model_alias(
            names.registered_model, names.challenger_alias
        )
    return PromotionDecision(
        promote=promote_now,
        checks=checks,
        champion_version=str(cp_version.version),
        challenger_version=str(ch_version.version),
        evaluated_on=described,
        n_patients=len(data),
        run_id=run.info.run_id,
    )
