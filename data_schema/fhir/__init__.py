"""FHIR R4 in and out: the mapping as data, one reader for a bundle and a bulk export.

* :func:`read_patient` — one patient's resources → PatientRecord fields, the problems
  (which resource, why) and the resource behind each field;
* :func:`risk_assessment` — the model's answer as a FHIR R4 ``RiskAssessment``;
* :mod:`data_schema.fhir.bulk` — a Bulk Data export (a folder of ndjson) → a cohort
  table, column-wise;
* ``mapping.yaml`` — codes, units, look-back windows and rules (loaded by
  :func:`load_mapping`).
"""

from data_schema.fhir.mapping import FhirMapping, MappingError, load_mapping
from data_schema.fhir.reader import FhirReading, Problem, read_patient, risk_assessment

__all__ = [
    "FhirMapping",
    "FhirReading",
    "MappingError",
    "Problem",
    "load_mapping",
    "read_patient",
    "risk_assessment",
]
