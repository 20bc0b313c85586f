"""How the model travels through MLflow: a pyfunc "model from code", no pickle.

The saved model directory (:class:`riskmodel.LNRiskModel`) is logged as an artifact
beside ``pyfunc_model.py``, the file MLflow runs to load it. Its input is a DataFrame
of patient-record columns; MLflow column types have no nullable boolean or integer,
and missing is a real state here, so flags and counts travel as doubles
(1.0 / 0.0 / NaN), exactly as the model sees them (:func:`to_pyfunc_frame`).
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

import data_schema
import riskmodel
from data_schema import field_specs, model_features
from riskmodel import ARTIFACT_DIR

_MLFLOW_TYPES = {"float": "double", "int": "double", "bool": "double"}
#: Three synthetic patients (never real data), the input example of every model.
INPUT_EXAMPLE = Path(__file__).with_name("input_example.json")


def to_pyfunc_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes → the plain ones MLflow's schema accepts."""
    out = df.copy()
    for col in out.columns:
        dtype = out[col].dtype
        if isinstance(dtype, pd.BooleanDtype | pd.Int64Dtype) or dtype is np.dtype(
            bool
        ):
            out[col] = out[col].astype("float64")
        elif isinstance(dtype, pd.StringDtype):
            out[col] = out[col].astype(object)
    return out


def input_example() -> pd.DataFrame:
    """The logged input example: synthetic patients as the pyfunc frame."""
    rows = json.loads(INPUT_EXAMPLE.read_text())
    frame = pd.DataFrame(rows).astype({c: "float64" for c in rows[0] if c != "sex"})
    return to_pyfunc_frame(frame)


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
        cols.append(
            ColSpec(_MLFLOW_TYPES.get(kind, "string"), name, required=name == "sex")
        )
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


def log_pyfunc_model(
    model_dir: Path,
    registered_model: str,
    version_tags: dict[str, str] | None = None,
) -> tuple[str, str]:
    """Log a saved model in the active run and register it; (model URI, version).

    ``version_tags`` are set on the new version as it is created (one request).
    """
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={ARTIFACT_DIR: str(model_dir)},
        code_paths=[
            str(Path(riskmodel.__file__).parent),
            str(Path(data_schema.__file__).parent),
        ],
        signature=model_signature(),
        input_example=input_example(),
        pip_requirements=serving_requirements(),
    )
    version = mlflow.register_model(
        info.model_uri, registered_model, tags=version_tags or None
    )
    return info.model_uri, str(version.version)
