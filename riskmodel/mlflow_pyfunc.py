"""MLflow "models from code" entry point for the LN risk model (no pickle).

MLflow stores this file as the model's code and the saved model directory
(``model.json`` + ``booster.ubj``) as an artifact; loading runs this file and calls
``load_context``. Input: a DataFrame with the patient-record columns the model uses
(absent columns count as missing). Output: the calibrated 2-year risk per row.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from data_schema import frame_to_features, model_features
from riskmodel.model import LNRiskModel

ARTIFACT_KEY = "ln_risk_model"


class LNRiskPyfunc(PythonModel):
    """pyfunc wrapper: DataFrame of patients in, 2-year risk out."""

    def load_context(self, context: PythonModelContext) -> None:
        self.model = LNRiskModel.load(
            context.artifacts[ARTIFACT_KEY], expected_features=model_features()
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
