"""MLflow's store, runs and registry, behind one tracked-run context manager.

Every job that records something (training, external validation, recalibration,
promotion) opens its run with :func:`tracked_run`, which points MLflow at the
configured store, creates the experiment if needed and sets the tags every run
carries (:data:`RUN_TAG_KEYS`), so runs compare in the MLflow UI. The job then logs
through the :class:`TrackedRun` it gets; no other module of the training path
imports MLflow.

Default store: a SQLite file and an artifact folder under ``$LNRISK_HOME`` (default
``./.lnrisk``). ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI``) point a team at
its own server instead. Nothing is configured at import time: :func:`configure`
runs when a job starts.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from data_schema import OUTCOME_COLUMN, model_features, without_truth
from riskmodel import ARTIFACT_DIR, LNRiskModel
from training.config import TrainingConfig
from training.evaluation.evaluate import Evaluation
from training.evaluation.model_card import ModelCardContext
from training.registry.evidence import log_evidence
from training.registry.gate import RegistrationRefusedError, registration_checks
from training.registry.pyfunc import log_pyfunc_model, to_pyfunc_frame

PROJECT_ROOT = Path(__file__).resolve().parents[2]

COHORT_DEFINITION = (
    "PatientRecord v1: adults with SLE (ACR 1997), one row per patient at screening; "
    "outcome new-onset LN within 24 months"
)
"""Who the model is for and what it predicts; tagged on every run."""

RUN_TAG_KEYS: tuple[str, ...] = (
    "run_kind",
    "model_family",
    "data_digest",
    "data_source",
    "git_commit",
    "config_hash",
    "cohort_definition",
    "gate_threshold",
    "criteria_version",
)
"""Tags every run carries, whatever its kind, so runs compare in the MLflow UI.

``run_kind`` is one of :data:`RUN_KINDS`; ``data_digest`` is the MLflow digest of
the data the run fitted or scored; ``config_hash`` that of the training config in
force; ``gate_threshold`` and ``criteria_version`` those of the criteria file in
force. Run kinds add their own tags (e.g. ``test_digest``, ``model_version``).
"""

RUN_KINDS: tuple[str, ...] = (
    "train",
    "external_validation",
    "recalibration",
    "promotion",
)
"""Values of the ``run_kind`` tag."""


# --- the store ------------------------------------------------------------------------
def lnrisk_home() -> Path:
    """Folder holding the default local stores (``$LNRISK_HOME`` or ``./.lnrisk``)."""
    return Path(os.environ.get("LNRISK_HOME", ".lnrisk")).resolve()


def tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or the local SQLite store under :func:`lnrisk_home`."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{lnrisk_home() / 'mlflow.db'}"


def _local_artifact_root(uri: str) -> str | None:
    """For a local SQLite store, keep artifacts beside the database file.

    (MLflow would otherwise put them in ``./mlruns`` of whatever folder the command
    ran in.) Remote stores choose their own artifact root.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix) :]).resolve().parent / "mlartifacts").as_uri()


HTTP_RETRY_DEFAULTS: dict[str, str] = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}
"""Bounded retries against a tracking server (the environment may override them).

MLflow's client retries connection errors and 408/429/5xx with exponential backoff;
its own defaults (7 retries, factor 2) wait minutes before a job learns that the
server is gone. These give up after about 1 + 2 + 4 + 8 s of backoff, which rides
out a server or database restart and still fails a job promptly.
"""


