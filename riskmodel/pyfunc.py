"""The MLflow pyfunc interface of the LN risk model (no pickle).

Input: a DataFrame with the patient-record columns the model uses (absent columns count
as missing). MLflow column types have no nullable boolean, so flags and counts travel
as doubles (1.0 / 0.0 / NaN): :func:`to_pyfunc_frame` converts a validated cohort
table. Output: the calibrated 2-year risk per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from data_schema import frame_to_features, model_features
from riskmodel.model import LNRiskModel

#: Name of the MLflow artifact holding the saved model directory.
ARTIFACT_KEY = "ln_risk_model"


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
