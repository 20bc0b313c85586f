"""Hand a registered MLflow model to the BentoML model store.

Besides ``training/registry/``, this is the one module that touches MLflow. It
copies the pickle-free model files (``model.json`` + ``booster.ubj``) of
``models:/<name>@<alias>`` into a new BentoML model and records where it came from: the
MLflow model name, version and alias, the run id and the training data digest. The
service then depends on ``BENTOML_HOME`` only, not on the tracking server.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import bentoml
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from riskmodel import ARTIFACT_DIR, LNRiskModel

BENTO_MODEL_NAME = "ln-risk"


class ModelImportError(RuntimeError):
    """The registered model could not be found or is not in the expected format."""


@dataclass(frozen=True)
class ImportedModel:
    tag: str
    mlflow_name: str
    mlflow_version: str
    run_id: str
    data_digest: str
    reused: bool


def _latest_if_same(
    mlflow_name: str, version: str, run_id: str
) -> bentoml.Model | None:
    """The store's ``ln-risk:latest`` if it already holds this MLflow version.

    Only the latest model counts: the service serves ``ln-risk:latest``, so after a
    rollback to an older version that version must be imported again as the newest.
    """
    try:
        latest = bentoml.models.get(f"{BENTO_MODEL_NAME}:latest")
    except bentoml.exceptions.NotFound:
        return None
    info = latest.info
    same = (
        info.labels.get("mlflow_model") == mlflow_name
        and info.labels.get("mlflow_version") == version
        and info.metadata.get("mlflow_run_id") == run_id
    )
    return latest if same else None


def import_registered_model(
    mlflow_name: str = "ln-risk", alias: str = "champion", *, force: bool = False
) -> ImportedModel:
    """Copy ``models:/<mlflow_name>@<alias>`` into the BentoML store as ``ln-risk``.

    The MLflow tracking/registry URI must already be configured by the caller.
    Importing the version that ``ln-risk:latest`` already holds is a no-op unless
    ``force`` is set.

    Raises:
        ModelImportError: no version has that alias, or its files are not a saved
            :class:`riskmodel.LNRiskModel`.
    """
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(mlflow_name, alias)
    except MlflowException as exc:
        raise ModelImportError(
            f"no model version registered as {mlflow_name}@{alias} in "
            f"{mlflow.get_registry_uri()} — train one first (lnrisk train)"
        ) from exc
    number = str(version.version)  # an int in some MLflow versions
    run = client.get_run(version.run_id)
    digest = run.data.tags.get("data_digest", "unknown")
    if not force and (found := _latest_if_same(mlflow_name, number, run.info.run_id)):
        return ImportedModel(
            str(found.tag), mlflow_name, number, run.info.run_id, digest, True
        )

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{mlflow_name}/{number}"))
    candidates = list(local.rglob(f"{ARTIFACT_DIR}/model.json"))
    if not candidates:
        raise ModelImportError(
            f"{mlflow_name} version {number} has no {ARTIFACT_DIR}/model.json "
            "artifact; it was not logged by this project's training pipeline"
        )
    source_dir = candidates[0].parent
    loaded = LNRiskModel.load(source_dir)  # fail here, not at serve time
    metadata = {
        "mlflow_model": mlflow_name,
        "mlflow_version": number,
        "mlflow_alias": alias,
        "mlflow_run_id": run.info.run_id,
        "mlflow_model_uri": f"models:/{mlflow_name}/{number}",
        "data_digest": digest,
        "config_hash": run.data.tags.get("config_hash", "unknown"),
        "git_commit": run.data.tags.get("git_commit", "unknown"),
        "calibration": loaded.calibration.method,
    }
    labels = {
        "mlflow_model": mlflow_name,
        "mlflow_version": number,
        "alias": alias,
        "format": "xgboost-ubj+json",
    }
    with bentoml.models.create(
        BENTO_MODEL_NAME, labels=labels, metadata=metadata, module="riskmodel"
    ) as bento_model:
        for item in source_dir.iterdir():
            shutil.copy2(item, Path(bento_model.path) / item.name)
    return ImportedModel(
        str(bento_model.tag), mlflow_name, number, run.info.run_id, digest, False
    )
