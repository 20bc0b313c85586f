"""The mapping's rules for one patient, row by row.

The same rules as :mod:`data_schema.fhir.select` (which runs them column-wise over a
registry), written for the ~60 resources of one patient, where a pandas operation's
fixed cost (~0.1 ms) would dominate: a CDS Hooks call is read in about a
millisecond. Both read the same mapping file and the same flattened rows
(:mod:`data_schema.fhir.flatten`); ``tests/data_schema`` runs every reader test
through both and checks them equal on every field and source of a synthetic cohort.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pandas as pd

from data_schema.fhir.mapping import HISTORY_RULES, FhirMapping, FieldRule
from data_schema.fhir.select import DAYS_PER_YEAR
from data_schema.fields import field_specs

_EXPOSURE_TYPES = ("MedicationAdministration", "MedicationStatement", "Immunization")
_GENDERS = {"female": "female", "male": "male"}
Row = dict[str, Any]
Problems = list[tuple[str, str | None, str]]  # (resource, field, why)


def _day(value: Any) -> date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _text(value: Any) -> str:
    return (
        "none"
        if value is None or (isinstance(value, float) and value != value)
        else str(value)
    )


def _latest(
    rows: list[Row],
    sd: date,
    describe: Callable[[Row], str],
    field: str,
    problems: Problems,
) -> tuple[float, str] | None:
    """The value ``v`` of the most recent day; a conflict on that day → None."""
    if not rows:
        return None
    last = max(r["day"] for r in rows)
    same = [r for r in rows if r["day"] == last]
    fv = same[0]["v"]
    if any(abs(r["v"] - fv) > 1e-9 * max(abs(fv), 1e-12) for r in same):
        for r in same:
            problems.append(
                (
                    r["ref"],
                    field,
                    f"conflicting results on {last.isoformat()}: " + describe(r),
                )
            )
        return None
    return fv, same[0]["ref"]


def _in_window(day: date, rule: FieldRule, sd: date) -> bool:
    age = (sd - day).days
    return age >= 0 and not (
        rule.lookback_days is not None and age > rule.lookback_days
    )


def _results(rows, rule: FieldRule, m: FhirMapping, problems) -> list[Row]:
    """Every usable result of a ``latest`` rule, whatever its date, with its value
    ``v`` in the record's unit; a problem for each one that is not usable."""
    spec = field_specs()[rule.field]
    high = rule.value == "reference_high"
    accepted = ", ".join(rule.units)
    usable = []
    for r in rows:
        if r["status"] not in m.statuses["Observation"]["use"]:
            problems.append(
                (r["ref"], rule.field, f"status {_text(r['status'])}: not used")
            )
            continue
        if r["day"] is None:
            problems.append((r["ref"], rule.field, "no effective date: not used"))
            continue
        value, unit = (r["high"], r["high_unit"]) if high else (r["num"], r["unit"])
        if value is None:
            if not high:
                problems.append((r["ref"], rule.field, "no valueQuantity: not used"))
            continue
        factor = rule.units.get(unit) if unit is not None else None
        if factor is None:
            problems.append(
                (
                    r["ref"],
                    rule.field,
                    f"unit {_text(unit)} not accepted (accepted: {accepted})",
                )
            )
            continue
        v = value * factor
        if (
            v < spec.ge
            or v > spec.le
            or (spec.kind == "int" and abs(v - round(v)) > 1e-9)
        ):
            problems.append(
                (
                    r["ref"],
                    rule.field,
                    f"{v:g} {spec.unit} is not a valid value for the field",
                )
            )
            continue
        usable.append({**r, "v": float(round(v)) if spec.kind == "int" else v})
    return usable


