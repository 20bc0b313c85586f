"""The criteria language: ``all`` / ``any`` / ``not`` trees over typed leaves.

A criteria file (YAML) is data; the operators below are code. Files are validated at
load: structure by pydantic, then every leaf against ``data_schema.field_specs()``
(the field exists, its kind fits the operator, category values are legal).

Leaves (``<f>`` is a :class:`data_schema.PatientRecord` field):

* ``{field: <f>, op: <op>, value: v}`` — comparison, ``op`` in ``< <= > >= == != in``.
* ``{derived: <name>, op: <op>, value: v}`` — comparison on a derived variable
  (:data:`eligibility.derived.DERIVED`).
* ``{days_since: <date field>, op: <op>, value: days}`` — whole days from that date
  to the screening date.
* ``{is_true: <flag>}`` / ``{is_false: <flag>}``.
* ``{within_days: {exposure: <stem>, days: N | months: M, boundary: inclusive |
  exclusive, [half_lives: k, half_life_field: <f>]}}`` — the exposure
  ``<stem>_ever`` happened and ``<stem>_last_date`` is at most ``window`` days
  before screening, ``window = max(N, k × half-life)``. ``months`` counts calendar
  months back from the screening date (:func:`eligibility.calendar.months_before`).
  ``boundary`` says whether the first day of the window (day N, or the same day M
  months earlier) is inside. ``<stem>_ever == false`` is a recorded negative.
* ``{more_than_days_ago: {...same...}}`` — exposed, and the last date is more than
  the window before screening (never exposed → false).
* ``{judgment: "question"}`` — only the investigator can answer.
* ``{risk_above_gate: true}`` — the model's risk is above the file's ``risk_gate``.
* ``{readings: <id>, alternatives: {<alternative>: <tree>, ...}}`` — the rule of
  each alternative reading of an ambiguous registry sentence, evaluated side by
  side: their common value when they agree, ``unknown`` while a missing datum could
  still make them agree, otherwise ``judgment``. Built by
  :mod:`eligibility.readings` for a reading left open; not written in files.

:mod:`eligibility.evaluate` evaluates a tree on a table of patients (Kleene
three-valued logic plus ``judgment``), with reasons and evidence on request.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from data_schema import field_specs
from data_schema.patient import EXPOSURE_STEMS
from eligibility.derived import DERIVED

Op = Literal["<", "<=", ">", ">=", "==", "!=", "in"]
ORDER_OPS = ("<", "<=", ">", ">=")
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda a, b: a in b,
}
Scalar = bool | int | float | str


class Truth(enum.Enum):
    """Value of a rule: Kleene's three values plus "needs the investigator"."""

    TRUE = "true"
    FALSE = "false"
    UNKNOWN = "unknown"
    JUDGMENT = "judgment"

    # Members are singletons compared by identity; Enum's own __hash__ is Python
    # code run on every verdict lookup (~0.4 µs), object's is a C slot.
    __hash__ = object.__hash__


# --- the tree, as pydantic models -----------------------------------------------------
class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AllNode(_Node):
    """True when every child is true."""

    all_: list[Node] = Field(alias="all", min_length=1)


class AnyNode(_Node):
    """True when at least one child is true."""

    any_: list[Node] = Field(alias="any", min_length=1)


class NotNode(_Node):
    """Negation (unknown and judgment stay as they are)."""

    not_: Node = Field(alias="not")


class CompareNode(_Node):
    """``<subject> <op> value``; the subject is a field, derived variable or date."""

    field: str | None = None
    derived: str | None = None
    days_since: str | None = None
    op: Op
    value: Scalar | list[Scalar]

    @model_validator(mode="after")
    def _one_subject(self) -> CompareNode:
        subjects = [s for s in (self.field, self.derived, self.days_since) if s]
        if len(subjects) != 1:
            raise ValueError("give exactly one of field, derived, days_since")
        if (self.op == "in") != isinstance(self.value, list):
            raise ValueError("op 'in' takes a list value; other ops a single value")
        return self

    @property
    def subject(self) -> str:
        """The name compared, as shown in reasons."""
        if self.days_since:
            return f"days since {self.days_since}"
        return str(self.field or self.derived)


class IsTrueNode(_Node):
    """The flag is recorded as true."""

    is_true: str


