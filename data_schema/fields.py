"""Read the field definitions of :class:`PatientRecord` as plain data.

Everything here is derived from ``PatientRecord``; nothing is declared twice. The table
validator, the synthetic cohort generator, the feature matrix and the OpenAPI docs all
read these specs.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Literal

import annotated_types

from data_schema.patient import PREDICTOR, PatientRecord

FieldKind = Literal["float", "int", "bool", "date", "category", "text"]


@dataclass(frozen=True)
class FieldSpec:
    """One field of the patient record, as data."""

    name: str
    kind: FieldKind
    unit: str
    role: str
    description: str
    required: bool
    ge: float | None = None
    le: float | None = None
    categories: tuple[str, ...] = ()


def _base_type(annotation: object) -> object:
    """Strip ``Optional[...]`` and ``Annotated[...]`` down to the underlying type."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is (
        typing.Union
    ):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _kind(annotation: object) -> tuple[FieldKind, tuple[str, ...]]:
    base = _base_type(annotation)
    if typing.get_origin(base) is Literal:
        return "category", tuple(typing.get_args(base))
    kinds: dict[object, FieldKind] = {
        float: "float",
        int: "int",
        bool: "bool",
        date: "date",
        str: "text",
    }
    return kinds[base], ()


@cache
def field_specs() -> dict[str, FieldSpec]:
    """All fields of :class:`PatientRecord`, in declaration order."""
    specs: dict[str, FieldSpec] = {}
    for name, info in PatientRecord.model_fields.items():
        kind, categories = _kind(info.annotation)
        extra = (
            info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        )
        ge = le = None
        for meta in info.metadata:
            if isinstance(meta, annotated_types.Ge):
                ge = float(meta.ge)
            elif isinstance(meta, annotated_types.Le):
                le = float(meta.le)
        specs[name] = FieldSpec(
            name=name,
            kind=kind,
            unit=str(extra.get("unit", "")),
            role=str(extra.get("role", "")),
            description=info.description or "",
            required=info.is_required(),
            ge=ge,
            le=le,
            categories=categories,
        )
    return specs


@cache
def model_features() -> tuple[str, ...]:
    """The model's input columns, in order.

    Every predictor field of the record becomes one numeric column; ``sex`` becomes
    ``male`` (1.0 for male, 0.0 for female). Booleans are 1.0 / 0.0 and missing values
    NaN, which XGBoost routes down its learned default branch.
    """
    names: list[str] = []
    for name, spec in field_specs().items():
        if spec.role != PREDICTOR:
            continue
        names.append("male" if name == "sex" else name)
    return tuple(names)


def feature_description(feature: str) -> tuple[str, str]:
    """(description, unit) of a model feature, for explanations and model cards."""
    if feature == "male":
        return "Male sex", "boolean"
    spec = field_specs()[feature]
    return spec.description.split(" Unit:")[0].rstrip("."), spec.unit
