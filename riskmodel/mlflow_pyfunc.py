"""MLflow "models from code" entry point: MLflow stores this file as the model's code.

Loading the logged model runs it; the saved model directory (``model.json`` +
``booster.ubj``) arrives as the artifact ``ln_risk_model``. Never import this module
from project code: its last line registers the model with MLflow.
"""

import mlflow

from riskmodel.pyfunc import LNRiskPyfunc

mlflow.models.set_model(LNRiskPyfunc())
