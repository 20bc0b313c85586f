"""One patient's FHIR R4 resources → a PatientRecord's fields, with provenance.

:func:`read_patient` validates each resource with the ``fhir.resources`` R4B models,
flattens the valid ones exactly as a bulk export is flattened, and applies the
mapping's rules (:func:`data_schema.fhir.select.select`) to them: a bundle and a
registry export are read by one definition. :func:`risk_assessment` writes the
model's answer as a FHIR R4 ``RiskAssessment``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from threading import Lock
from typing import Any

import numpy as np
import pandas as pd

from data_schema.fhir.flatten import READ_TYPES, flatten_ndjson
from data_schema.fhir.mapping import FhirMapping, load_mapping
from data_schema.fhir.rows import fhir_day, resource_rows, select_rows
from data_schema.fhir.select import select
from data_schema.fields import field_specs

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
#: The outcome the model predicts: new-onset lupus nephritis (SNOMED CT 68815009).
LN_OUTCOME = {
    "coding": [
        {
            "system": SNOMED,
            "code": "68815009",
            "display": "Systemic lupus erythematosus glomerulonephritis syndrome",
        }
    ],
    "text": "New-onset lupus nephritis",
}


@dataclass(frozen=True)
class Problem:
    """A resource (or part of one) that was not used, and why."""

    resource: str  # "Observation/abc", or "entry 3" when it has no type / id
    why: str
    field: str | None = None  # the record field it was read for, if any

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass
class FhirReading:
    """What one patient's resources say, as record fields."""

    record: dict[str, Any]  # PatientRecord fields (absent = not recorded)
    problems: list[Problem] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)  # field -> resource

    @property
    def basis(self) -> list[str]:
        """The resources the record's values came from, each once, sorted."""
        return sorted(set(self.provenance.values()))


def _name(resource: Any, i: int) -> str:
    if not isinstance(resource, dict):
        return f"entry {i}"
    rtype, rid = resource.get("resourceType"), resource.get("id")
    if isinstance(rtype, str) and isinstance(rid, str):
        return f"{rtype}/{rid}"
    return f"{rtype} (entry {i})" if isinstance(rtype, str) else f"entry {i}"


def validation_error(resource: dict) -> str | None:
    """Why a resource fails the FHIR R4B model of its type (None if it passes)."""
    from fhir.resources.R4B import get_fhir_model_class  # ~0.5 s first import
    from pydantic import ValidationError

    try:
        model = get_fhir_model_class(resource["resourceType"])
    except (KeyError, ValueError):
        return f"unknown resourceType {resource.get('resourceType')!r}"
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "resource"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"fails FHIR R4B validation: {where}: {first['msg']}{more}"
    return None