class IsFalseNode(_Node):
    """The flag is recorded as false."""

    is_false: str


class Window(_Node):
    """A look-back window on an exposure pair ``<stem>_ever`` / ``<stem>_last_date``.

    The window is ``max(days, half_lives × <half_life_field>)`` days, or ``months``
    calendar months back from the screening date. ``boundary`` states whether the
    window's first day is inside (``inclusive``) or not (``exclusive``).
    """

    exposure: str
    days: float | None = Field(default=None, ge=0)
    months: int | None = Field(default=None, gt=0)
    boundary: Literal["inclusive", "exclusive"]
    half_lives: float | None = Field(default=None, gt=0)
    half_life_field: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> Window:
        if (self.days is None) == (self.months is None):
            raise ValueError("give exactly one of days, months")
        if (self.half_lives is None) != (self.half_life_field is None):
            raise ValueError("half_lives and half_life_field go together")
        return self

    @property
    def label(self) -> str:
        """``6 calendar months`` / ``90 days``, as shown in reasons."""
        if self.months is not None:
            return f"{self.months} calendar month{'s' if self.months > 1 else ''}"
        return f"{self.days:g} days"


class WithinDaysNode(_Node):
    """Exposed, last exposure at most the window before screening."""

    within_days: Window


class MoreThanDaysAgoNode(_Node):
    """Exposed, last exposure more than the window before screening."""

    more_than_days_ago: Window


class JudgmentNode(_Node):
    """A question only the investigator answers."""

    judgment: str = Field(min_length=1)


class RiskGateNode(_Node):
    """The risk passed to the engine is above the file's gate threshold."""

    risk_above_gate: Literal[True]


class ReadingsNode(_Node):
    """Every alternative reading of one ambiguity, side by side (see module doc)."""

    readings: str
    alternatives: dict[str, Node] = Field(min_length=2)


_TAGS = (
    "all",
    "any",
    "not",
    "is_true",
    "is_false",
    "within_days",
    "more_than_days_ago",
    "judgment",
    "risk_above_gate",
    "readings",
)


def _tag(value: Any) -> str | None:
    if isinstance(value, _Node):
        return _MODEL_TAGS.get(type(value))
    if not isinstance(value, dict):
        return None
    if "op" in value:
        return "compare"
    keys = [k for k in _TAGS if k in value]
    return keys[0] if len(keys) == 1 else None


Node = Annotated[
    Annotated[AllNode, Tag("all")]
    | Annotated[AnyNode, Tag("any")]
    | Annotated[NotNode, Tag("not")]
    | Annotated[CompareNode, Tag("compare")]
    | Annotated[IsTrueNode, Tag("is_true")]
    | Annotated[IsFalseNode, Tag("is_false")]
    | Annotated[WithinDaysNode, Tag("within_days")]
    | Annotated[MoreThanDaysAgoNode, Tag("more_than_days_ago")]
    | Annotated[JudgmentNode, Tag("judgment")]
    | Annotated[RiskGateNode, Tag("risk_above_gate")]
    | Annotated[ReadingsNode, Tag("readings")],
    Discriminator(
        _tag,
        custom_error_type="unknown_rule_node",
        custom_error_message="a rule node needs exactly one of all, any, not, "
        "is_true, is_false, within_days, more_than_days_ago, judgment, "
        "risk_above_gate, or an 'op' comparison",
    ),
]
_MODEL_TAGS: dict[type, str] = {
    AllNode: "all",
    AnyNode: "any",
    NotNode: "not",
    CompareNode: "compare",
    IsTrueNode: "is_true",
    IsFalseNode: "is_false",
    WithinDaysNode: "within_days",
    MoreThanDaysAgoNode: "more_than_days_ago",
    JudgmentNode: "judgment",
    RiskGateNode: "risk_above_gate",
    ReadingsNode: "readings",
}
for _model in (AllNode, AnyNode, NotNode, ReadingsNode):
    _model.model_rebuild()


# --- semantic checks against the patient record ---------------------------------------
def check_node(node: Node) -> list[str]:
    """Problems of one rule tree against ``data_schema.field_specs()`` ([] if none)."""
    checker = _Checker()
    checker.visit(node)
    return checker.problems


