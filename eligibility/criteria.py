"""Load a trial's criteria file (YAML) into validated, versioned data.

``load_criteria(path)`` fails before any patient is screened, with a message naming
the file and the criterion id: unknown fields, operators that do not fit a field's
kind, illegal category values, duplicate ids, malformed rule trees, readings that
do not match their criteria. ``load_criteria(path, readings=overlay)`` applies a
site's pinned readings (:mod:`eligibility.readings`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eligibility.evaluate import Program
from eligibility.readings import (
    NEEDS_JUDGMENT,
    Reading,
    ReadingsError,
    check_pins,
    load_overlay,
    version_suffix,
)
from eligibility.rules import (
    Node,
    ReadingsNode,
    RiskGateNode,
    check_node,
    referenced_fields,
)

DEFAULT_CRITERIA_PATH = Path(__file__).with_name("nct05585671.yaml")
"""The registry's criteria for NCT05585671 (gate 0.5, age ≥ 18)."""


class CriteriaError(ValueError):
    """A criteria file is invalid; the message names the file and criterion id."""


class RiskGate(BaseModel):
    """The model-risk inclusion gate: risk must be above ``threshold`` (strictly,
    unless a reading of the boundary makes a risk at the threshold pass)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(gt=0, lt=1, description="Probability, 0–1.")
    inclusive: bool = Field(
        default=False,
        description="A risk exactly at the threshold passes (set by a reading).",
    )

    @property
    def cut(self) -> float:
        """The value a risk must be strictly above: the threshold, or the largest
        float below it when the boundary is inclusive (risk > cut ⇔ risk ≥
        threshold)."""
        if self.inclusive:
            return float(np.nextafter(self.threshold, 0.0))
        return self.threshold


class Criterion(BaseModel):
    """One inclusion or exclusion criterion of the registry text.

    Attributes:
        id: stable identifier, e.g. ``EXC-01a-kidney-biopsy``.
        kind: ``inclusion`` (the patient must meet it) or ``exclusion`` (met = the
            patient HAS the excluding condition).
        text: the registry wording, verbatim.
        rule: the rule tree (:mod:`eligibility.rules`); after loading, the rule of
            the reading applied.
        reading: the id of the reading (:mod:`eligibility.readings`) the verdict
            depends on, if any.
        rules: one rule per alternative of ``reading``, instead of ``rule``.
        applied: set at load: the reading applied, as named in every verdict.
        note: how an ambiguous wording was read.
        settled_at_visit: a missing datum is settled at the screening visit (consent,
            contraception): it goes to ``to_confirm``, not ``needs_review``.
        group: criteria that together define one condition share a group name, e.g.
            ``kidney-involvement`` (each is one route to it); other code reads the
            condition from the group, so it is defined once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^(INC|EXC)-[0-9]{2}[a-z]?(-[a-z0-9]+)+$")
    kind: Literal["inclusion", "exclusion"]
    text: str = Field(min_length=1)
    rule: Node | None = None
    reading: str | None = None
    rules: dict[str, Node] | None = None
    note: str | None = None
    settled_at_visit: bool = False
    group: str | None = Field(default=None, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    applied: str | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> Criterion:
        if (self.rule is None) == (self.rules is None):
            raise ValueError("give exactly one of rule, rules")
        if self.rules is not None and self.reading is None:
            raise ValueError("rules (one per alternative) need a reading")
        return self


class TrialCriteria(BaseModel):
    """A trial's criteria file: identity, version, the risk gate, the conventions,
    the readings of ambiguous sentences, the criteria."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str = Field(pattern=r"^NCT[0-9]{8}$")
    version: str = Field(min_length=1)
    risk_gate: RiskGate
    conventions: tuple[str, ...] = ()
    readings: tuple[Reading, ...] = ()
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    source: str = Field(default="", description="Path the file was loaded from.")
    sha256: str = Field(default="", description="SHA-256 of the file's bytes.")
    pinned: dict[str, str] = Field(
        default_factory=dict, description="Readings a site's overlay pinned."
    )

    @property
    def criteria_version(self) -> str:
        """``<trial>@<version>+sha256:<first 12 hex>[+readings:<id>=<alt>,…]``, for
        logs and decisions; the pinned readings are part of it."""
        base = f"{self.trial_id}@{self.version}+sha256:{self.sha256[:12]}"
        return base + version_suffix(self.pinned)

    def applied(self, reading_id: str) -> str:
        """The alternative applied for a reading (pinned, else the default)."""
        reading = next(r for r in self.readings if r.id == reading_id)
        return self.pinned.get(reading_id, reading.default)

    @cached_property
    def settled_at_visit_ids(self) -> frozenset[str]:
        """Ids of the criteria only the screening visit settles (consent, ...)."""
        return frozenset(c.id for c in self.criteria if c.settled_at_visit)

    @cached_property
    def risk_gate_ids(self) -> frozenset[str]:
        """Ids of the criteria that restate the risk gate."""
        gates = (c for c in self.criteria if isinstance(c.rule, RiskGateNode))
        return frozenset(c.id for c in gates)

    @cached_property
    def program(self) -> Program:
        """The rule trees laid out for the evaluator, once per file."""
        return Program.of([c.rule for c in self.criteria])

    def group(self, name: str) -> tuple[Criterion, ...]:
        """The criteria of one group, in file order.

        Raises:
            KeyError: no criterion belongs to ``name``.
        """
        found = tuple(c for c in self.criteria if c.group == name)
        if not found:
            raise KeyError(
                f"{self.source or self.trial_id}: no criteria in group {name!r}"
            )
        return found

    @property
    def by_id(self) -> dict[str, Criterion]:
        """Criteria keyed by id."""
        return {c.id: c for c in self.criteria}

    def fields_used(self) -> set[str]:
        """Record fields read directly by the rules (derived inputs not expanded)."""
        out: set[str] = set()
        for c in self.criteria:
            out |= referenced_fields(c.rule)
        return out


def _where(raw: object, loc: tuple[int | str, ...]) -> str:
    """'criterion EXC-05a-alt' for a pydantic error location inside ``criteria``."""
    if len(loc) >= 2 and loc[0] == "criteria" and isinstance(loc[1], int):
        items = raw.get("criteria") if isinstance(raw, dict) else None
        if isinstance(items, list) and loc[1] < len(items):
            item = items[loc[1]]
            cid = item.get("id") if isinstance(item, dict) else None
            rest = ".".join(str(p) for p in loc[2:])
            return f"criterion {cid or f'#{loc[1]}'}" + (f" ({rest})" if rest else "")
    return ".".join(str(p) for p in loc) or "file"


def parse_criteria(
    text: str | bytes,
    source: str = "<string>",
    readings: Mapping[str, str] | None = None,
) -> TrialCriteria:
    """Parse and validate criteria YAML and apply pinned ``readings`` (see
    :func:`load_criteria`)."""
    data = text if isinstance(text, bytes) else text.encode()
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise CriteriaError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CriteriaError(f"{source}: expected a mapping at the top level")
    try:
        parsed = TrialCriteria.model_validate(
            {**raw, "source": source, "sha256": hashlib.sha256(data).hexdigest()}
        )
    except ValidationError as exc:
        errors = exc.errors()
        # A bad item also trips the list's min_length; report the item only.
        specific = [e for e in errors if tuple(e["loc"]) != ("criteria",)]
        lines = [
            f"  {_where(raw, tuple(e['loc']))}: {e['msg']}"
            for e in (specific or errors)
        ]
        raise CriteriaError(
            f"{source}: invalid criteria file\n" + "\n".join(lines)
        ) from None
    problems: list[str] = []
    seen: set[str] = set()
    for c in parsed.criteria:
        if c.id in seen:
            problems.append(f"  criterion {c.id}: duplicate id")
        seen.add(c.id)
        trees = [c.rule] if c.rule is not None else list((c.rules or {}).values())
        problems += [f"  criterion {c.id}: {p}" for t in trees for p in check_node(t)]
    problems += _reading_problems(parsed)
    if problems:
        raise CriteriaError(f"{source}: invalid criteria file\n" + "\n".join(problems))
    try:
        check_pins(parsed.readings, readings or {}, source)
    except ReadingsError as exc:
        raise CriteriaError(str(exc)) from None
    return apply_readings(parsed, readings or {})


def _reading_problems(parsed: TrialCriteria) -> list[str]:
    """Readings that do not match their criteria, and the other way round."""
    readings = {r.id: r for r in parsed.readings}
    problems = []
    if len(readings) != len(parsed.readings):
        problems.append("  readings: duplicate reading ids")
    used = set()
    for c in parsed.criteria:
        if c.reading is None:
            continue
        used.add(c.reading)
        reading = readings.get(c.reading)
        if reading is None:
            problems.append(f"  criterion {c.id}: unknown reading {c.reading!r}")
            continue
        if c.rules is not None and set(c.rules) != set(reading.alternative_ids):
            problems.append(
                f"  criterion {c.id}: rules must name exactly the alternatives of "
                f"{c.reading} ({', '.join(reading.alternative_ids)})"
            )
        if c.rules is None and not reading.sets_gate:
            problems.append(
                f"  criterion {c.id}: reading {c.reading} needs one rule per "
                "alternative (rules:)"
            )
    problems += [
        f"  reading {r}: no criterion depends on it" for r in readings if r not in used
    ]
    return problems


def apply_readings(parsed: TrialCriteria, pins: Mapping[str, str]) -> TrialCriteria:
    """The criteria with each reading applied: the pinned alternative, else the
    default; a reading left at ``needs_judgment`` evaluates every alternative side
    by side (:class:`eligibility.rules.ReadingsNode`)."""
    readings = {r.id: r for r in parsed.readings}
    chosen = {r: pins.get(r, readings[r].default) for r in readings}
    criteria = []
    for c in parsed.criteria:
        if c.reading is None:
            criteria.append(c)
            continue
        choice = chosen[c.reading]
        how = "pinned" if c.reading in pins else "default"
        if choice == NEEDS_JUDGMENT:
            alternatives = " / ".join(readings[c.reading].alternative_ids)
            applied = (
                f"{c.reading}: {alternatives} side by side ({how}: needs_judgment "
                "when they disagree)"
            )
        else:
            applied = f"{c.reading}: {choice} ({how})"
        rule = c.rule
        if c.rules is not None:
            rule = (
                ReadingsNode(readings=c.reading, alternatives=c.rules)
                if choice == NEEDS_JUDGMENT
                else c.rules[choice]
            )
        criteria.append(c.model_copy(update={"rule": rule, "applied": applied}))
    gate = parsed.risk_gate
    for reading in parsed.readings:
        if reading.sets_gate:
            inclusive = reading.alternative(chosen[reading.id]).risk_gate_inclusive
            gate = gate.model_copy(update={"inclusive": bool(inclusive)})
    return parsed.model_copy(
        update={"criteria": tuple(criteria), "risk_gate": gate, "pinned": dict(pins)}
    )


def load_criteria(
    path: str | Path = DEFAULT_CRITERIA_PATH,
    readings: str | Path | Mapping[str, str] | None = None,
) -> TrialCriteria:
    """Load and validate a criteria file, applying a site's pinned readings.

    Args:
        path: YAML file with ``trial_id``, ``version``, ``risk_gate``,
            ``readings`` and ``criteria``.
        readings: an overlay file (``readings: {<reading>: <alternative>}``) or
            its mapping; None applies every reading's default.

    Returns:
        The validated criteria, with ``source``, ``sha256``, the pinned readings
        and ``criteria_version`` recorded.

    Raises:
        CriteriaError: the file is invalid, or the overlay names an unknown
            reading or alternative; the message names every problem.
    """
    path = Path(path)
    if isinstance(readings, str | Path):
        try:
            readings = load_overlay(readings)
        except (ReadingsError, OSError) as exc:
            raise CriteriaError(str(exc)) from None
    return parse_criteria(path.read_bytes(), str(path), readings)
