"""FHIR at the service's edge: a Bundle in, the screening and a RiskAssessment out.

``POST /screen_fhir`` reads the Bundle with the project's one FHIR reader
(:func:`data_schema.fhir.read_patient`), screens the record exactly as ``/screen``
does, and answers with the same decision plus the risk as a FHIR R4
``RiskAssessment``, every mapping problem (which resource, why) and the resource
behind each field (also per verdict, under ``sources``). Research screening support,
not a diagnostic device.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from data_schema import PatientRecord
from data_schema.fhir import FhirReading, Problem, read_patient, risk_assessment
from data_schema.fhir.flatten import READ_TYPES
from data_schema.fhir.mapping import load_mapping
from data_schema.fhir.reader import validation_error
from serving.schemas import CriterionResult, ScreeningDecision

#: Entries per Bundle (a CDS Hooks prefetch holds ~60; a year of labs a few hundred).
MAX_ENTRIES = 5_000


class BundleEntry(BaseModel):
    """One entry of a Bundle; only ``resource`` is read."""

    model_config = ConfigDict(extra="allow")

    full_url: str | None = Field(default=None, alias="fullUrl")
    resource: dict[str, Any] | None = Field(
        default=None, description="A FHIR R4 resource (validated one by one)."
    )


class FhirBundle(BaseModel):
    """A FHIR R4 Bundle holding one patient's resources."""

    model_config = ConfigDict(extra="allow")

    resource_type: Literal["Bundle"] = Field(alias="resourceType")
    type: str | None = Field(default=None, description="e.g. collection, searchset.")
    entry: list[BundleEntry] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="The patient's resources: one Patient, and Observation, "
        "Condition, MedicationStatement, MedicationAdministration, Immunization.",
    )


class MappingProblem(BaseModel):
    """A resource (or value) the mapping did not use, and why."""

    resource: str = Field(description="Observation/abc, or 'entry 3'.")
    why: str
    field: str | None = Field(description="The record field it was read for.")


class SourcedCriterion(CriterionResult):
    sources: dict[str, str] = Field(
        default_factory=dict,
        description="For each evidence field: the FHIR resource it came from.",
    )


class FhirScreening(ScreeningDecision):
    """``/screen``'s decision for a Bundle, with the FHIR reading behind it."""

    verdicts: list[SourcedCriterion] = Field(description="Every criterion, in order.")
    risk_assessment: dict[str, Any] = Field(
        description="The 2-year risk as a FHIR R4 RiskAssessment (validated)."
    )
    mapping_version: str = Field(description="Version of the FHIR mapping file.")
    mapping_problems: list[MappingProblem] = Field(
        description="Every resource or value not used, and why; the rest is used."
    )
    provenance: dict[str, str] = Field(
        description="Record field → the resource its value came from."
    )


def warm_fhir_models() -> None:
    """Load the FHIR mapping and build the FHIR R4B models of every resource type it
    reads (~1 s once; otherwise the first FHIR call of a worker pays it)."""
    load_mapping()
    for rtype in READ_TYPES:
        validation_error({"resourceType": rtype})


def read_bundle(bundle: FhirBundle, day: date) -> tuple[FhirReading, PatientRecord]:
    """The Bundle's record, validated (see :func:`read_resources`)."""
    resources: list[Any] = []
    skipped: list[Problem] = []
    for i, entry in enumerate(bundle.entry):
        if entry.resource is None:
            skipped.append(Problem(f"entry {i}", "entry without a resource"))
        else:
            resources.append(entry.resource)
    return read_resources(resources, day, skipped)


def read_resources(
    resources: list[Any], day: date, skipped: list[Problem] | None = None
) -> tuple[FhirReading, PatientRecord]:
    """One patient's resources read into a validated record.

    Raises:
        InvalidArgument: the resources do not give a valid record (no Patient, no
            sex, contradictory fields) — with the mapping problems that explain it.
    """
    reading = read_patient(resources, day)
    reading.problems[:0] = skipped or []
    try:
        return reading, PatientRecord.model_validate(reading.record)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
            for e in exc.errors()
        )
        why = "; ".join(f"{p.resource}: {p.why}" for p in reading.problems[:10])
        raise InvalidArgument(
            f"the resources do not give a valid patient record ({fields})"
            + (f"; mapping problems: {why}" if why else "")
        ) from None


def fhir_answer(
    decision: dict[str, Any], reading: FhirReading, day: date
) -> dict[str, Any]:
    """``/screen``'s answer (plain data) with the FHIR reading and RiskAssessment."""
    gate = decision["gate"]
    rationale = (
        f"Gate {gate} at {decision['gate_threshold']:.0%} (risk range "
        f"{decision['risk_low']:.0%}–{decision['risk_high']:.0%}); "
        f"screening decision: {decision['status']}."
    )
    provenance = reading.provenance
    for verdict in decision["verdicts"]:
        verdict["sources"] = {
            f: provenance[f] for f in verdict["evidence"] if f in provenance
        }
    return {
        **decision,
        "risk_assessment": risk_assessment(
            decision["risk_2y"],
            patient_id=reading.record.get("patient_id", "unknown"),
            basis=reading.basis,
            model_name=decision["model_name"],
            model_version=decision["model_version"],
            occurrence=day,
            rationale=rationale,
        ),
        "mapping_version": load_mapping().version,
        "mapping_problems": [p.as_dict() for p in reading.problems],
        "provenance": provenance,
    }
