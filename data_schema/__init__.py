"""The one definition of a patient record.

Imported by training, eligibility and serving.

``data_schema`` imports none of the other packages of this project.
"""

from data_schema.columns import PatientColumns, columns_to_frame
from data_schema.features import (
    frame_to_features,
    frame_to_records,
    records_to_features,
    records_to_frame,
)
from data_schema.fields import (
    FieldSpec,
    feature_description,
    field_specs,
    model_features,
)
from data_schema.patient import Day, PatientRecord
from data_schema.table import (
    OUTCOME_COLUMN,
    TRUE_RISK_COLUMN,
    CohortValidationError,
    RowError,
    cohort_schema,
    validate_cohort,
    without_truth,
)
from data_schema.vocabulary import (
    GATE_STATES,
    SMALL_CELL,
    STATUSES,
    VERDICTS,
    GateState,
    Status,
    Verdict,
)

__all__ = [
    "GATE_STATES",
    "OUTCOME_COLUMN",
    "SMALL_CELL",
    "STATUSES",
    "TRUE_RISK_COLUMN",
    "VERDICTS",
    "CohortValidationError",
    "Day",
    "FieldSpec",
    "GateState",
    "PatientColumns",
    "PatientRecord",
    "RowError",
    "Status",
    "Verdict",
    "cohort_schema",
    "columns_to_frame",
    "feature_description",
    "field_specs",
    "frame_to_features",
    "frame_to_records",
    "model_features",
    "records_to_features",
    "records_to_frame",
    "validate_cohort",
    "without_truth",
]