def configure() -> str:
    """Point MLflow at the configured store; returns the tracking URI."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).resolve().parent.mkdir(
            parents=True, exist_ok=True
        )
    if uri.startswith(("http://", "https://")):
        for key, value in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI", uri))
    return uri


def server_error_message(exc: BaseException) -> str | None:
    """A clear message for a tracking server's refusal or absence, else None.

    HTTP 403 names the permission the team server's roles grant; a server that
    cannot be reached (after the bounded retries) is named by its URL.
    """
    import requests

    uri = tracking_uri()
    text = str(exc)
    if isinstance(exc, requests.exceptions.RequestException):
        # artifact uploads through the server's proxy raise these directly
        return f"the tracking server {uri} cannot be reached: {text[-300:]}"
    if not isinstance(exc, MlflowException):
        return None
    if exc.error_code == "PERMISSION_DENIED" or "error code 403" in text:
        return (
            f"the tracking server {uri} refused this as user "
            f"{os.environ.get('MLFLOW_TRACKING_USERNAME', '(none)')!r}: permission "
            "denied. Logging runs and registering versions needs EDIT on the "
            "experiment and the registered model (role data-scientist); moving "
            "@champion needs MANAGE on the registered model (role release-manager). "
            f"Server said: {text[-300:]}"
        )
    if exc.error_code == "UNAUTHENTICATED" or "error code 401" in text:
        return (
            f"the tracking server {uri} did not accept the credentials: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if "Max retries exceeded" in text or "Connection refused" in text:
        return (
            f"the tracking server {uri} cannot be reached (gave up after "
            f"{os.environ.get('MLFLOW_HTTP_REQUEST_MAX_RETRIES', '?')} retries): "
            f"{text[-300:]}"
        )
    return None


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it (with a local artifact root) if needed.

    Jobs starting at once may both find no experiment: the one whose create loses
    reads the winner's.
    """
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = _local_artifact_root(tracking_uri())
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit() -> str:
    """The current git commit (with ``-dirty`` if there are local changes)."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


# --- the registry ---------------------------------------------------------------------
VERSION_STATE_TAG = "lnrisk.state"
"""Model-version tag: ``pending`` from registration until its run has finished,
then ``complete`` (or ``failed`` when the run failed). Only a complete version
receives an alias; versions registered before the tag existed carry none."""


def version_state(version: ModelVersion) -> str:
    """``pending``, ``complete`` or ``failed`` (an untagged version is complete)."""
    return (version.tags or {}).get(VERSION_STATE_TAG, "complete")


def set_version_state(name: str, version: str, state: str) -> None:
    MlflowClient().set_model_version_tag(name, version, VERSION_STATE_TAG, state)


def champion_version(name: str, alias: str) -> ModelVersion | None:
    """The model version behind ``name@alias``, or None if there is none."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_registered(name: str, ref: str) -> tuple[LNRiskModel, ModelVersion]:
    """Load ``name@alias`` or ``name/version`` (ref = alias or version number).

    Raises:
        LookupError: no such alias or version.
    """
    client = MlflowClient()
    try:
        version = (
            client.get_model_version(name, ref)
            if ref.isdigit()
            else client.get_model_version_by_alias(name, ref)
        )
    except MlflowException as exc:
        raise LookupError(f"no registered model {name} {ref!r}") from exc
    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}")
    )
    found = next(local.rglob(f"{ARTIFACT_DIR}/model.json"), None)
    if found is None:
        raise LookupError(f"{name} version {version.version} has no {ARTIFACT_DIR}")
    return LNRiskModel.load(found.parent, expected_features=model_features()), version


