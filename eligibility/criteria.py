"""Load a trial's criteria file (YAML) into validated, versioned data.

``load_criteria(path)`` fails before any patient is screened, with a message naming
the file and the criterion id: unknown fields, operators that do not fit a field's
kind, illegal category values, duplicate ids, malformed rule trees.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from eligibility.evaluate import Program
from eligibility.rules import Node, RiskGateNode, check_node, referenced_fields

DEFAULT_CRITERIA_PATH = Path(__file__).with_name("nct05585671.yaml")
"""The registry's criteria for NCT05585671 (gate 0.5, age ≥ 18)."""


class CriteriaError(ValueError):
    """A criteria file is invalid; the message names the file and criterion id."""


class RiskGate(BaseModel):
    """The model-risk inclusion gate: risk must be strictly above ``threshold``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(gt=0, lt=1, description="Probability, 0–1.")


class Criterion(BaseModel):
    """One inclusion or exclusion criterion of the registry text.

    Attributes:
        id: stable identifier, e.g. ``EXC-01a-kidney-biopsy``.
        kind: ``inclusion`` (the patient must meet it) or ``exclusion`` (met = the
            patient HAS the excluding condition).
        text: the registry wording, verbatim.
        rule: the rule tree (:mod:`eligibility.rules`).
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
    rule: Node
    note: str | None = None
    settled_at_visit: bool = False
    group: str | None = Field(default=None, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")


class TrialCriteria(BaseModel):
    """A trial's criteria file: identity, version, the risk gate, the criteria."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str = Field(pattern=r"^NCT[0-9]{8}$")
    version: str = Field(min_length=1)
    risk_gate: RiskGate
    criteria: tuple[Criterion, ...] = Field(min_length=1)
    source: str = Field(default="", description="Path the file was loaded from.")
    sha256: str = Field(default="", description="SHA-256 of the file's bytes.")

    @property
    def criteria_version(self) -> str:
        """``<trial>@<version>+sha256:<first 12 hex>``, for logs and decisions."""
        return f"{self.trial_id}@{self.version}+sha256:{self.sha256[:12]}"

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


def parse_criteria(text: str | bytes, source: str = "<string>") -> TrialCriteria:
    """Parse and validate criteria YAML (see :func:`load_criteria`)."""
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
        problems += [f"  criterion {c.id}: {p}" for p in check_node(c.rule)]
    if problems:
        raise CriteriaError(f"{source}: invalid criteria file\n" + "\n".join(problems))
    return parsed


def load_criteria(path: str | Path = DEFAULT_CRITERIA_PATH) -> TrialCriteria:
    """Load and validate a criteria file.

    Args:
        path: YAML file with ``trial_id``, ``version``, ``risk_gate`` and
            ``criteria``.

    Returns:
        The validated criteria, with ``source``, ``sha256`` and
        ``criteria_version`` recorded.

    Raises:
        CriteriaError: the file is invalid; the message names every problem with its
            criterion id.
    """
    path = Path(path)
    return parse_criteria(path.read_bytes(), str(path))
