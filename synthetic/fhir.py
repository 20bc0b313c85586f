"""A synthetic cohort as a FHIR Bulk Data export: one ndjson file per resource type.

Written from the same mapping file the readers use (``data_schema/fhir/
mapping.yaml``), the way EHRs send data: several results per patient over time (the
current one inside its look-back window, older ones before it), units as sites
report them (mg/dL, mmol/L, 10*3/uL …, converted from the record's unit with the
mapping's factors), codes drawn from every member of a concept's value set, explicit
negatives (a refuted Condition, a not-taken MedicationStatement, a not-done
administration) where the record says "no", and nothing where it says "not
recorded". A record value FHIR cannot carry (see the mapping's ``not_carried``, an
immunosuppressant or B-cell agent without a code) is not written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_schema.fhir.mapping import FhirMapping, FieldRule, load_mapping
from data_schema.fields import field_specs

UCUM = "http://unitsofmeasure.org"
DAYS_PER_YEAR = 365.25
#: Units a lab reports with each code (the mapping accepts more than these).
_CODE_UNITS = {
    "2160-0": ("mg/dL",),
    "14682-9": ("umol/L", "mmol/L"),
    "2889-4": ("mg/(24.h)", "g/(24.h)", "g/d"),
    "2890-2": ("mg/g", "g/g", "mg/mmol"),
}
_RESULT = {
    True: [("http://snomed.info/sct", "10828004"), ("http://loinc.org", "LA6576-8")],
    False: [("http://snomed.info/sct", "260385009"), ("http://loinc.org", "LA6577-6")],
}
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


class _Writer:
    """Resources of one patient, built from a record row."""

    def __init__(
        self,
        m: FhirMapping,
        rng: np.random.Generator,
        day0: date,
        history_rng: np.random.Generator | None = None,
    ) -> None:
        self.m = m
        self.rng = rng
        # draws for the earlier urinalyses: their own stream, so that adding them
        # leaves every other draw of the export as it was
        self.history_rng = history_rng or rng
        self.day0 = day0
        self.out: list[dict[str, Any]] = []
        self.pid = ""
        self.n = 0
        self.current: dict[str, int] = {}  # lab field -> days ago of its current result
        self.earlier: set[str] = set()  # history rules with an earlier result written

    def add(self, resource: dict[str, Any]) -> None:
        self.n += 1
        rtype = resource["resourceType"]
        resource["id"] = f"{self.pid}-{rtype[:3].lower()}{self.n}"
        subject = "patient" if rtype == "Immunization" else "subject"
        resource[subject] = {"reference": f"Patient/{self.pid}"}
        self.out.append(resource)

    def pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def coding(self, concept: str) -> dict[str, Any]:
        c = self.pick(self.m.concepts[concept].codes)
        return {"coding": [{"system": c.system, "code": c.code, "display": c.display}]}

    def days_ago(self, days: int) -> str:
        return (self.day0 - timedelta(days=int(days))).isoformat()


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _observation(w: _Writer, code: dict, when: str, **value: Any) -> None:
    w.add(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "observation-category",
                            "code": "laboratory",
                        }
                    ]
                }
            ],
            "code": code,
            "effectiveDateTime": when,
            **value,
        }
    )


def _labs(
    w: _Writer,
    row: dict,
    rule: FieldRule,
    uln: FieldRule | None,
    history: FieldRule | None,
) -> None:
    """The current result inside its window, and up to two older ones before it.

    ``history``: the ``abnormal_ever`` rule that reads this field's earlier results.
    Its record value decides them: unknown → no older result is written; true or
    false → older results are normal (at most the rule's threshold); a true one
    gets its abnormal result from :func:`_earlier_results`.
    """
    v = row[rule.field]
    if v is None:
        return
    concept = w.pick(rule.concepts)
    code = w.coding(concept)
    units = _CODE_UNITS.get(code["coding"][0]["code"], tuple(rule.units))
    unit = w.pick(units)
    factor = rule.units[unit]
    window = min(rule.lookback_days or 365, 60)
    newest = int(w.rng.integers(0, window))
    judged = None if history is None else row.get(history.field)
    if judged and rule.field == _decisive(history):
        last = _last_abnormal(w, row, history)
        if last is not None and (w.day0 - last).days >= 1:  # the abnormal is earlier
            newest = min(newest, (w.day0 - last).days - 1)
    w.current[rule.field] = newest
    extra: dict[str, Any] = {}
    if uln is not None and row[uln.field] is not None:
        extra["referenceRange"] = [{"high": _quantity(row[uln.field] / factor, unit)}]
    _observation(
        w, code, w.days_ago(newest), valueQuantity=_quantity(v / factor, unit), **extra
    )
    # older results: same code and unit, drawn around the current value
    for _ in range(int(w.rng.integers(0, 3))):
        older = newest + int(w.rng.integers(1, 400))
        drift = float(np.exp(w.rng.normal(0.0, 0.2)))
        if history is not None and judged is None:
            continue  # the record does not say what earlier urinalyses showed
        value = v * drift
        if isinstance(v, int):
            value = round(value)
        value = _clip(value, rule.field)
        if history is None:
            sent = value / factor
        else:
            sent = _normal(value, history.thresholds[rule.field], factor)
            w.earlier.add(history.field)
        _observation(w, code, w.days_ago(older), valueQuantity=_quantity(sent, unit))


def _normal(value: float, threshold: float, factor: float) -> float:
    """The value to send, in a unit of ``factor``, that reads back (sent x factor) as
    at most ``threshold``: a normal result."""
    sent = min(value, threshold) / factor
    while sent * factor > threshold:
        sent = float(np.nextafter(sent, 0.0))
    return sent


def _decisive(rule: FieldRule) -> str | None:
    """The first field of a history rule whose abnormal result decides alone."""
    return next((f for f in rule.fields if f not in rule.needs_context), None)


def _last_abnormal(w: _Writer, row: dict, rule: FieldRule) -> date | None:
    """The record's date of the last abnormal result (the abnormal_last_date twin of
    an abnormal_ever rule)."""
    for twin in w.m.fields.values():
        if twin.rule == "abnormal_last_date" and twin.thresholds == rule.thresholds:
            return row.get(twin.field)
    return None


def _earlier_results(w: _Writer, row: dict, rule: FieldRule) -> None:
    """What an ``abnormal_ever`` rule reads back as the record's value.

    True: an abnormal result (twice the threshold) of the rule's first field that
    needs no context, on the record's last date; false: at least one earlier normal
    result (one of that field is added if no older result was written); unknown:
    nothing (no earlier result at all). An earlier result is dated before the
    field's current result, or outside its window when the record has no current
    value (inside, it would be read as the current value): a last date that does
    not fit (on or after the current result, or inside the window with no current
    value) is moved to the nearest day that does.
    """
    judged = row.get(rule.field)
    name = _decisive(rule)
    if judged is None or name is None or (not judged and rule.field in w.earlier):
        return
    lab = w.m.fields[name]
    current = w.current.get(name)
    if current is not None:
        first = current + 1  # days ago: the day before the current result
    elif lab.lookback_days is not None:
        first = lab.lookback_days + 1
    else:
        return  # every result of this field would be its current value
    rng = w.history_rng
    threshold = float(rule.thresholds[name])
    if judged:
        last = _last_abnormal(w, row, rule)
        ago = None if last is None else (w.day0 - last).days
        if ago is None:
            ago = first + int(rng.integers(0, 400))
        _result(w, lab, _clip(2.0 * threshold, name), max(ago, first), None)
    else:
        normal = _clip(threshold * float(rng.uniform(0.1, 0.9)), name)
        _result(w, lab, normal, first + int(rng.integers(0, 400)), threshold)


def _result(
    w: _Writer, lab: FieldRule, value: float, ago: int, threshold: float | None
) -> None:
    """One result of a lab field, ``ago`` days before the screening date (at most
    ``threshold`` when one is given)."""
    rng = w.history_rng
    concept = w.m.concepts[lab.concepts[int(rng.integers(len(lab.concepts)))]]
    c = concept.codes[int(rng.integers(len(concept.codes)))]
    units = _CODE_UNITS.get(c.code, tuple(lab.units))
    unit = units[int(rng.integers(len(units)))]
    factor = lab.units[unit]
    if field_specs()[lab.field].kind == "int":
        value = float(round(value))
    sent = value / factor if threshold is None else _normal(value, threshold, factor)
    code = {"coding": [{"system": c.system, "code": c.code, "display": c.display}]}
    _observation(w, code, w.days_ago(ago), valueQuantity=_quantity(sent, unit))


def _clip(value: float, field: str) -> float:
    spec = field_specs()[field]
    return float(min(max(value, spec.ge), spec.le))


def _finding(w: _Writer, row: dict, rule: FieldRule) -> None:
    v = row[rule.field]
    if v is None:
        return
    window = rule.lookback_days or 3650
    when = w.days_ago(int(w.rng.integers(0, min(window, 720))))
    concept = w.m.concepts[rule.concepts[0]]
    code = w.coding(concept.name)
    if code["coding"][0]["code"] in ("18323-6", "29958-6", "33610-7", "44702-9"):
        # ENA and anti-C1q antibodies come as units with an interpretation
        flag = "POS" if v else "NEG"
        _observation(
            w,
            code,
            when,
            valueQuantity={"value": 2.4 if v else 0.3, "unit": "U"},
            interpretation=[{"coding": [{"system": _INTERPRETATION, "code": flag}]}],
        )
        return
    system, answer = w.pick(_RESULT[bool(v)])
    _observation(
        w,
        code,
        when,
        valueCodeableConcept={"coding": [{"system": system, "code": answer}]},
    )


def _condition(
    w: _Writer, concept: str, present: bool | None, onset: date | None, **extra
) -> None:
    if present is None:
        return
    status = "confirmed" if present else "refuted"
    r: dict[str, Any] = {
        "resourceType": "Condition",
        "verificationStatus": {"coding": [{"system": _VERIFICATION, "code": status}]},
        "code": w.coding(concept),
        **extra,
    }
    if present and onset is not None:
        r["onsetDateTime"] = onset.isoformat()
    w.add(r)


def _conditions(w: _Writer, row: dict) -> None:
    duration = row["disease_duration_years"]
    onset = None
    if duration is not None:
        onset = w.day0 - timedelta(days=round(duration * DAYS_PER_YEAR))
    _condition(w, "sle", True, onset)
    _condition(w, "hypertension", row["hypertension"], None)
    ln = row["lupus_nephritis_diagnosis_ever"]
    extra = {}
    if ln and row["kidney_biopsy_confirmed"]:
        biopsy = w.m.concepts["kidney_biopsy"].codes[0]
        extra["evidence"] = [
            {"code": [{"coding": [{"system": biopsy.system, "code": biopsy.code}]}]}
        ]
    _condition(w, "lupus_nephritis", ln, row["lupus_nephritis_diagnosis_date"], **extra)


def _statement(
    w: _Writer, concept: str, status: str, since: date | None, mg_day: float | None
) -> None:
    r: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": status,
        "medicationCodeableConcept": w.coding(concept),
    }
    if since is not None:
        r["effectivePeriod"] = {"start": since.isoformat()}
    if mg_day is not None:
        times = w.pick((1, 2)) if mg_day > 0 else 1
        unit, factor = w.pick((("mg", 1.0), ("g", 1000.0)))
        r["dosage"] = [
            {
                "timing": {
                    "repeat": {"frequency": times, "period": 1, "periodUnit": "d"}
                },
                "doseAndRate": [
                    {"doseQuantity": _quantity(mg_day / times / factor, unit)}
                ],
            }
        ]
    w.add(r)


def _medications(w: _Writer, row: dict) -> None:
    pred = row["prednisone_mg_day"]
    if pred is not None:
        if pred > 0:
            since = row["prednisone_dose_unchanged_since"]
            _statement(w, "prednisone", "active", since, pred)
        else:
            _statement(w, "prednisone", "not-taken", None, None)
    hcq = row["hydroxychloroquine_current"]
    if hcq:
        since = row["hydroxychloroquine_dose_unchanged_since"]
        dose = row["hydroxychloroquine_mg_day"]
        _statement(w, "hydroxychloroquine", "active", since, dose)
    elif hcq is False:
        _statement(w, "hydroxychloroquine", "not-taken", None, None)
    agents = w.m.fields["immunosuppressant_current"].concepts
    on, name = row["immunosuppressant_current"], row["immunosuppressant_name"]
    if on and name in agents:
        since = row["immunosuppressant_dose_unchanged_since"]
        _statement(w, name, "active", since, None)
    elif on is False:
        _statement(w, w.pick(agents), "not-taken", None, None)


def _administration(w: _Writer, concept: str, status: str, when: str) -> None:
    r: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "status": status,
        "medicationCodeableConcept": w.coding(concept),
        "effectiveDateTime": when,
    }
    route = w.m.concepts[concept].route
    if route is not None:
        r["dosage"] = {
            "route": {"coding": [{"system": route.system, "code": route.code}]}
        }
    w.add(r)


def _exposure(w: _Writer, row: dict, stem: str, concepts: tuple[str, ...]) -> None:
    ever, last = row[f"{stem}_ever"], row[f"{stem}_last_date"]
    if ever is None:
        return
    concept = w.pick(concepts)
    if stem == "b_cell_therapy" and ever:
        concept = row["b_cell_therapy_agent"]
        if concept not in concepts:
            return  # an agent without a code: FHIR cannot say which
    immunization = w.m.concepts[concept].resources[0] == "Immunization"
    if not ever:
        if immunization:
            w.add(
                {
                    "resourceType": "Immunization",
                    "status": "not-done",
                    "vaccineCode": w.coding(concept),
                    "occurrenceString": "never given",
                }
            )
        else:
            _administration(w, concept, "not-done", w.day0.isoformat())
        return
    if last is None:
        return
    # the last dose, and up to two earlier ones
    dates = [last - timedelta(days=int(d)) for d in w.rng.integers(30, 900, 2)]
    for day in [last, *dates[: int(w.rng.integers(0, 3))]]:
        if immunization:
            w.add(
                {
                    "resourceType": "Immunization",
                    "status": "completed",
                    "vaccineCode": w.coding(concept),
                    "occurrenceDateTime": day.isoformat(),
                }
            )
        else:
            _administration(w, concept, "completed", day.isoformat())


_EXPOSURES = ("b_cell_therapy", "iv_cyclophosphamide", "ivig", "live_vaccine")


def _plan(m: FhirMapping) -> list[Callable[[_Writer, dict], None]]:
    """One writer step per group of record fields, from the mapping's rules."""
    steps: list[Callable[[_Writer, dict], None]] = []
    uln = {
        r.concepts[0]: r
        for r in m.fields.values()
        if r.rule == "latest" and r.value == "reference_high"
    }
    histories = [r for r in m.fields.values() if r.rule == "abnormal_ever"]
    history = {}  # lab field -> the history rule reading its earlier results
    for rule in histories:
        for name in rule.fields:
            history.setdefault(name, rule)
    for rule in m.fields.values():
        if rule.rule == "latest" and rule.value == "value":
            partner = uln.get(rule.concepts[0])
            reads = history.get(rule.field)
            steps.append(
                lambda w, row, r=rule, u=partner, h=reads: _labs(w, row, r, u, h)
            )
        elif rule.rule in ("latest_finding", "ever_positive"):
            steps.append(lambda w, row, r=rule: _finding(w, row, r))
    for rule in histories:  # after every lab: they know the current results' days
        steps.append(lambda w, row, r=rule: _earlier_results(w, row, r))
    steps += [_conditions, _medications]
    for stem in _EXPOSURES:
        concepts = m.fields[f"{stem}_ever"].concepts
        steps.append(lambda w, row, s=stem, c=concepts: _exposure(w, row, s, c))
    return steps


