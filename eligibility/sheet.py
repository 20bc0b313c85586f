"""The criteria sheet: every criterion with its registry text, rule, readings and
boundary conventions, as one HTML page a coordinator or an IRB reviewer checks the
encoding against (``lnrisk criteria --html``)."""

from __future__ import annotations

from typing import Any

import jinja2
import yaml

from eligibility.criteria import Criterion, TrialCriteria
from eligibility.readings import NEEDS_JUDGMENT
from eligibility.rules import (
    AllNode,
    AnyNode,
    CompareNode,
    MoreThanDaysAgoNode,
    Node,
    NotNode,
    ReadingsNode,
    WithinDaysNode,
)

_INCLUDED = {"<": False, "<=": True, ">": False, ">=": True}


def rule_text(node: Node) -> str:
    """A rule tree as the YAML a criteria file holds."""
    data = node.model_dump(by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False).strip()


def boundaries(node: Node) -> list[str]:
    """Each threshold and window of a rule, with whether its boundary counts."""
    out: list[str] = []
    match node:
        case AllNode() | AnyNode():
            for child in node.all_ if isinstance(node, AllNode) else node.any_:
                out += boundaries(child)
        case NotNode():
            out += boundaries(node.not_)
        case ReadingsNode():
            for child in node.alternatives.values():
                out += boundaries(child)
        case CompareNode() if node.op in _INCLUDED:
            where = "counts" if _INCLUDED[node.op] else "does not count"
            out.append(
                f"{node.subject} {node.op} {node.value}: exactly {node.value} {where}"
            )
        case WithinDaysNode() | MoreThanDaysAgoNode():
            w = (
                node.within_days
                if isinstance(node, WithinDaysNode)
                else node.more_than_days_ago
            )
            first = (
                f"the same day {w.months} calendar months before screening"
                if w.months is not None
                else f"day {w.days:g} before screening"
            )
            inside = "is inside" if w.boundary == "inclusive" else "is outside"
            extra = (
                f", or {w.half_lives:g} × {w.half_life_field} if longer"
                if w.half_life_field
                else ""
            )
            out.append(
                f"{w.exposure}: {w.label}{extra}, {w.boundary} — {first} {inside}"
            )
    return list(dict.fromkeys(out))


def _criterion(c: Criterion, criteria: TrialCriteria) -> dict[str, Any]:
    rules = c.rules or {}
    reading = c.reading
    return {
        "c": c,
        "rule": rule_text(c.rule) if c.rules is None and c.rule else None,
        "alternatives": {name: rule_text(tree) for name, tree in rules.items()},
        "applied": criteria.applied(reading) if reading else None,
        "boundaries": boundaries(c.rule) if c.rule is not None else [],
    }


def render_sheet(criteria: TrialCriteria) -> str:
    """The criteria sheet of a loaded criteria file (with its pinned readings)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("eligibility", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("criteria_sheet.html.j2").render(
        criteria=criteria,
        rows=[_criterion(c, criteria) for c in criteria.criteria],
        needs_judgment=NEEDS_JUDGMENT,
    )