def _latest_value(rows, rule: FieldRule, sd, m, problems, cache) -> tuple | None:
    """The most recent usable result inside the window. Keeps every usable result
    and the current day (the most recent day inside the window) for the history
    rules."""
    usable = _results(rows, rule, m, problems)
    keep = [r for r in usable if _in_window(r["day"], rule, sd)]
    current = max((r["day"] for r in keep), default=None)
    cache[("results", rule.field)] = (usable, current)
    unit = field_specs()[rule.field].unit
    return _latest(
        keep, sd, lambda r: f"{r['ref']} {r['v']:g} {unit}", rule.field, problems
    )


def _abnormal(rule: FieldRule, sd: date, cache: dict, problems) -> tuple | None:
    key = ("abnormal", *rule.thresholds.items(), *rule.needs_context.items())
    if key not in cache:
        cache[key] = _history(rule, sd, cache, problems)
    ever, day, ref = cache[key]
    if rule.rule == "abnormal_ever":
        return None if ever is None else (ever, ref)
    return (day, ref) if ever else None


def _history(rule: FieldRule, sd: date, cache: dict, problems) -> tuple:
    """(ever, last abnormal day, resource) over the earlier results of the rule's
    fields: on or before the screening date, not on the field's current day."""
    earlier = []  # (field, row): the rule's field order, then the resources' order
    for name in rule.fields:
        usable, current = cache.get(("results", name), ([], None))
        earlier += [(name, r) for r in usable if r["day"] <= sd and r["day"] != current]
    if not earlier:
        return None, None, None
    above = [(f, r) for f, r in earlier if r["v"] > rule.thresholds[f]]
    sure = [(f, r) for f, r in above if f not in rule.needs_context]
    if sure:
        r = _newest(sure)
        return True, r["day"], r["ref"]
    if above:
        specs = field_specs()
        for f, r in above:
            why = (
                f"{f} {r['v']:g} {specs[f].unit} on {r['day'].isoformat()}: "
                f"{rule.needs_context[f]} is not coded, so it may or may not count "
                "as abnormal"
            )
            problems.append((r["ref"], rule.field, why))
        return None, None, None
    return False, None, _newest(earlier)["ref"]


def _newest(items: list[tuple[str, Row]]) -> Row:
    """The first row of the most recent day."""
    last = max(r["day"] for _, r in items)
    return next(r for _, r in items if r["day"] == last)


def _observations(rows, m, field, problems) -> list[Row]:
    out = []
    for r in rows:
        if r["rtype"] != "Observation":
            continue
        if r["status"] not in m.statuses["Observation"]["use"]:
            problems.append((r["ref"], field, f"status {_text(r['status'])}: not used"))
        elif r["day"] is None:
            problems.append((r["ref"], field, "no effective date: not used"))
        else:
            out.append(r)
    return out


def _finding(rows, rule: FieldRule, sd, m, problems) -> tuple | None:
    kept = []
    for r in _observations(rows, m, rule.field, problems):
        if r["result"] is None:
            problems.append(
                (r["ref"], rule.field, "no positive / negative result: not used")
            )
        else:
            kept.append({**r, "v": r["result"]})
    if rule.rule == "ever_positive":
        past = [r for r in kept if r["day"] <= sd]
        pos = [r for r in past if r["v"] == 1.0]
        d = pos or past
    else:
        d = [r for r in kept if _in_window(r["day"], rule, sd)]
    word = {1.0: " positive", 0.0: " negative"}
    got = _latest(d, sd, lambda r: r["ref"] + word[r["v"]], rule.field, problems)
    return None if got is None else (got[0] == 1.0, got[1])


def _conditions(rows, m, field, sd, problems) -> tuple[list[Row], list[Row]]:
    sets = m.statuses["Condition"]
    pos, neg = [], []
    for r in rows:
        if r["rtype"] != "Condition" or (r["day"] is not None and r["day"] > sd):
            continue
        status = r["status"]
        if status in sets["positive"]:
            pos.append(r)
        elif status in sets["negative"]:
            neg.append(r)
        else:
            problems.append(
                (r["ref"], field, f"verificationStatus {_text(status)}: not used")
            )
    return pos, neg


