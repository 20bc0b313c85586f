"""Everything that talks to MLflow during training: store, runs, registry, aliases.

MLflow is touched in two places in this project: here, and in the import step that
hands a registered model to BentoML (``serving/import_model.py``).

Default store: a SQLite file and an artifact folder under ``$LNRISK_HOME`` (default
``./.lnrisk``). ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_REGISTRY_URI``) point a team at
its own server instead. Nothing is configured at import time: entry points call
:func:`configure`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import riskmodel
from data_schema import OUTCOME_COLUMN, field_specs, model_features
from riskmodel import LNRiskModel
from riskmodel.pyfunc import ARTIFACT_KEY, to_pyfunc_frame

PROJECT_ROOT = Path(__file__).resolve().parent.parent

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
)
"""Tags every run carries, whatever its kind, so runs compare in the MLflow UI.

``run_kind`` is one of :data:`RUN_KINDS`; ``data_digest`` is the MLflow digest of
the data the run fitted or scored; ``config_hash`` that of the training config in
force. Run kinds add their own tags (e.g. ``test_digest``, ``model_version``).
"""

RUN_KINDS: tuple[str, ...] = (
    "train",
    "external_validation",
    "recalibration",
    "promotion",
)
"""Values of the ``run_kind`` tag."""

# MLflow column types have no nullable boolean or integer, and missing is a real state
# here, so flags and counts travel through the pyfunc interface as doubles
# (1.0 / 0.0 / NaN), exactly as the model sees them.
_MLFLOW_TYPES = {
    "float": "double",
    "int": "double",
    "bool": "double",
    "category": "string",
}


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


def configure() -> str:
    """Point MLflow at the configured store; returns the tracking URI."""
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).resolve().parent.mkdir(
            parents=True, exist_ok=True
        )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(os.environ.get("MLFLOW_REGISTRY_URI", uri))
    return uri


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it (with a local artifact root) if needed."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = _local_artifact_root(tracking_uri())
    return client.create_experiment(name, artifact_location=location)


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


def champion_version(name: str, alias: str) -> ModelVersion | None:
    """The model version behind ``name@alias``, or None if there is none."""
    try:
        return MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_signature() -> ModelSignature:
    """Explicit pyfunc signature: one optional column per model input field.

    Written by hand rather than inferred from a 3-row example, whose NaNs would make
    some columns required and others not (feasibility.md pitfall 5).
    """
    specs = field_specs()
    cols = []
    for feature in model_features():
        name = "sex" if feature == "male" else feature
        kind = specs[name].kind
        cols.append(ColSpec(_MLFLOW_TYPES[kind], name, required=(name == "sex")))
    return ModelSignature(
        inputs=Schema(cols), outputs=Schema([ColSpec("double", "risk_2y")])
    )


def _requirement(dist: str) -> str:
    return f"{dist}=={metadata.version(dist)}"


def serving_requirements() -> list[str]:
    """Pinned requirements of the logged pyfunc (no slow requirement inference)."""
    return [
        _requirement(d)
        for d in ("mlflow", "xgboost-cpu", "numpy", "pandas", "pandera", "pydantic")
    ]


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str
    version: str
    alias: str  # the alias the new version received


def log_model_and_register(
    model_dir: Path,
    input_example: pd.DataFrame,
    *,
    registered_model: str,
    champion_alias: str,
    challenger_alias: str,
) -> LoggedModel:
    """Log the model (pyfunc from code, no pickle) in the active run and register it.

    The first version of a registered model becomes the champion. Every later one
    becomes the challenger; only the promotion gate (``lnrisk promote``) moves the
    champion.
    """
    root = Path(riskmodel.__file__).resolve().parent
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(root / "mlflow_pyfunc.py"),
        artifacts={ARTIFACT_KEY: str(model_dir)},
        code_paths=[str(root), str(PROJECT_ROOT / "data_schema")],
        signature=model_signature(),
        input_example=input_example,
        pip_requirements=serving_requirements(),
        registered_model_name=registered_model,
    )
    version = str(info.registered_model_version)  # an int in MLflow 3
    has_champion = champion_version(registered_model, champion_alias) is not None
    alias = challenger_alias if has_champion else champion_alias
    MlflowClient().set_registered_model_alias(registered_model, alias, version)
    return LoggedModel(mlflow.active_run().info.run_id, info.model_uri, version, alias)


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
    found = next(local.rglob(f"{ARTIFACT_KEY}/model.json"), None)
    if found is None:
        raise LookupError(f"{name} version {version.version} has no {ARTIFACT_KEY}")
    return LNRiskModel.load(found.parent, expected_features=model_features()), version


def _dataset(df: pd.DataFrame, *, name: str, source: str) -> Any:
    resolved: object = source
    if source.startswith("synthetic://"):
        # A generator call, recorded so a reviewer can regenerate the same cohort.
        resolved = CodeDatasetSource(tags={"generator": source})
    return mlflow.data.from_pandas(
        to_pyfunc_frame(df),
        source=resolved,
        targets=OUTCOME_COLUMN if OUTCOME_COLUMN in df else None,
        name=name,
    )


def dataset_digest(df: pd.DataFrame, *, source: str = "synthetic://") -> str:
    """The digest MLflow records for a cohort table (content hash)."""
    return _dataset(df, name="digest", source=source).digest


def log_dataset(df: pd.DataFrame, *, name: str, source: str, context: str) -> str:
    """``mlflow.log_input`` a cohort table; returns its digest.

    ``source`` is a file path, or a ``synthetic://`` description of the generator call.
    """
    dataset = _dataset(df, name=name, source=source)
    mlflow.log_input(dataset, context=context)
    return dataset.digest


def run_tags(
    *,
    run_kind: str,
    model_family: str,
    data_digest: str,
    data_source: str,
    config_hash: str,
    gate_threshold: float,
    **extra: Any,
) -> dict[str, str]:
    """Tags of one run: the common :data:`RUN_TAG_KEYS` plus the kind's own.

    The git commit and the cohort definition are filled in here; ``extra`` holds
    the tags only this run kind has (e.g. ``test_digest`` of a training run).

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
        "config_hash": config_hash,
        "cohort_definition": COHORT_DEFINITION,
        "gate_threshold": gate_threshold,
    }
    return {k: str(v) for k, v in {**common, **extra}.items()}


def log_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags({k: str(v) for k, v in tags.items()})


def load_model_card(run_id: str) -> tuple[str, str] | None:
    """The (Markdown, HTML) model card logged by a run, or None if it has none."""
    try:
        return (
            mlflow.artifacts.load_text(f"runs:/{run_id}/model_card/model_card.md"),
            mlflow.artifacts.load_text(f"runs:/{run_id}/model_card/model_card.html"),
        )
    except (MlflowException, OSError):
        return None