def _rows(df: pd.DataFrame, fields: list[str]) -> Iterator[dict[str, Any]]:
    """The record rows as plain Python values (None = not recorded)."""
    columns = {}
    for name in fields:
        col = df[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            values = [None if pd.isna(v) else v.date() for v in col]
        else:
            values = [None if pd.isna(v) else v for v in col.astype(object)]
        columns[name] = values
    for i in range(len(df)):
        yield {name: columns[name][i] for name in fields}


def cohort_resources(
    df: pd.DataFrame,
    screening_date: date,
    seed: int = 0,
    mapping: FhirMapping | None = None,
) -> Iterator[dict[str, Any]]:
    """Every resource of every patient of a cohort table, patient by patient.

    Args:
        df: a cohort table (``PatientRecord`` columns; ``patient_id`` set).
        screening_date: the day the record describes (the cohort's reference date):
            the current results are dated inside their look-back window before it.
        seed: seed of the draws (dates, units, value-set members, older results).
        mapping: the mapping (default: ``mapping.yaml``).
    """
    m = mapping or load_mapping()
    rng = np.random.default_rng(seed)
    history_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    steps = _plan(m)
    fields = [f for f in df.columns if f in set(m.fields) | set(m.patient_fields)]
    for name in ("kidney_biopsy_confirmed", "immunosuppressant_name"):
        if name not in fields and name in df:
            fields.append(name)
    for row in _rows(df, fields):
        w = _Writer(m, rng, screening_date, history_rng)
        w.pid = str(row["patient_id"])
        patient: dict[str, Any] = {
            "resourceType": "Patient",
            "id": w.pid,
            "gender": row["sex"],
        }
        if row.get("date_of_birth") is not None:
            patient["birthDate"] = row["date_of_birth"].isoformat()
        yield patient
        for step in steps:
            step(w, row)
        yield from w.out


def write_bulk(
    df: pd.DataFrame, out_dir: str | Path, screening_date: date, seed: int = 0
) -> dict[str, int]:
    """Write a cohort as a Bulk Data export: ``<ResourceType>.ndjson`` per type.

    Returns:
        Resources written per type.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with ExitStack() as files:
        handles: dict[str, Any] = {}
        for r in cohort_resources(df, screening_date, seed):
            rtype = r["resourceType"]
            if rtype not in handles:
                path = out / f"{rtype}.ndjson"
                handles[rtype] = files.enter_context(path.open("w", encoding="utf-8"))
                counts[rtype] = 0
            handles[rtype].write(json.dumps(r, separators=(",", ":")) + "\n")
            counts[rtype] += 1
    return counts


def patient_bundles(
    df: pd.DataFrame, screening_date: date, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """One FHIR ``collection`` Bundle per patient of a cohort table."""
    entries: list[dict[str, Any]] = []
    for r in cohort_resources(df, screening_date, seed):
        if r["resourceType"] == "Patient" and entries:
            yield {"resourceType": "Bundle", "type": "collection", "entry": entries}
            entries = []
        entries.append({"fullUrl": f"urn:uuid:{r['id']}", "resource": r})
    if entries:
        yield {"resourceType": "Bundle", "type": "collection", "entry": entries}
