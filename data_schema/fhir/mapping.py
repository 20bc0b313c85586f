"""The FHIR mapping file (``mapping.yaml``), loaded and checked once.

The file says, for every :class:`~data_schema.patient.PatientRecord` field FHIR can
carry, which resources and codes mean it, which units are accepted (with the factor
to the record's unit) and which time rule picks the value; and, for every other
field, why FHIR does not carry it. Loading checks that the two lists together cover
the record exactly, that every rule, concept and unit table exists, and that no code
means two things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

from data_schema.fields import field_specs

MAPPING_PATH = Path(__file__).with_name("mapping.yaml")

RULES = frozenset(
    {
        "latest",
        "latest_finding",
        "ever_positive",
        "condition_ever",
        "condition_first",
        "condition_years",
        "condition_source",
        "condition_evidence",
        "current",
        "current_dose",
        "current_since",
        "current_agent",
        "regimen_since",
        "ever",
        "last_date",
        "last_agent",
        "last_agent_half_life",
        "abnormal_ever",
        "abnormal_last_date",
    }
)
#: Rules over the earlier results of other fields' ``latest`` rules.
HISTORY_RULES = frozenset({"abnormal_ever", "abnormal_last_date"})


class MappingError(ValueError):
    """The mapping file contradicts itself or the patient record."""


@dataclass(frozen=True)
class Code:
    """One code of a code system, with the page that confirms it."""

    system: str  # the system's URI
    code: str
    display: str
    source: str = ""

    @property
    def key(self) -> str:
        """``system|code``, the form FHIR search uses."""
        return f"{self.system}|{self.code}"


@dataclass(frozen=True)
class Concept:
    """The codes that mean one thing, in the resource types that carry it."""

    name: str
    resources: tuple[str, ...]
    codes: tuple[Code, ...]
    half_life_days: float | None = None
    route: Code | None = None


@dataclass(frozen=True)
class FieldRule:
    """How one record field is read from FHIR."""

    field: str
    rule: str
    concepts: tuple[str, ...] = ()
    lookback_days: int | None = None
    units: dict[str, float] = field(default_factory=dict)
    value: str = "value"  # or "reference_high": Observation.referenceRange.high
    fields: tuple[str, ...] = ()  # regimen_since, abnormal_*: the fields it reads
    # abnormal_*: field -> the value above which a result is abnormal (record unit)
    thresholds: dict[str, float] = field(default_factory=dict)
    # abnormal_*: field -> the sampling context an abnormal result needs (not coded)
    needs_context: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    otherwise: str | None = None
    evidence: str | None = None


@dataclass(frozen=True)
class FhirMapping:
    """The whole mapping file, checked."""

    version: str
    systems: dict[str, str]
    concepts: dict[str, Concept]
    fields: dict[str, FieldRule]
    patient_fields: tuple[str, ...]
    not_carried: dict[str, str]
    statuses: dict[str, dict[str, tuple[str | None, ...]]]
    positive: frozenset[str]  # system|code of coded positive results
    negative: frozenset[str]

    @cached_property
    def _index(self) -> dict[str, str]:
        return {c.key: name for name, con in self.concepts.items() for c in con.codes}

    def code_index(self) -> dict[str, str]:
        """``system|code`` → concept name, for every code of every concept."""
        return self._index

    @cached_property
    def _horizons(self) -> dict[str, int | None]:
        horizon: dict[str, int | None] = {}
        # the fields a history rule reads are read over the whole history
        history = {f for r in self.fields.values() for f in r.thresholds}
        for rule in self.fields.values():
            finite = (
                rule.rule == "latest"
                and rule.lookback_days is not None
                and rule.field not in history
            )
            for c in rule.concepts:
                if not finite:
                    horizon[c] = None
                elif c not in horizon or horizon[c] is not None:
                    horizon[c] = max(horizon.get(c) or 0, rule.lookback_days)
        return horizon

    def horizon(self, concept: str) -> int | None:
        """Days before the screening date beyond which no rule reads a result of
        ``concept`` (None: some rule reads its whole history)."""
        return self._horizons.get(concept)

    def carried(self) -> tuple[str, ...]:
        """Record fields FHIR carries, in record order."""
        mine = set(self.fields) | set(self.patient_fields)
        return tuple(name for name in field_specs() if name in mine)


def _code(raw: dict[str, Any], systems: dict[str, str]) -> Code:
    system = systems.get(raw["system"], raw["system"])
    return Code(
        system, str(raw["code"]), str(raw.get("display", "")), raw.get("source", "")
    )


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _concepts(raw: dict[str, Any], systems: dict[str, str]) -> dict[str, Concept]:
    concepts = {}
    for name, spec in raw.items():
        route = spec.get("route")
        concepts[name] = Concept(
            name=name,
            resources=_as_tuple(spec["resource"]),
            codes=tuple(_code(c, systems) for c in spec["codes"]),
            half_life_days=spec.get("half_life_days"),
            route=_code(route, systems) if route else None,
        )
    return concepts


def _rule(name: str, spec: dict[str, Any], tables: dict[str, dict]) -> FieldRule:
    units = spec.get("units") or {}
    fields = spec.get("fields")
    thresholds = dict(fields) if isinstance(fields, dict) else {}
    context = spec.get("needs_context") or {}
    if not isinstance(context, dict):
        raise MappingError(f"{name}: needs_context maps a field to its context")
    if isinstance(units, str):
        if units not in tables:
            raise MappingError(f"{name}: unknown unit table {units!r}")
        units = tables[units]
    return FieldRule(
        field=name,
        rule=spec["rule"],
        concepts=_as_tuple(spec.get("concept")),
        lookback_days=spec.get("lookback_days"),
        units={str(u): float(f) for u, f in units.items()},
        value=spec.get("value", "value"),
        fields=tuple(fields) if isinstance(fields, dict) else _as_tuple(fields),
        thresholds=thresholds,
        needs_context=dict(context),
        sources=dict(spec.get("sources") or {}),
        otherwise=spec.get("otherwise"),
        evidence=spec.get("evidence"),
    )


def _check(m: FhirMapping) -> None:
    record = set(field_specs())
    listed = [*m.fields, *m.patient_fields, *m.not_carried]
    twice = {f for f in listed if listed.count(f) > 1}
    if twice:
        raise MappingError(f"fields listed twice: {sorted(twice)}")
    if set(listed) != record:
        raise MappingError(
            f"not record fields: {sorted(set(listed) - record)}; record fields "
            f"neither mapped nor listed as not carried: {sorted(record - set(listed))}"
        )
    index: dict[str, str] = {}
    for name, con in m.concepts.items():
        for c in con.codes:
            if index.setdefault(c.key, name) != name:
                raise MappingError(f"{c.key} means both {index[c.key]} and {name}")
    for rule in m.fields.values():
        if rule.rule not in RULES:
            raise MappingError(f"{rule.field}: unknown rule {rule.rule!r}")
        for name in (*rule.concepts, rule.evidence, *rule.sources.values()):
            if name is not None and name not in m.concepts:
                raise MappingError(f"{rule.field}: unknown concept {name!r}")
        for name in rule.fields:
            if name not in m.fields:
                raise MappingError(f"{rule.field}: unknown field {name!r}")
        if rule.rule in ("latest", "current_dose") and not rule.units:
            raise MappingError(f"{rule.field}: a {rule.rule} rule needs units")
        if rule.rule in HISTORY_RULES:
            _check_history(rule, m)
        elif rule.thresholds or rule.needs_context:
            raise MappingError(
                f"{rule.field}: thresholds and needs_context belong to the "
                f"{' / '.join(sorted(HISTORY_RULES))} rules"
            )


def _check_history(rule: FieldRule, m: FhirMapping) -> None:
    """An abnormal_* rule: a threshold per field, each field a ``latest`` value (its
    earlier results are read with that rule's codes, units and checks)."""
    if not rule.thresholds:
        raise MappingError(f"{rule.field}: fields needs a threshold per field")
    for name, limit in rule.thresholds.items():
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            raise MappingError(f"{rule.field}: threshold of {name} is not a number")
        source = m.fields[name]
        if source.rule != "latest" or source.value != "value":
            raise MappingError(f"{rule.field}: {name} is not a latest value")
    for name, context in rule.needs_context.items():
        if name not in rule.thresholds:
            raise MappingError(f"{rule.field}: needs_context {name!r} not in fields")
        if not isinstance(context, str) or not context:
            raise MappingError(f"{rule.field}: no context named for {name}")


@cache
def load_mapping(path: Path = MAPPING_PATH) -> FhirMapping:
    """The mapping file, checked against the patient record.

    Raises:
        MappingError: a field, concept, rule or unit table that does not fit.
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster
    raw = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)
    systems = {k: str(v) for k, v in raw["systems"].items()}
    tables = raw.get("unit_tables") or {}
    results = raw["results"]
    mapping = FhirMapping(
        version=str(raw["version"]),
        systems=systems,
        concepts=_concepts(raw["concepts"], systems),
        fields={n: _rule(n, s, tables) for n, s in raw["fields"].items()},
        patient_fields=tuple(raw["patient"]),
        not_carried={k: str(v) for k, v in raw["not_carried"].items()},
        statuses={
            rtype: {k: tuple(v) for k, v in sets.items()}
            for rtype, sets in raw["statuses"].items()
        },
        positive=frozenset(_code(c, systems).key for c in results["positive"]),
        negative=frozenset(_code(c, systems).key for c in results["negative"]),
    )
    _check(mapping)
    return mapping