def set_alias(name: str, alias: str, version: str) -> None:
    """Point ``name@alias`` at ``version``; only a complete version may get one.

    Raises:
        ValueError: the version is pending or failed.
    """
    client = MlflowClient()
    state = version_state(client.get_model_version(name, version))
    if state != "complete":
        raise ValueError(f"{name} version {version} is {state}: it gets no alias")
    client.set_registered_model_alias(name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    MlflowClient().delete_registered_model_alias(name, alias)


def run_tags_of(run_id: str) -> dict[str, str]:
    """The tags of a logged run."""
    return dict(MlflowClient().get_run(run_id).data.tags)


def run_params_of(run_id: str) -> dict[str, str]:
    """The parameters of a logged run."""
    return dict(MlflowClient().get_run(run_id).data.params)


def load_model_card(run_id: str) -> tuple[str, str] | None:
    """The (Markdown, HTML) model card logged by a run, or None if it has none."""
    try:
        return (
            mlflow.artifacts.load_text(f"runs:/{run_id}/model_card/model_card.md"),
            mlflow.artifacts.load_text(f"runs:/{run_id}/model_card/model_card.html"),
        )
    except (MlflowException, OSError):
        return None


# --- datasets and tags ----------------------------------------------------------------
def _dataset(df: pd.DataFrame, *, name: str, source: str) -> Any:
    """An MLflow dataset of the columns a site's file could hold: its digest is the
    same whether or not a synthetic cohort carries its truth."""
    df = without_truth(df)
    resolved: object = source
    if "://" in source and not source.startswith("file://"):
        # A generator call (synthetic://…), recorded so a reviewer can regenerate it.
        resolved = CodeDatasetSource(tags={"generator": source})
    return mlflow.data.from_pandas(
        to_pyfunc_frame(df),
        source=resolved,
        targets=OUTCOME_COLUMN if OUTCOME_COLUMN in df else None,
        name=name,
    )


def dataset_digest(df: pd.DataFrame, *, source: str) -> str:
    """The digest MLflow records for a cohort table (content hash)."""
    return _dataset(df, name="digest", source=source).digest


def run_tags(
    *,
    run_kind: str,
    model_family: str,
    data_digest: str,
    data_source: str,
    config: TrainingConfig,
    **extra: Any,
) -> dict[str, str]:
    """Tags of one run: the common :data:`RUN_TAG_KEYS` plus the kind's own.

    The git commit, the cohort definition and the gate of the criteria file in
    force are filled in here; ``extra`` holds the tags only this run kind has.

    Raises:
        ValueError: an unknown run kind, or ``extra`` redefining a common key.
    """
    if run_kind not in RUN_KINDS:
        raise ValueError(f"run_kind must be one of {RUN_KINDS}, got {run_kind!r}")
    clash = sorted(set(extra) & set(RUN_TAG_KEYS))
    if clash:
        raise ValueError(f"extra tags redefine common keys: {clash}")
    common = {
        "run_kind": run_kind,
        "model_family": model_family,
        "data_digest": data_digest,
        "data_source": data_source,
        "git_commit": git_commit(),
        "config_hash": config.config_hash(),
        "cohort_definition": COHORT_DEFINITION,
        "gate_threshold": config.gate_threshold,
        "criteria_version": config.trial_criteria.criteria_version,
    }
    return {k: str(v) for k, v in {**common, **extra}.items()}


# --- one run --------------------------------------------------------------------------
@dataclass
class Registered:
    """A model version the registration gate let through."""

    run_id: str
    model_uri: str
    version: str
    alias: str  # the alias the new version received once its run finished


class TrackedRun:
    """The active MLflow run of one job, with the logging calls jobs need."""

    def __init__(self, run_id: str, name: str, config: TrainingConfig) -> None:
        self.run_id = run_id
        self.name = name
        self.config = config
        #: digest of the data the run fitted or scored (the ``data_digest`` tag)
        self.data_digest = ""
        #: set when the registration gate refused the model; raised once the run ends
        self.refused: RegistrationRefusedError | None = None
        #: the version registered by this run, pending until the run has finished
        self.registered: Registered | None = None

    def log_dataset(
        self, df: pd.DataFrame, *, name: str, source: str, context: str
    ) -> str:
        """``mlflow.log_input`` a cohort table; returns its digest."""
        dataset = _dataset(df, name=name, source=source)
        mlflow.log_input(dataset, context=context)
        return dataset.digest

    def tags(self, tags: Mapping[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        mlflow.log_params({f"{prefix}{k}": v for k, v in params.items()})

    def metrics(self, metrics: Mapping[str, float], prefix: str = "") -> None:
        mlflow.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()})

    def table(self, rows: pd.DataFrame, path: str) -> None:
        mlflow.log_table(rows, path)

    def json(self, data: Mapping[str, Any], path: str) -> None:
        mlflow.log_dict(dict(data), path)

    def evidence(
        self,
        evaluation: Evaluation,
        *,
        card: ModelCardContext | None = None,
        model_card: tuple[str, str] | None = None,
    ) -> None:
        """Report, plots and model card of an evaluation (:func:`log_evidence`)."""
        with tempfile.TemporaryDirectory() as tmp:
            log_evidence(evaluation, Path(tmp), context=card, model_card=model_card)

    def register(self, model: LNRiskModel, metrics: Mapping[str, float]) -> Registered:
        """Register ``model`` if it passes the registration gate on ``metrics``.

        The first registered version becomes the champion, every later one the
        challenger (only ``lnrisk promote`` moves the champion). The version is
        registered ``pending``; :func:`tracked_run` marks it complete and sets its
        alias only once the run has finished (a failed run leaves it ``failed``,
        without alias). The gate's checks are logged either way
        (``registration/decision.json``).

        Raises:
            RegistrationRefusedError: a check failed; nothing was registered.
        """
        checks = registration_checks(metrics, self.config.registration)
        passed = all(c.passed for c in checks)
        self.json(
            {"checks": [asdict(c) for c in checks], "passed": passed},
            "registration/decision.json",
        )
        names = self.config.tracking
        if not passed:
            self.tags({"registration": "refused"})
            raise RegistrationRefusedError(checks, self.run_id)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = model.save(Path(tmp) / ARTIFACT_DIR)
            uri, version = log_pyfunc_model(
                model_dir,
                names.registered_model,
                version_tags={VERSION_STATE_TAG: "pending", "run_id": self.run_id},
            )
        has_champion = champion_version(names.registered_model, names.champion_alias)
        alias = names.challenger_alias if has_champion else names.champion_alias
        self.tags(
            {
                "registration": "registered",
                "registered_model": names.registered_model,
                "model_version": version,
            }
        )
        self.registered = Registered(self.run_id, uri, version, alias)
        return self.registered

    def register_with_evidence(
        self,
        model: LNRiskModel,
        evaluation: Evaluation,
        card: Callable[[str | None], ModelCardContext],
    ) -> Registered | None:
        """:meth:`register`, then the evidence with the card of the new version.

        A refused model still gets its evidence logged (the card says it was not
        registered); :func:`tracked_run` raises the refusal once the run has ended,
        so the run itself is complete.
        """
        registered = None
        try:
            registered = self.register(model, evaluation.metrics)
        except RegistrationRefusedError as refusal:
            self.refused = refusal
        self.evidence(evaluation, card=card(registered and registered.version))
        return registered


@contextmanager
def tracked_run(
    config: TrainingConfig,
    *,
    kind: str,
    name: str,
    model_family: str,
    data: pd.DataFrame,
    source: str,
    log_data_as: tuple[str, str] | None = None,
    data_digest: str | None = None,
    **extra_tags: Any,
) -> Iterator[TrackedRun]:
    """Open a run of ``kind`` with the common tags; yield its :class:`TrackedRun`.

    Args:
        config: the training config in force (names, hash, criteria file).
        kind: one of :data:`RUN_KINDS`.
        name: the run's name in the UI.
        model_family: family of the model the run fits or scores.
        data: the table the run fitted or scored (its digest is tagged).
        source: where ``data`` came from (a path or ``synthetic://…``).
        log_data_as: (name, context) to log ``data`` as a run input, or None.
        data_digest: ``data``'s digest when the caller already has it.
        **extra_tags: the kind's own tags.
    """
    configure()
    experiment_id = ensure_experiment(config.tracking.experiment)
    tracked: TrackedRun | None = None
    try:
        with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
            tracked = TrackedRun(run.info.run_id, name, config)
            _start(
                tracked, data, source, kind, model_family, log_data_as, data_digest,
                extra_tags,
            )  # fmt: skip
            yield tracked
    except BaseException:
        if tracked is not None and tracked.registered is not None:
            _mark_failed(tracked.registered, config)
        raise
    if tracked.registered is not None:
        finish_registration(tracked.registered, config)
    if tracked.refused is not None:
        raise tracked.refused


def _start(
    tracked: TrackedRun,
    data: pd.DataFrame,
    source: str,
    kind: str,
    model_family: str,
    log_data_as: tuple[str, str] | None,
    data_digest: str | None,
    extra_tags: Mapping[str, Any],
) -> None:
    """Log the run's data and its common tags."""
    if log_data_as is None:
        tracked.data_digest = data_digest or dataset_digest(data, source=source)
    else:
        tracked.data_digest = tracked.log_dataset(
            data, name=log_data_as[0], source=source, context=log_data_as[1]
        )
    tracked.tags(
        run_tags(
            run_kind=kind,
            model_family=model_family,
            data_digest=tracked.data_digest,
            data_source=source,
            config=tracked.config,
            **extra_tags,
        )
    )


def finish_registration(registered: Registered, config: TrainingConfig) -> None:
    """Mark a finished run's version complete, then give it its alias.

    The champion is re-checked here: when jobs ran at once on a registry without a
    champion, only the first to finish takes ``@champion``; the others become the
    challenger.
    """
    names = config.tracking
    name = names.registered_model
    set_version_state(name, registered.version, "complete")
    if registered.alias == names.champion_alias:
        try:
            if champion_version(name, names.champion_alias) is None:
                set_alias(name, names.champion_alias, registered.version)
                return
        except MlflowException as exc:
            # The alias guard of a team server refuses a trainer who lost the race
            # for the first champion: the version becomes the challenger instead.
            if exc.error_code != "PERMISSION_DENIED":
                raise
        registered.alias = names.challenger_alias
    set_alias(name, registered.alias, registered.version)


def _mark_failed(registered: Registered, config: TrainingConfig) -> None:
    """Best effort: tag a failed run's version ``failed`` (the server may be gone)."""
    # If the server is gone it stays ``pending``: never aliased either way.
    with contextlib.suppress(MlflowException, OSError):
        set_version_state(
            config.tracking.registered_model, registered.version, "failed"
        )