class ValidationCache:
    """Validation outcomes of resources already seen, checked by content.

    An EHR sends a patient's resources again every time the chart is opened; their
    FHIR validation (~0.1 ms each) is the largest cost of a CDS Hooks call. A resource
    is looked up by type and id and reused only if its content is equal to the one
    validated (validation is a function of the content alone); the least recently
    used entries go first.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[str, str], tuple[dict, str | None]] = (
            OrderedDict()
        )
        self._lock = Lock()
        self.hits = self.misses = 0

    def error(self, resource: dict) -> str | None:
        """:func:`validation_error` of ``resource``, from the cache if seen."""
        rid = resource.get("id")
        key = (resource["resourceType"], rid) if isinstance(rid, str) else None
        with self._lock:
            seen = self._seen.get(key) if key else None
            if seen is not None and seen[0] == resource:
                self._seen.move_to_end(key)
                self.hits += 1
                return seen[1]
        why = validation_error(resource)
        with self._lock:
            self.misses += 1
            if key is not None and self.size > 0:
                self._seen[key] = (resource, why)
                self._seen.move_to_end(key)
                while len(self._seen) > self.size:
                    self._seen.popitem(last=False)
        return why


#: The process's cache (a service worker reads many charts; a test may use its own).
VALIDATION_CACHE = ValidationCache()


def _sort(resources) -> tuple[dict[str, list[dict]], list[Problem]]:
    """Resources by type; a problem for each one that is not read."""
    by_type: dict[str, list[dict]] = {}
    problems: list[Problem] = []
    for i, r in enumerate(resources):
        name = _name(r, i)
        if not isinstance(r, dict) or not isinstance(r.get("resourceType"), str):
            problems.append(Problem(name, "not a FHIR resource (no resourceType)"))
        elif r["resourceType"] not in READ_TYPES:
            problems.append(Problem(name, f"{r['resourceType']} is not read"))
        else:
            by_type.setdefault(r["resourceType"], []).append(r)
    return by_type, problems


def _too_old(row: dict, concept: str | None, m: FhirMapping, day: date) -> bool:
    """A result dated before every look-back window of the rules reading it."""
    horizon = None if concept is None else m.horizon(concept)
    return (
        horizon is not None
        and row["day"] is not None
        and (day - row["day"]).days > horizon
    )


def _valid(
    by_type: dict[str, list[dict]],
    m: FhirMapping,
    problems: list[Problem],
    cache: ValidationCache,
    position: dict[int, int],
    screening_date: date,
) -> dict[str, list[dict]]:
    """The resources that pass FHIR validation, among those a rule would read.

    The Patient and every resource whose code the mapping reads from its type (or
    that has no code at all) are validated; a resource that fails is reported and
    dropped. Two kinds are kept unvalidated because no rule reads them: a resource
    coded with codes the mapping does not read (reported as unmapped), and a result
    dated before every look-back window of the rules reading its code (an old
    C3, say: only the last 180 days count), which the rules pass over as they pass
    over every result outside a window.
    """
    rows = iter(resource_rows(by_type, m))  # one per non-Patient resource, in order
    kept: dict[str, list[dict]] = {}
    for rtype, resources in by_type.items():
        for r in resources:
            if rtype != "Patient":
                row = next(rows)
                concept, coded = row["concept"], row["code"] is not None
                unread = concept is None or rtype not in m.concepts[concept].resources
                if (coded and unread) or _too_old(row, concept, m, screening_date):
                    kept.setdefault(rtype, []).append(r)
                    continue
            why = cache.error(r)
            if why:
                problems.append(Problem(_name(r, position[id(r)]), why))
            else:
                kept.setdefault(rtype, []).append(r)
    return kept


def _plain(value: Any, kind: str) -> Any:
    if kind == "date":
        return pd.Timestamp(value).date()
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def read_patient(
    resources: Iterable[dict],
    screening_date: date,
    *,
    validate: bool = True,
    mapping: FhirMapping | None = None,
    engine: str = "rows",
    cache: ValidationCache | None = None,
) -> FhirReading:
    """Read one patient's FHIR R4 resources into PatientRecord fields.

    Args:
        resources: the patient's resources (a Bundle's ``entry[].resource``, a CDS
            Hooks prefetch); exactly one should be the Patient.
        screening_date: day 0 of every look-back window.
        validate: check each resource a rule reads against the FHIR R4B models
            first (a resource that fails is reported and not used).
        mapping: the mapping (default: ``mapping.yaml``).
        engine: ``rows`` (the rules row by row: ~1 ms for a patient) or
            ``columns`` (the registry's column-wise rules on a table of one row);
            the two give the same answer (tested).
        cache: outcomes of resources validated before (default: the process's).

    Returns:
        The record's fields (those FHIR carries and the resources hold), a problem
        per resource or value not used, and the resource behind each field.
    """
    m = mapping or load_mapping()
    resources = list(resources)
    by_type, problems = _sort(resources)
    if validate:
        position = {id(r): i for i, r in enumerate(resources)}
        by_type = _valid(
            by_type, m, problems, cache or VALIDATION_CACHE, position, screening_date
        )
    found = by_type.get("Patient", [])
    if len(found) != 1:
        why = "no Patient resource" if not found else "more than one Patient resource"
        problems.append(Problem("Patient", f"{why}: one patient per call"))
        if not found:
            return FhirReading({}, problems)
    pid = found[0].get("id") or "patient"
    if engine == "rows":
        patient = {
            "pid": pid,
            "ref": f"Patient/{found[0]['id']}"
            if found[0].get("id")
            else "Patient line 1",
            "gender": found[0].get("gender"),
            "birth": fhir_day(found[0].get("birthDate")),
        }
        values, provenance, found_problems = select_rows(
            resource_rows(by_type, m), patient, screening_date, m
        )
        problems += [Problem(ref, why, fld) for ref, fld, why in found_problems]
    else:
        values, provenance = _columns(by_type, pid, screening_date, m, problems)
    specs = field_specs()
    record = {k: _plain(v, specs[k].kind) for k, v in values.items() if not _missing(v)}
    return FhirReading(record, problems, {k: provenance[k] for k in record})


def _columns(by_type, pid: str, screening_date: date, m, problems: list) -> tuple:
    """The registry's column-wise path on a table of one patient."""
    flats = [
        flatten_ndjson("\n".join(json.dumps(r) for r in rs).encode() + b"\n", rtype, m)
        for rtype, rs in by_type.items()
    ]
    # one patient: the subject references may be urn:uuid, relative or absent
    patients = pd.concat([f.patients for f in flats], ignore_index=True).iloc[:1]
    patients["pid"] = pid
    for f in flats:
        problems += [Problem(where, why, fld) for _, where, fld, why in f.problems]
    facts = pd.concat([f.facts for f in flats], ignore_index=True)
    facts["pid"] = pid
    chosen = select(facts, patients, screening_date, m)
    problems += [
        Problem(p.resource, p.why, None if pd.isna(p.field) else p.field)
        for p in chosen.problems.itertuples(index=False)
    ]
    row, refs = chosen.values.iloc[0], chosen.provenance.iloc[0]
    values = {k: v for k, v in row.items() if not _missing(v)}
    return values, {k: str(refs[k]) for k in values if not _missing(refs[k])}


def _missing(v: Any) -> bool:
    return (
        v is None
        or (isinstance(v, float | np.floating) and np.isnan(v))
        or (v is pd.NaT)
    )


def risk_assessment(
    risk: float,
    *,
    patient_id: str,
    basis: Iterable[str],
    model_name: str,
    model_version: str,
    occurrence: date,
    rationale: str | None = None,
) -> dict[str, Any]:
    """The model's 2-year risk as a FHIR R4 ``RiskAssessment`` (validated).

    Args:
        risk: the 2-year probability of new-onset lupus nephritis (0–1).
        patient_id: the Patient's id (``subject`` is ``Patient/<id>``).
        basis: the resources the inputs came from (``Observation/abc``, ...).
        model_name: the registered model's name.
        model_version: its version.
        occurrence: the screening date the risk was computed for.
        rationale: a sentence on how to read the risk (e.g. the gate).

    Raises:
        ValueError: a risk outside [0, 1] or a resource the R4B model rejects.
    """
    from fhir.resources.R4B.riskassessment import RiskAssessment

    if not 0.0 <= risk <= 1.0:
        raise ValueError(f"risk must be a probability in [0, 1], got {risk}")
    years = {"unit": "a", "system": UCUM, "code": "a"}
    prediction: dict[str, Any] = {
        "outcome": LN_OUTCOME,
        "probabilityDecimal": round(float(risk), 6),
        "whenRange": {"low": {"value": 0, **years}, "high": {"value": 2, **years}},
    }
    if rationale:
        prediction["rationale"] = rationale
    resource = {
        "resourceType": "RiskAssessment",
        "status": "final",
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": occurrence.isoformat(),
        "method": {
            "coding": [
                {
                    "system": "urn:lnrisk:model",
                    "code": model_name,
                    "version": model_version,
                }
            ],
            "text": f"{model_name} version {model_version}",
        },
        "prediction": [prediction],
        "note": [{"text": "Research screening support, not a diagnostic device."}],
    }
    refs = [{"reference": ref} for ref in basis]
    if refs:  # FHIR JSON has no empty arrays
        resource["basis"] = refs
    RiskAssessment.model_validate(resource)
    return resource