def _condition(rows, rule: FieldRule, sd, m, problems) -> tuple | None:
    pos, neg = _conditions(rows, m, rule.field, sd, problems)
    if rule.rule == "condition_ever":
        if pos:
            return True, pos[0]["ref"]
        return (False, neg[0]["ref"]) if neg else None
    if rule.rule in ("condition_first", "condition_years"):
        dated = [r for r in pos if r["day"] is not None]
        if not dated:
            for r in pos:
                problems.append((r["ref"], rule.field, "no onset date"))
            return None
        first = min(dated, key=lambda r: r["day"])
        if rule.rule == "condition_years":
            return (sd - first["day"]).days / DAYS_PER_YEAR, first["ref"]
        return first["day"], first["ref"]
    if rule.rule == "condition_source":
        for r in pos:
            for category, concept in rule.sources.items():
                if concept in (r["evidence"] or ""):
                    return category, r["ref"]
        return (rule.otherwise, pos[0]["ref"]) if pos else None
    # condition_evidence
    for r in pos:
        if rule.evidence in (r["evidence"] or ""):
            return True, r["ref"]
    return (False, neg[0]["ref"]) if neg and not pos else None


def _statements(rows, m, field, sd, problems) -> tuple[list[Row], list[Row]]:
    sets = m.statuses["MedicationStatement"]
    active, past = [], []
    for r in rows:
        if r["rtype"] != "MedicationStatement":
            continue
        started = not (r["day"] is not None and r["day"] > sd)
        ongoing = not (r["end"] is not None and r["end"] < sd)
        if r["status"] in sets["active"] and started and ongoing:
            active.append(r)
        elif r["status"] in sets["taken"] or r["status"] in sets["negative"]:
            past.append(r)
        else:
            problems.append((r["ref"], field, f"status {_text(r['status'])}: not used"))
    return active, past


def _current(rows, rule: FieldRule, sd, m, problems, cache) -> tuple | None:
    key = ("current", rule.concepts)
    if key not in cache:
        cache[key] = _statements(rows, m, rule.field, sd, problems)
    active, past = cache[key]
    stopped = (0.0, past[0]["ref"]) if past and not active else None
    if rule.rule == "current":
        if active:
            return True, active[0]["ref"]
        return (False, stopped[1]) if stopped else None
    if rule.rule == "current_since":
        dated = [r for r in active if r["day"] is not None]
        best = max(dated, key=lambda r: r["day"]) if dated else None
        if best is not None:  # the first of the latest
            best = next(r for r in dated if r["day"] == best["day"])
        return (best["day"], best["ref"]) if best else None
    if rule.rule == "current_agent":
        d = [
            {**r, "v": float(rule.concepts.index(r["concept"])), "day": sd}
            for r in active
        ]
        got = _latest(
            d, sd, lambda r: f"{r['ref']} {r['concept']}", rule.field, problems
        )
        return None if got is None else (rule.concepts[int(got[0])], got[1])
    d = []
    for r in active:  # current_dose
        factor = rule.units.get(r["unit"]) if r["unit"] is not None else None
        if r["num"] is None:
            problems.append(
                (r["ref"], rule.field, "no daily dose (doseQuantity with timing)")
            )
        elif factor is None:
            problems.append(
                (r["ref"], rule.field, f"dose unit {_text(r['unit'])} not accepted")
            )
        else:
            d.append({**r, "v": r["num"] * factor, "day": sd})
    got = _latest(d, sd, lambda r: f"{r['ref']} {r['concept']}", rule.field, problems)
    return got if got is not None else stopped


