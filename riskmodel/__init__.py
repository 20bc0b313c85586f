"""The served model format: an XGBoost booster plus plain calibration parameters.

No pickle anywhere: the booster is stored in XGBoost's native UBJSON format and the
calibration and feature list in JSON. No MLflow either: the registry wraps this
format, the service reads it directly. The trial's gate is not part of the model: it
comes from the criteria file in force. Training writes it, MLflow stores it, the import
step copies it into the BentoML model store, and the service reads it.
"""

from riskmodel.calibration import Calibration, ModelFormatError
from riskmodel.gate import GateStates
from riskmodel.imputation import Imputer
from riskmodel.model import ARTIFACT_DIR, FORMAT_VERSION, LNRiskModel
from riskmodel.zone import ReviewZone

__all__ = [
    "ARTIFACT_DIR",
    "FORMAT_VERSION",
    "Calibration",
    "GateStates",
    "Imputer",
    "LNRiskModel",
    "ModelFormatError",
    "ReviewZone",
]
