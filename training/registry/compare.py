"""Runs side by side: ``lnrisk compare`` and the model-comparison notebook.

Every run carries the same tag keys (:data:`.tracking.RUN_TAG_KEYS`) and its
evaluation the same metric keys (``REPORT_METRIC_KEYS`` of the evaluation report), so
two runs line up key by key. :func:`compare_table` does that for any two runs;
:func:`family_table` lines up one training run per candidate family (logistic
regression, the RIFLE-LN baseline, XGBoost) on the same held-out patients with the
true risk (oracle) beside them; :func:`candidate_runs` finds those runs in the
tracking store, training the missing ones.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.config import TrainingConfig
from training.evaluation.metrics import METRIC_KEYS, view_keys
from training.evaluation.report import REPORT_METRIC_KEYS
from training.registry import tracking
from training.registry.gate import RegistrationRefusedError

SECTIONS: tuple[str, ...] = ("tags", "params", "metrics")
"""Row groups of :func:`compare_table`, in order."""

FAMILIES: tuple[str, ...] = ("logistic", "rifle_ln", "xgboost")
"""Candidate families compared by the model-comparison notebook."""

FAMILY_KEYS: tuple[str, ...] = view_keys("family")
"""Metric keys (of the headline ``METRIC_KEYS``) in :func:`family_table`."""

ORACLE_COLUMN = "true risk (oracle)"

REPORT_ARTIFACT = "evaluation/report.html"
"""Where every evaluating run keeps its HTML evaluation report."""

# MLflow's own bookkeeping tags, not the project's.
_HIDDEN_TAG_PREFIX = "mlflow."


@dataclass(frozen=True)
class RunSnapshot:
    """What a run logged: its name, tags, params and latest metric values."""

    run_id: str
    run_name: str
    experiment_id: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``run name (first 8 characters of the id)``."""
        return f"{self.run_name} ({self.run_id[:8]})"


