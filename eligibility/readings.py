"""Readings: the named alternatives of an ambiguous registry sentence, as data.

Where the registry text can be read two ways (or contradicts itself), the criteria
file names a *reading*: the sentences involved, each alternative with what it means,
and a default. A criterion that depends on it carries one rule per alternative
(``rules: {<alternative>: <tree>}``). The default is either one alternative (the
text clearly leans one way) or ``needs_judgment`` (a genuine contradiction): both
rules are evaluated and the criterion is ``needs_judgment`` for a patient on whom
they disagree, showing both outcomes; where they agree, the ambiguity does not
matter and the common verdict stands.

A site settles a reading (after a sponsor query, say) in a small overlay file::

    readings:
      b-cell-history: washout

:func:`load_overlay` reads it; :func:`eligibility.criteria.load_criteria` applies
it. The pinned readings are part of the criteria version string, and every verdict
of a criterion with a reading names the reading applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

NEEDS_JUDGMENT = "needs_judgment"
"""The default of a genuine contradiction: the investigator decides when the
alternatives disagree."""

_SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"


class ReadingsError(ValueError):
    """An overlay names a reading or an alternative the criteria file does not have,
    or is not a mapping of reading id to alternative id."""


class Alternative(BaseModel):
    """One way to read the sentences.

    Attributes:
        id: short name, e.g. ``washout``.
        means: what the criterion checks under this reading, in words.
        risk_gate_inclusive: for a reading of the risk gate's boundary: whether a
            risk exactly at the threshold passes.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_SLUG)
    means: str = Field(min_length=1)
    risk_gate_inclusive: bool | None = None


class Reading(BaseModel):
    """An ambiguity of the registry text, its alternatives and the default.

    Attributes:
        id: stable name, e.g. ``b-cell-history``.
        question: the question a sponsor query would ask.
        registry: the registry sentences involved, verbatim.
        alternatives: two or more readings, each with what it means.
        default: an alternative's id, or ``needs_judgment`` for a contradiction.
        why: why the default is the default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_SLUG)
    question: str = Field(min_length=1)
    registry: tuple[str, ...] = Field(min_length=1)
    alternatives: tuple[Alternative, ...] = Field(min_length=2)
    default: str
    why: str = Field(min_length=1)

    @model_validator(mode="after")
    def _default_is_known(self) -> Reading:
        ids = self.alternative_ids
        if len(set(ids)) != len(ids):
            raise ValueError(f"reading {self.id}: duplicate alternative ids")
        if self.default not in (*ids, NEEDS_JUDGMENT):
            raise ValueError(
                f"reading {self.id}: default {self.default!r} is not one of "
                f"{', '.join((*ids, NEEDS_JUDGMENT))}"
            )
        if self.sets_gate and self.default == NEEDS_JUDGMENT:
            raise ValueError(
                f"reading {self.id}: a reading of the risk gate needs an "
                "alternative as its default"
            )
        return self

    @property
    def alternative_ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.alternatives)

    @property
    def sets_gate(self) -> bool:
        """The alternatives set the risk gate's boundary."""
        return any(a.risk_gate_inclusive is not None for a in self.alternatives)

    def alternative(self, alternative_id: str) -> Alternative:
        return next(a for a in self.alternatives if a.id == alternative_id)


def parse_overlay(text: str | bytes, source: str = "<string>") -> dict[str, str]:
    """An overlay's pins, ``{reading id: alternative id}`` (checked against a
    criteria file by :func:`check_pins`).

    Raises:
        ReadingsError: not YAML, or not ``readings: {<id>: <alternative>}``.
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ReadingsError(f"{source}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"readings"}:
        raise ReadingsError(
            f"{source}: an overlay holds one key, readings: {{<reading>: "
            "<alternative>}}"
        )
    pins = raw.get("readings") or {}
    if not isinstance(pins, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in pins.items()
    ):
        raise ReadingsError(
            f"{source}: readings must map reading ids to alternative ids"
        )
    return dict(pins)


def load_overlay(path: str | Path) -> dict[str, str]:
    """Read an overlay file (see :func:`parse_overlay`)."""
    path = Path(path)
    return parse_overlay(path.read_bytes(), str(path))


def check_pins(
    readings: tuple[Reading, ...], pins: Mapping[str, str], source: str
) -> None:
    """Refuse pins naming an unknown reading or alternative, naming each.

    Raises:
        ReadingsError: listing every unknown reading and alternative.
    """
    known = {r.id: r for r in readings}
    problems = []
    for reading_id, alternative in pins.items():
        reading = known.get(reading_id)
        if reading is None:
            problems.append(
                f"  unknown reading {reading_id!r}; the criteria file has "
                f"{', '.join(known) or 'none'}"
            )
            continue
        allowed = reading.alternative_ids
        if not reading.sets_gate:
            allowed += (NEEDS_JUDGMENT,)
        if alternative not in allowed:
            problems.append(
                f"  reading {reading_id!r} has no alternative {alternative!r}; "
                f"choose one of {', '.join(allowed)}"
            )
    if problems:
        raise ReadingsError(f"{source}: invalid readings\n" + "\n".join(problems))


def version_suffix(pins: Mapping[str, str]) -> str:
    """``+readings:a=x,b=y`` for the pinned readings (sorted), or ``""``."""
    if not pins:
        return ""
    return "+readings:" + ",".join(f"{k}={pins[k]}" for k in sorted(pins))