class _Checker:
    """Walks a rule tree, collecting every problem (not only the first)."""

    def __init__(self) -> None:
        self.specs = field_specs()
        self.problems: list[str] = []

    def visit(self, n: Node) -> None:
        match n:
            case AllNode() | AnyNode():
                for child in n.all_ if isinstance(n, AllNode) else n.any_:
                    self.visit(child)
            case NotNode():
                self.visit(n.not_)
            case ReadingsNode():
                for child in n.alternatives.values():
                    self.visit(child)
            case IsTrueNode():
                self.kind(n.is_true, ("bool",), "is_true")
            case IsFalseNode():
                self.kind(n.is_false, ("bool",), "is_false")
            case WithinDaysNode():
                self.window(n.within_days, "within_days")
            case MoreThanDaysAgoNode():
                self.window(n.more_than_days_ago, "more_than_days_ago")
            case CompareNode():
                self.compare(n)
            case JudgmentNode() | RiskGateNode():
                pass

    def kind(self, name: str, wanted: tuple[str, ...], role: str) -> bool:
        """The field exists and is of one of the ``wanted`` kinds."""
        spec = self.specs.get(name)
        if spec is None:
            self.problems.append(f"unknown field {name!r} ({role})")
            return False
        if spec.kind not in wanted:
            self.problems.append(
                f"field {name!r} is of kind {spec.kind!r}; {role} needs "
                f"{' or '.join(wanted)}"
            )
            return False
        return True

    def window(self, w: Window, role: str) -> None:
        if w.exposure not in EXPOSURE_STEMS:
            self.problems.append(
                f"unknown exposure {w.exposure!r} ({role}); choose one of "
                f"{', '.join(EXPOSURE_STEMS)}"
            )
        if w.half_life_field is not None:
            self.kind(w.half_life_field, ("float", "int"), f"{role} half_life_field")

    def numeric_value(self, n: CompareNode) -> None:
        values = n.value if isinstance(n.value, list) else [n.value]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
            self.problems.append(f"{n.subject} {n.op} needs a number, got {n.value!r}")

    def compare(self, n: CompareNode) -> None:
        if n.derived is not None:
            if n.derived not in DERIVED:
                self.problems.append(
                    f"unknown derived variable {n.derived!r}; choose one of "
                    f"{', '.join(DERIVED)}"
                )
            self.numeric_value(n)
        elif n.days_since is not None:
            if self.kind(n.days_since, ("date",), "days_since"):
                self.numeric_value(n)
        elif n.op in ORDER_OPS:
            if self.kind(str(n.field), ("float", "int"), f"operator {n.op!r}"):
                self.numeric_value(n)
        elif self.kind(
            str(n.field), ("float", "int", "category"), f"operator {n.op!r}"
        ):
            self.category_or_number(n)

    def category_or_number(self, n: CompareNode) -> None:
        spec = self.specs[str(n.field)]
        if spec.kind != "category":
            self.numeric_value(n)
            return
        values = n.value if isinstance(n.value, list) else [n.value]
        bad = [v for v in values if v not in spec.categories]
        if bad:
            self.problems.append(
                f"{n.field} has no categor{'y' if len(bad) == 1 else 'ies'} "
                f"{bad!r}; allowed {list(spec.categories)!r}"
            )


def referenced_fields(node: Node) -> set[str]:
    """Record fields a rule reads directly (derived variables not expanded)."""
    out: set[str] = set()
    match node:
        case AllNode():
            for c in node.all_:
                out |= referenced_fields(c)
        case AnyNode():
            for c in node.any_:
                out |= referenced_fields(c)
        case NotNode():
            out |= referenced_fields(node.not_)
        case ReadingsNode():
            for c in node.alternatives.values():
                out |= referenced_fields(c)
        case CompareNode():
            out.add(str(node.field or node.days_since or ""))
        case IsTrueNode():
            out.add(node.is_true)
        case IsFalseNode():
            out.add(node.is_false)
        case WithinDaysNode() | MoreThanDaysAgoNode():
            w = (
                node.within_days
                if isinstance(node, WithinDaysNode)
                else node.more_than_days_ago
            )
            out |= {f"{w.exposure}_ever", f"{w.exposure}_last_date"}
            if w.half_life_field:
                out.add(w.half_life_field)
    out.discard("")
    return out