def _exposures(rows, rule: FieldRule, sd, m, problems) -> tuple[list[Row], list[Row]]:
    given, negative = [], []
    for r in rows:
        if r["rtype"] not in _EXPOSURE_TYPES:
            continue
        sets = m.statuses[r["rtype"]]
        if r["status"] in sets["negative"]:
            negative.append(r)
            continue
        if r["status"] not in sets["taken"]:
            problems.append(
                (r["ref"], rule.field, f"status {_text(r['status'])}: not used")
            )
            continue
        route = m.concepts[r["concept"]].route
        if route is not None and r["route"] is None:
            problems.append(
                (r["ref"], rule.field, f"route not recorded ({route.display} needed)")
            )
            continue
        if route is not None and r["route"] != route.key:
            continue
        if r["day"] is None:
            problems.append((r["ref"], rule.field, "no date: not used"))
        elif r["day"] <= sd:
            given.append({**r, "v": min(r["end"] or r["day"], sd)})
    return given, negative


def _exposure(rows, rule: FieldRule, sd, m, problems, cache) -> tuple | None:
    key = ("exposure", rule.concepts)
    if key not in cache:
        cache[key] = _exposures(rows, rule, sd, m, problems)
    given, negative = cache[key]
    if rule.rule == "ever":
        if given:
            return True, given[0]["ref"]
        return (False, negative[0]["ref"]) if negative else None
    if not given:
        return None
    if rule.rule == "last_date":
        last = max(r["v"] for r in given)
        return last, next(r["ref"] for r in given if r["v"] == last)
    d = [
        {**r, "day": r["v"], "v": float(rule.concepts.index(r["concept"]))}
        for r in given
    ]
    got = _latest(d, sd, lambda r: f"{r['ref']} {r['concept']}", rule.field, problems)
    if got is None:
        return None
    agent = rule.concepts[int(got[0])]
    if rule.rule == "last_agent_half_life":
        return m.concepts[agent].half_life_days, got[1]
    return agent, got[1]


def _patient(p: Row, sd: date, values: dict, refs: dict, problems: Problems) -> None:
    ref = p["ref"]
    values["patient_id"], refs["patient_id"] = p["pid"], ref
    sex = _GENDERS.get(p["gender"]) if isinstance(p["gender"], str) else None
    if sex is None:
        problems.append(
            (
                ref,
                "sex",
                f"Patient.gender {_text(p['gender'])}: sex needs female or male",
            )
        )
    else:
        values["sex"], refs["sex"] = sex, ref
    born = _day(p["birth"])
    if born is not None:
        values["date_of_birth"], refs["date_of_birth"] = born, ref
        values["age_years"], refs["age_years"] = (sd - born).days / DAYS_PER_YEAR, ref


def _usable(
    rows: list[Row], m: FhirMapping, problems: Problems
) -> dict[str, list[Row]]:
    """Rows by concept; a problem for each row with no mapped code or a concept its
    resource type does not carry."""
    by_concept: dict[str, list[Row]] = {}
    for r in rows:
        concept = r["concept"]
        if concept is None:
            problems.append(
                (r["ref"], None, f"code {_text(r['code'])} is not in the mapping")
            )
        elif r["rtype"] not in m.concepts[concept].resources:
            problems.append(
                (r["ref"], None, f"{concept} is not read from a {r['rtype']}")
            )
        else:
            by_concept.setdefault(concept, []).append(r)
    return by_concept