def snapshot(run_id: str) -> RunSnapshot:
    """Read a run from the configured tracking store.

    Raises:
        LookupError: no such run.
    """
    try:
        run = MlflowClient().get_run(run_id)
    except MlflowException as exc:
        raise LookupError(f"no run {run_id!r} in {tracking.tracking_uri()}") from exc
    return RunSnapshot(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment_id=run.info.experiment_id,
        tags={
            k: v
            for k, v in run.data.tags.items()
            if not k.startswith(_HIDDEN_TAG_PREFIX)
        },
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def resolve_run(ref: str, experiment: str) -> str:
    """The full run id of ``ref``: a run id, or a unique prefix of one (≥ 6
    characters, as ``lnrisk`` prints them) among the runs of ``experiment``.

    Raises:
        LookupError: no run, or several runs, match.
    """
    client = MlflowClient()
    try:
        return client.get_run(ref).info.run_id
    except MlflowException:
        pass
    exp = client.get_experiment_by_name(experiment)
    if len(ref) < 6 or exp is None:
        raise LookupError(f"no run {ref!r} in {tracking.tracking_uri()}")
    matches: list[str] = []
    token = None
    while True:
        page = client.search_runs([exp.experiment_id], page_token=token)
        matches += [r.info.run_id for r in page if r.info.run_id.startswith(ref)]
        token = page.token
        if not token:
            break
    if len(matches) != 1:
        found = "no run" if not matches else f"{len(matches)} runs"
        raise LookupError(f"{found} of experiment {experiment!r} start with {ref!r}")
    return matches[0]


def run_of_alias(registered_model: str, alias: str) -> str:
    """The run that logged the version behind ``registered_model@alias``.

    Raises:
        LookupError: the alias is not set.
    """
    version = tracking.champion_version(registered_model, alias)
    if version is None or not version.run_id:
        raise LookupError(f"no registered model {registered_model}@{alias}")
    return version.run_id


# ── two runs ─────────────────────────────────────────────────────────────────


def _number(value: Any) -> float | None:
    """A finite or NaN float for numbers and numeric strings; None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _same(a: Any, b: Any, rel_tol: float) -> bool:
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-12)
    return a == b


def _ordered(keys: Iterable[str], first: Sequence[str]) -> list[str]:
    keys = set(keys)
    return [k for k in first if k in keys] + sorted(keys - set(first))


def compare_table(
    a: RunSnapshot,
    b: RunSnapshot,
    *,
    sections: Sequence[str] = SECTIONS,
    only_differences: bool = False,
    rel_tol: float = 1e-9,
) -> pd.DataFrame:
    """Tags, params and metrics of two runs, key by key, differences marked.

    Tags come in :data:`.tracking.RUN_TAG_KEYS` order, metrics in
    ``REPORT_METRIC_KEYS`` order, then the rest alphabetically.
    A key one run lacks shows None on that side and counts as a difference.

    Args:
        a: the reference run (e.g. the champion).
        b: the run compared with it (e.g. the challenger).
        sections: which of "tags", "params", "metrics" to include.
        only_differences: keep the rows that differ only.
        rel_tol: relative tolerance under which two numbers are equal.

    Returns:
        Columns section, key, a, b (None where the run lacks the key), delta
        (b − a when both are numbers; NaN otherwise and for tags) and differs.
    """
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; use {SECTIONS}")
    first: dict[str, Sequence[str]] = {
        "tags": tracking.RUN_TAG_KEYS,
        "params": (),
        "metrics": REPORT_METRIC_KEYS,
    }
    rows = []
    for section in sections:
        left: Mapping[str, Any] = getattr(a, section)
        right: Mapping[str, Any] = getattr(b, section)
        for key in _ordered({*left, *right}, first[section]):
            x, y = left.get(key), right.get(key)
            nx, ny = _number(x), _number(y)
            delta = ny - nx if nx is not None and ny is not None else None
            if section == "tags":
                delta = None  # a digest or commit that parses as a number is no amount
            differs = (
                not _same(x, y, rel_tol) if x is not None and y is not None else True
            )
            rows.append(
                {
                    "section": section,
                    "key": key,
                    "a": x,
                    "b": y,
                    "delta": delta,
                    "differs": differs,
                }
            )
    table = pd.DataFrame(rows, columns=["section", "key", "a", "b", "delta", "differs"])
    if only_differences:
        table = table[table["differs"]].reset_index(drop=True)
    return table


def format_value(value: Any) -> str:
    """A cell of the printed table: metrics to 4 significant digits, None "—".

    Tags and params are shown as logged (strings).
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def format_delta(delta: float | None) -> str:
    """A signed difference (b − a), or "" when there is none to show."""
    if delta is None or math.isnan(delta) or delta == 0:
        return ""
    return f"{delta:+.4g}"


# ── candidate families ───────────────────────────────────────────────────────


def candidate_config(
    base: TrainingConfig, family: str, registered_model: str
) -> TrainingConfig:
    """``base`` with another model family, registered under ``registered_model``.

    The comparison's candidates go to their own registered model so that training
    them never moves the aliases of the served one.
    """
    return base.model_copy(
        update={
            "model": base.model.model_copy(update={"family": family}),
            "tracking": base.tracking.model_copy(
                update={"registered_model": registered_model}
            ),
        }
    )


def find_train_run(
    config: TrainingConfig, family: str, *, data_source: str
) -> RunSnapshot | None:
    """The latest finished training run of ``family`` on the same patients.

    Same patients: the same data source and the same split (seed, test fraction,
    stratification), so every run found for one config has the same held-out test
    set.
    """
    exp = MlflowClient().get_experiment_by_name(config.tracking.experiment)
    if exp is None:
        return None
    source = data_source
    flt = " and ".join(
        [
            "attributes.status = 'FINISHED'",
            "tags.run_kind = 'train'",
            f"tags.model_family = '{family}'",
            f"tags.data_source = '{source}'",
            f"params.seed = '{config.seed}'",
            f"params.`split.test_fraction` = '{config.split.test_fraction}'",
            f"params.`split.stratify` = '{config.split.stratify}'",
        ]
    )
    runs = MlflowClient().search_runs(
        [exp.experiment_id],
        filter_string=flt,
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return snapshot(runs[0].info.run_id) if runs else None


def candidate_runs(
    config: TrainingConfig,
    cohort: pd.DataFrame,
    source: str,
    families: Sequence[str] = FAMILIES,
    *,
    registered_model: str = "ln-risk-candidates",
    train_missing: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, RunSnapshot]:
    """One training run per family on the same cohort and split.

    A finished run found by :func:`find_train_run` is reused, whichever registered
    model it went to; a missing one is trained with :func:`candidate_config`. A
    candidate the registration gate refuses (the RIFLE-LN baseline usually is) still
    has its complete run, which is what the comparison reads.

    Args:
        config: the training profile (split, hyperparameters).
        cohort: the cohort every candidate is developed and tested on.
        source: its data source (a path or ``synthetic://…``), recorded by runs.
        families: model families to compare.
        registered_model: where newly trained candidates are registered.
        train_missing: train the families that have no run (else skip them).
        log: called with one line per family (reused or trained).

    Returns:
        family → run, in the order of ``families``.
    """
    from training.pipeline import train

    tracking.configure()
    out: dict[str, RunSnapshot] = {}
    for family in families:
        run = find_train_run(config, family, data_source=source)
        if run is not None:
            log(f"{family}: reusing run {run.label}")
        elif train_missing:
            cfg = candidate_config(config, family, registered_model)
            started = time.perf_counter()
            try:
                run_id = train(cfg, cohort, source, show_progress=False).run_id
            except RegistrationRefusedError as refusal:
                run_id = refusal.run_id
            run = snapshot(run_id)
            seconds = time.perf_counter() - started
            log(f"{family}: trained run {run.label} in {seconds:.0f} s")
        else:
            log(f"{family}: no run")
            continue
        out[family] = run
    return out


def family_table(
    runs: Mapping[str, RunSnapshot], keys: Sequence[str] = FAMILY_KEYS
) -> pd.DataFrame:
    """Held-out metrics of each family's run, the true risk (oracle) beside them.

    Args:
        runs: family → training run, all on the same held-out patients.
        keys: metric keys (of :data:`training.evaluation.metrics.METRIC_KEYS`).

    Returns:
        One row per key, one column per family, then :data:`ORACLE_COLUMN` (the
        ``oracle_<key>`` metrics, which every run on these patients shares; NaN
        on real data).

    Raises:
        ValueError: the runs were scored on different test sets, or a key is not
            a headline metric.
    """
    unknown = set(keys) - set(METRIC_KEYS)
    if unknown:
        raise ValueError(f"not headline metric keys: {sorted(unknown)}")
    digests = {r.tags.get("test_digest") for r in runs.values()}
    if len(digests) > 1:
        raise ValueError(
            f"runs were scored on different test sets (test_digest {digests}); "
            "compare runs of one cohort and split"
        )
    table = pd.DataFrame(
        {
            family: [run.metrics.get(k, math.nan) for k in keys]
            for family, run in runs.items()
        },
        index=pd.Index(keys, name="metric"),
    )
    first = next(iter(runs.values()), None)
    table[ORACLE_COLUMN] = [
        first.metrics.get(f"oracle_{k}", math.nan) if first else math.nan for k in keys
    ]
    return table


def compare_page_url(
    base_url: str, run_ids: Sequence[str], experiment_ids: Sequence[str]
) -> str:
    """The MLflow UI page that shows runs side by side (MLflow 3 route)."""
    runs = quote(json.dumps(list(run_ids)), safe="")
    experiments = quote(json.dumps(sorted(set(experiment_ids))), safe="")
    return (
        f"{base_url.rstrip('/')}/#/compare-runs?runs={runs}&experiments={experiments}"
    )


def run_artifact_url(
    base_url: str, experiment_id: str, run_id: str, path: str = REPORT_ARTIFACT
) -> str:
    """The MLflow UI page showing one artifact of a run (default: the HTML report)."""
    return (
        f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        f"/artifacts/{path}"
    )


__all__ = [
    "FAMILIES",
    "FAMILY_KEYS",
    "ORACLE_COLUMN",
    "REPORT_ARTIFACT",
    "SECTIONS",
    "RunSnapshot",
    "candidate_config",
    "candidate_runs",
    "compare_page_url",
    "compare_table",
    "family_table",
    "find_train_run",
    "format_delta",
    "format_value",
    "resolve_run",
    "run_artifact_url",
    "run_of_alias",
    "snapshot",
]
