"""MLflow "models from code" entry point: MLflow stores this file as the model's code.

Loading the logged model runs it; the saved model directory (``model.json`` +
``booster.ubj``) arrives as the artifact :data:`riskmodel.ARTIFACT_DIR`. The file is
self-contained apart from ``riskmodel`` and ``data_schema``, which are logged beside it
as code paths. Never import this module from project code: its last line registers
the model with MLflow.

Input: a DataFrame with the patient-record columns the model uses (absent columns
count as missing; flags and counts as doubles 1.0 / 0.0 / NaN, since MLflow column
types have no nullable boolean). Output: the calibrated 2-year risk per row.
"""

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from data_schema import frame_to_features, model_features
from riskmodel import ARTIFACT_DIR, LNRiskModel


class LNRiskPyfunc(PythonModel):
    """pyfunc wrapper: DataFrame of patients in, 2-year risk out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = LNRiskModel.load(
            context.artifacts[ARTIFACT_DIR], expected_features=model_features()
        )

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> np.ndarray:
        features = frame_to_features(pd.DataFrame(model_input))
        return self.model.predict_proba(features)


mlflow.models.set_model(LNRiskPyfunc())