def select_rows(
    rows: list[Row], patient: Row, screening_date: date, m: FhirMapping
) -> tuple[dict[str, Any], dict[str, str], Problems]:
    """Apply every rule of the mapping to one patient's flattened resources.

    Returns:
        (values, field → resource, problems as (resource, field, why)).
    """
    sd = screening_date
    problems: Problems = []
    values: dict[str, Any] = {}
    refs: dict[str, str] = {}
    _patient(patient, sd, values, refs, problems)
    by_concept = _usable(rows, m, problems)
    cache: dict[tuple, tuple] = {}
    for rule in m.fields.values():
        mine = [r for c in rule.concepts for r in by_concept.get(c, [])]
        if rule.rule == "regimen_since" or rule.rule in HISTORY_RULES:
            continue
        if rule.rule == "latest":
            got = _latest_value(mine, rule, sd, m, problems, cache)
        elif rule.rule in ("latest_finding", "ever_positive"):
            got = _finding(mine, rule, sd, m, problems)
        elif rule.rule.startswith("condition_"):
            got = _condition(mine, rule, sd, m, problems)
        elif rule.rule.startswith("current"):
            got = _current(mine, rule, sd, m, problems, cache)
        else:
            got = _exposure(mine, rule, sd, m, problems, cache)
        if got is not None and got[0] is not None:
            values[rule.field], refs[rule.field] = got
    for rule in m.fields.values():  # rules over other fields' results and values
        if rule.rule in HISTORY_RULES:
            got = _abnormal(rule, sd, cache, problems)
        elif rule.rule == "regimen_since":
            got = _regimen(rule, values, refs)
        else:
            continue
        if got is not None and got[0] is not None:
            values[rule.field], refs[rule.field] = got
    return values, refs, problems


def _regimen(rule: FieldRule, values: dict, refs: dict) -> tuple | None:
    known = [(values[f], refs[f]) for f in rule.fields if values.get(f) is not None]
    if not known:
        return None
    latest = max(v for v, _ in known)
    return latest, next(ref for v, ref in known if v == latest)


# --- one resource as one row (the Arrow flattening's twin, for one patient) ---
_DAYS_PER_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0}


def _get(obj: Any, *path: str | int) -> Any:
    for step in path:
        if isinstance(step, int):
            obj = obj[step] if isinstance(obj, list) and len(obj) > step else None
        else:
            obj = obj.get(step) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def _date_of(text: Any) -> date | None:
    """The calendar day a FHIR date / dateTime is written on (partial: first day)."""
    if not isinstance(text, str):
        return None
    head = text[:10]
    try:
        return date.fromisoformat(head) if len(head) == 10 else None
    except ValueError:
        return None


def fhir_day(text: Any) -> date | None:
    day = _date_of(text)
    if day is not None or not isinstance(text, str):
        return day
    parsed = pd.to_datetime(pd.Series([text[:10]]), format="ISO8601", errors="coerce")
    return None if pd.isna(parsed[0]) else parsed[0].date()


def _keys(concept: Any) -> list[str]:
    codings = _get(concept, "coding")
    if not isinstance(codings, list):
        return []
    return [
        f"{_str(c.get('system')) or ''}|{_str(c.get('code')) or ''}"
        for c in codings
        if isinstance(c, dict)
    ]


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    """A string element, or None (a resource read without FHIR validation may hold
    anything where a string belongs)."""
    return value if isinstance(value, str) else None


def _concept(concept: Any, index: dict[str, str]) -> tuple[str | None, str | None]:
    keys = _keys(concept)
    hit = next((index[k] for k in keys if k in index), None)
    return hit, keys[0] if keys else None


def _flag(concept: Any, m: FhirMapping) -> float | None:
    keys = _keys(concept)
    if any(k in m.positive for k in keys):
        return 1.0
    return 0.0 if any(k in m.negative for k in keys) else None


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok else None


def _unit(qty: Any) -> str | None:
    return _str(_get(qty, "code")) or _str(_get(qty, "unit"))


def _route(coding: Any) -> str | None:
    system, code = _str(_get(coding, "system")), _str(_get(coding, "code"))
    return None if system is None or code is None else f"{system}|{code}"


def _observation_row(r: dict, m: FhirMapping) -> dict[str, Any]:
    high = _get(r, "referenceRange", 0, "high")
    result = _flag(r.get("valueCodeableConcept"), m)
    if result is None and isinstance(r.get("valueBoolean"), bool):
        result = 1.0 if r["valueBoolean"] else 0.0
    if result is None:
        result = _flag(_get(r, "interpretation", 0), m)
    day = (
        r.get("effectiveDateTime")
        or _get(r, "effectivePeriod", "start")
        or r.get("effectiveInstant")
    )
    return {
        "codes": r.get("code"),
        "status": _str(r.get("status")),
        "day": fhir_day(day),
        "num": _number(_get(r, "valueQuantity", "value")),
        "unit": _unit(r.get("valueQuantity")),
        "high": _number(_get(high, "value")),
        "high_unit": _unit(high),
        "result": result,
    }


