"""The promotion gate: ``champion`` moves only when a challenger passes the criteria.

Both models are scored on the same held-out patients — by default the challenger's own
test split, rebuilt from its run's logged data source and checked against the logged
digest — and the decision with every check and its numbers is logged as its own MLflow
run. The challenger must pass the registration criteria again on these patients, and
its AUROC must not fall below the champion's lower 95 % bound. A refused promotion
leaves the champion untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from data_schema import OUTCOME_COLUMN, frame_to_features, validate_cohort
from eligibility import TrialCriteria
from training.config import TrainingConfig
from training.data import (
    DATE_FORMAT_TAG,
    PopulationDefinition,
    SourceReader,
    config_population,
    read_cohort,
    read_source,
    split_by_patient,
)
from training.evaluation.metrics import classification_report
from training.registry import tracking
from training.registry.claim import acting_user, claim_move, tag_finished_run
from training.registry.gate import Check, absolute_checks, champion_check

PREVIOUS_CHAMPION_ALIAS = "previous-champion"


def _move_champion(
    config: TrainingConfig, run_id: str, champion: str, challenger: str
) -> Check | None:
    """Claim the move, then move the aliases; None, or the failed claim check.

    The champion's alias is set first: the claim protocol relies on the move
    following the claim quickly (:mod:`training.registry.claim`).
    """
    names = config.tracking
    name = names.registered_model
    claim = claim_move(
        name, names.champion_alias, champion=champion, challenger=challenger
    )
    if claim is None:
        tag_finished_run(run_id, {"decision": "refused", "claim": "lost"})
        return Check(
            "champion_unchanged", 0.0, f"@{names.champion_alias} still v{champion}",
            passed=False,
        )  # fmt: skip
    try:
        tracking.set_alias(name, names.champion_alias, challenger)
    except Exception:  # e.g. the team server's alias guard: the caller reports it
        tag_finished_run(run_id, {"decision": "refused", "claim": "move refused"})
        raise
    tracking.set_alias(name, PREVIOUS_CHAMPION_ALIAS, champion)
    tracking.delete_alias(name, names.challenger_alias)
    tag_finished_run(run_id, {"decision": "promoted", "claim": claim.token})
    return None


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
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    config: TrainingConfig,
) -> tuple[bool, tuple[Check, ...]]:
    """Apply the criteria to metrics computed on the same patients."""
    checks = absolute_checks(challenger, config.registration)
    if config.promotion.auroc_not_below_champion_ci and champion is not None:
        checks = (champion_check(challenger, champion), *checks)
    return all(c.passed for c in checks), checks


def held_out_of_run(
    run_id: str,
    criteria: TrialCriteria,
    readers: Mapping[str, SourceReader] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Rebuild a training run's held-out test set and check it against its digest.

    The run's population (the criteria groups it left out, on the day it read them)
    is applied again before the split, as the run did.

    Args:
        run_id: the training (or recalibration) run.
        criteria: the criteria file whose groups define the population.
        readers: readers of non-file data sources, by scheme (``synthetic``).
    """
    tags = tracking.run_tags_of(run_id)
    params = tracking.run_params_of(run_id)
    source = tags["data_source"]
    date_format = tags.get(DATE_FORMAT_TAG)
    cohort = validate_cohort(read_source(source, readers, date_format))
    population = PopulationDefinition.from_tags(tags)
    if population is not None:
        cohort, _ = population.apply(cohort, criteria)
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
    expected = tags.get("test_digest")
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
    readers: Mapping[str, SourceReader] | None = None,
    date_format: str | None = None,
) -> PromotionDecision:
    """Evaluate champion and challenger on the same patients; move the alias if earned.

    ``date_format`` is the ``strftime`` format of ``cohort_path``'s dates (None: ISO
    8601); the challenger's own test set is read with the format its run recorded.

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
        data, _ = config_population(config).apply(
            validate_cohort(read_cohort(cohort_path, date_format)),
            config.trial_criteria,
        )
        described = source = str(Path(cohort_path).resolve())
    else:
        data, described = held_out_of_run(
            ch_version.run_id, config.trial_criteria, readers
        )
        source = tracking.run_tags_of(ch_version.run_id).get("data_source", described)
    X, y = frame_to_features(data), data[OUTCOME_COLUMN].to_numpy(int)
    gate = config.gate_threshold
    ch_metrics = classification_report(y, challenger.predict_proba(X), gate)
    cp_metrics = classification_report(y, champion.predict_proba(X), gate)
    passed, checks = decide(ch_metrics, cp_metrics, config)
    promote_now = passed and not dry_run
    with tracking.tracked_run(
        config,
        kind="promotion",
        name=f"promote-v{ch_version.version}-over-v{cp_version.version}",
        model_family=challenger.metadata.get("model_family", challenger.kind),
        data=data,
        source=source,
        registered_model=names.registered_model,
        # "claiming" until the move is claimed and made, after the run has ended
        decision="claiming" if promote_now else "refused",
        dry_run=dry_run,
        promoted_by=acting_user(),
        champion_version=cp_version.version,
        challenger_version=ch_version.version,
        evaluated_on=described,
    ) as run:
        run.params(config.registration.model_dump(), prefix="criteria.")
        run.params(config.promotion.model_dump(), prefix="criteria.")
        run.metrics(ch_metrics, prefix="challenger_")
        run.metrics(cp_metrics, prefix="champion_")
        run.json(
            {"checks": [asdict(c) for c in checks], "passed": passed},
            "promotion/decision.json",
        )
    if promote_now:
        lost = _move_champion(
            config, run.run_id, str(cp_version.version), str(ch_version.version)
        )
        if lost is not None:
            promote_now, checks = False, (*checks, lost)
    return PromotionDecision(
        promote=promote_now,
        checks=checks,
        champion_version=str(cp_version.version),
        challenger_version=str(ch_version.version),
        evaluated_on=described,
        n_patients=len(data),
        run_id=run.run_id,
    )