def _condition_row(r: dict, m: FhirMapping) -> dict[str, Any]:
    index = m.code_index()
    names = [
        _concept(code, index)[0]
        for item in _list(r.get("evidence"))
        for code in _list(_get(item, "code"))
    ]
    found = [n for n in names if n is not None]
    return {
        "codes": r.get("code"),
        "status": _str(_get(r, "verificationStatus", "coding", 0, "code")),
        "day": fhir_day(r.get("onsetDateTime") or _get(r, "onsetPeriod", "start")),
        "evidence": ";".join(found) if found else None,
    }


def _statement_row(r: dict, m: FhirMapping) -> dict[str, Any]:
    dosage = _get(r, "dosage", 0)
    dose = _get(dosage, "doseAndRate", 0, "doseQuantity")
    repeat = _get(dosage, "timing", "repeat")
    value, freq = _number(_get(dose, "value")), _number(_get(repeat, "frequency"))
    period = _number(_get(repeat, "period"))
    unit_days = _DAYS_PER_UNIT.get(_get(repeat, "periodUnit"))
    num = None
    if None not in (value, freq, period, unit_days) and period * unit_days != 0:
        num = value * (freq / (period * unit_days))
    return {
        "codes": r.get("medicationCodeableConcept"),
        "status": _str(r.get("status")),
        "day": fhir_day(
            _get(r, "effectivePeriod", "start") or r.get("effectiveDateTime")
        ),
        "end": fhir_day(_get(r, "effectivePeriod", "end")),
        "num": num,
        "unit": _unit(dose),
        "route": _route(_get(dosage, "route", "coding", 0)),
    }


def _administration_row(r: dict, m: FhirMapping) -> dict[str, Any]:
    dosage = r.get("dosage")
    return {
        "codes": r.get("medicationCodeableConcept"),
        "status": _str(r.get("status")),
        "day": fhir_day(
            r.get("effectiveDateTime") or _get(r, "effectivePeriod", "start")
        ),
        "end": fhir_day(_get(r, "effectivePeriod", "end")),
        "num": _number(_get(dosage, "dose", "value")),
        "unit": _unit(_get(dosage, "dose")),
        "route": _route(_get(dosage, "route", "coding", 0)),
    }


def _immunization_row(r: dict, m: FhirMapping) -> dict[str, Any]:
    return {
        "codes": r.get("vaccineCode"),
        "status": _str(r.get("status")),
        "day": fhir_day(r.get("occurrenceDateTime")),
    }


_ROW = {
    "Observation": _observation_row,
    "Condition": _condition_row,
    "MedicationStatement": _statement_row,
    "MedicationAdministration": _administration_row,
    "Immunization": _immunization_row,
}
_EMPTY = dict.fromkeys(
    ("status", "day", "end", "num", "unit", "high", "high_unit", "result",
     "evidence", "route")
)  # fmt: skip


def resource_rows(by_type: dict[str, list[dict]], m: FhirMapping) -> list[Row]:
    """One patient's resources as the rows the rules read (no Patient rows)."""
    index = m.code_index()
    rows = []
    for rtype, resources in by_type.items():
        if rtype not in _ROW:
            continue
        for k, r in enumerate(resources):
            cols = _ROW[rtype](r, m)
            concept, code = _concept(cols.pop("codes"), index)
            rid = r.get("id")
            ref = f"{rtype}/{rid}" if rid else f"{rtype} line {k + 1}"
            rows.append(
                {**_EMPTY, **cols, "ref": ref, "rtype": rtype, "concept": concept,
                 "code": code}
            )  # fmt: skip
    return rows
