"""Validate a whole cohort table against the patient record, reporting every bad row.

The pandera schema is generated from :func:`data_schema.fields.field_specs`, so a table
and a single :class:`~data_schema.patient.PatientRecord` obey the same ranges, types and
categories. Validation is lazy: it collects every failure (row number, column, reason,
offending value) instead of stopping at the first.

Dates written as text are ISO 8601 (``YYYY-MM-DD``) or follow the one format the
caller names (``date_format="%d/%m/%Y"``); anything else is refused with its row,
column and value, never guessed (``01/02/1990`` could be either of two days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from data_schema.fields import FieldSpec, field_specs
from data_schema.patient import CONSISTENCY_FIELDS, consistency_problems

#: 1 if new-onset lupus nephritis occurred within 24 months of the record, else 0.
OUTCOME_COLUMN = "ln_within_2y"
#: The data-generating process's true 2-year risk (synthetic cohorts only).
TRUE_RISK_COLUMN = "true_risk_2y"
#: Extra columns the synthetic generator may add (ground-truth annotations).
SYNTHETIC_PREFIX = "dgp_"


def without_truth(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a site's file could hold: the table without the synthetic truth
    (``true_risk_2y`` and the ``dgp_`` annotations). Digests of data are taken of
    this, so a run's lineage is the same with or without the truth."""
    truth = [
        c
        for c in df.columns
        if c == TRUE_RISK_COLUMN or str(c).startswith(SYNTHETIC_PREFIX)
    ]
    return df.drop(columns=truth) if truth else df


#: The pandas dtype of each field kind in a validated cohort table.
PANDAS_DTYPES = {
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
    "date": "datetime64[ns]",
    "category": "string",
    "text": "string",
}


@dataclass(frozen=True)
class RowError:
    """One failed check: which row (0-based position), which column, why."""

    row: int | None
    column: str | None
    reason: str
    value: object = None

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "table"
        col = f", column {self.column!r}" if self.column else ""
        val = "" if self.value is None else f" (value: {self.value!r})"
        return f"{where}{col}: {self.reason}{val}"


class CohortValidationError(ValueError):
    """Raised with every problem found in a cohort table."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        rows = sorted({e.row for e in errors if e.row is not None})
        head = "\n".join(f"  - {e}" for e in errors[:50])
        more = f"\n  ... and {len(errors) - 50} more" if len(errors) > 50 else ""
        super().__init__(
            f"cohort table failed validation: {len(errors)} problem(s) in "
            f"{len(rows)} row(s)\n{head}{more}"
        )

    @property
    def bad_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors if e.row is not None})


def _column(spec: FieldSpec, *, required: bool) -> pa.Column:
    checks: list[pa.Check] = []
    if spec.ge is not None:
        checks.append(pa.Check.ge(spec.ge, error=f"must be ≥ {spec.ge:g} {spec.unit}"))
    if spec.le is not None:
        checks.append(pa.Check.le(spec.le, error=f"must be ≤ {spec.le:g} {spec.unit}"))
    if spec.categories:
        checks.append(
            pa.Check.isin(spec.categories, error=f"must be one of {spec.categories}")
        )
    return pa.Column(
        PANDAS_DTYPES[spec.kind],
        checks=checks,
        nullable=not required,
        required=required,
        description=spec.description,
        title=spec.unit,
    )


def cohort_schema() -> pa.DataFrameSchema:
    """The pandera schema of a cohort table (one row per patient)."""
    columns: dict[str, pa.Column] = {}
    for name, spec in field_specs().items():
        # A cohort needs an id per patient (splits are by patient) and the sex; every
        # other column may be absent, which means "not recorded for anyone".
        required = spec.required or name == "patient_id"
        columns[name] = _column(spec, required=required)
    columns[OUTCOME_COLUMN] = pa.Column(
        "Int64", pa.Check.isin([0, 1]), nullable=False, required=False
    )
    columns[TRUE_RISK_COLUMN] = pa.Column(
        "float64",
        pa.Check.in_range(0.0, 1.0),
        nullable=False,
        required=False,
    )
    columns[f"{SYNTHETIC_PREFIX}.*"] = pa.Column(
        regex=True, required=False, nullable=True
    )
    return pa.DataFrameSchema(
        columns,
        unique=["patient_id"],
        strict=True,
        name="cohort",
    )


def _position(df: pd.DataFrame, index_value: object) -> int | None:
    if index_value is None or pd.isna(index_value):
        return None
    try:
        pos = df.index.get_loc(index_value)
    except KeyError:
        return None
    return int(pos) if isinstance(pos, int) else None


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T00:00(:00(\.0+)?)?)?$")
"""A calendar date as ISO 8601 text: ``YYYY-MM-DD`` (midnight may follow)."""


def parse_dates(
    values: pd.Series, date_format: str | None = None
) -> tuple[pd.Series, pd.Series, str]:
    """Dates of a column: date objects as they are, text as ISO 8601 or as the
    ``strftime`` format named, never guessed.

    Returns:
        The parsed column (``datetime64[ns]``, bad cells missing), the mask of cells
        that could not be read, and the reason to report for them.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):  # Parquet, a DataFrame
        return values.astype("datetime64[ns]"), pd.Series(False, index=values.index), ""
    present = values.notna()
    text = values.map(lambda v: isinstance(v, str), na_action="ignore")
    text = text.fillna(False).astype(bool)
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    others = present & ~text
    if others.any():  # date, datetime, Timestamp, datetime64: already dates
        parsed[others] = pd.to_datetime(values[others], errors="coerce")
    if text.any():
        strings = values[text].str.strip()
        if date_format is None:
            iso = strings.str.match(ISO_DATE)
            strings = strings.where(iso).str.slice(0, 10)
            fmt = "%Y-%m-%d"
        else:
            fmt = date_format
        parsed[text] = pd.to_datetime(strings, format=fmt, errors="coerce")
    bad = present & parsed.isna()
    if date_format is None:
        reason = (
            "not a date in ISO 8601 (YYYY-MM-DD); name the file's format "
            "(e.g. --date-format %d/%m/%Y) rather than have it guessed"
        )
    else:
        reason = f"not a date in the format {date_format}"
    return parsed, bad, reason


def _coerce_column(
    values: pd.Series, spec_kind: str, date_format: str | None = None
) -> tuple[pd.Series, pd.Series, str]:
    """Coerce one column to its schema dtype, cell by cell.

    Returns the coerced column (bad cells set to missing), a boolean mask of the cells
    that could not be coerced, and the reason to report for them.
    """
    present = values.notna()
    if spec_kind in ("float", "int"):
        if values.dtype.kind in "fiu":  # a numeric column holds no booleans
            is_bool = pd.Series(False, index=values.index)
        else:
            is_bool = values.map(lambda v: isinstance(v, bool | np.bool_))
        numbers = pd.to_numeric(values.where(~is_bool), errors="coerce")
        bad = present & (numbers.isna() | is_bool)
        if spec_kind == "int":
            fractional = numbers.notna() & (numbers != numbers.round())
            bad |= fractional
            numbers = numbers.where(~fractional)
            return numbers.astype("Int64"), bad, "wrong type: expected a whole number"
        return numbers.astype("float64"), bad, "wrong type: expected a number"
    if spec_kind == "bool":
        if pd.api.types.is_bool_dtype(values):
            return values.astype("boolean"), pd.Series(False, index=values.index), ""

        def to_bool(v: object) -> object:
            if isinstance(v, bool | np.bool_):
                return bool(v)
            if isinstance(v, int | float | np.integer | np.floating) and v in (0, 1):
                return bool(v)
            return pd.NA

        flags = values.map(to_bool, na_action="ignore")
        bad = present & flags.isna()
        return flags.astype("boolean"), bad, "wrong type: expected true/false (or 1/0)"
    if spec_kind == "date":
        parsed, bad, reason = parse_dates(values, date_format)
        return parsed, bad, f"wrong type: {reason}"
    # category / text
    is_str = values.map(lambda v: isinstance(v, str), na_action="ignore")
    bad = present & ~is_str.fillna(False).astype(bool)
    return values.where(~bad).astype("string"), bad, "wrong type: expected text"


def _coerce(
    df: pd.DataFrame, date_format: str | None = None
) -> tuple[pd.DataFrame, list[RowError]]:
    specs = field_specs()
    kinds = {name: spec.kind for name, spec in specs.items()}
    kinds[OUTCOME_COLUMN] = "int"
    kinds[TRUE_RISK_COLUMN] = "float"
    out = df.copy()
    errors: list[RowError] = []
    for column in df.columns:
        kind = kinds.get(column)
        if kind is None:
            continue
        coerced, bad, reason = _coerce_column(df[column], kind, date_format)
        for pos in np.flatnonzero(bad.to_numpy()):
            errors.append(
                RowError(int(pos), column, reason, _plain(df[column].iat[pos]))
            )
        out[column] = coerced
    return out, errors


def validate_cohort(df: pd.DataFrame, date_format: str | None = None) -> pd.DataFrame:
    """Validate and coerce a cohort table.

    Args:
        df: one row per patient, columns named as the fields of ``PatientRecord`` plus
            optionally ``ln_within_2y``, ``true_risk_2y`` and ``dgp_*`` annotations.
        date_format: the ``strftime`` format of dates written as text (e.g.
            ``%d/%m/%Y``); None: ISO 8601 ``YYYY-MM-DD`` only.

    Returns:
        The table with every column coerced to its schema dtype, index reset to 0..n-1.

    Raises:
        CohortValidationError: listing every failure found (row, column, reason).
    """
    df = df.reset_index(drop=True)
    df, errors = _coerce(df, date_format)
    errors += _contradictions(df)
    try:
        validated = cohort_schema().validate(df, lazy=True)
    except pa.errors.SchemaErrors as exc:
        row_level_seen: set[tuple[object, str]] = set()
        for case in exc.failure_cases.itertuples(index=False):
            check = str(case.check)
            if case.schema_context == "DataFrameSchema" and case.index is not None:
                # A row-wise table check reports every column of the row: keep one.
                if (case.index, check) in row_level_seen:
                    continue
                row_level_seen.add((case.index, check))
                if "uniqueness" in check:
                    pos = _position(df, case.index)
                    value = None if pos is None else df["patient_id"].iat[pos]
                    errors.append(
                        RowError(pos, "patient_id", "duplicate patient_id", value)
                    )
                else:
                    errors.append(RowError(_position(df, case.index), None, check))
                continue
            column = case.column if isinstance(case.column, str) else None
            value = case.failure_case
            reason = check
            if check == "column_in_schema":
                column, value, reason = str(value), None, "unknown column"
            elif check == "column_in_dataframe":
                column, value, reason = str(value), None, "required column missing"
            elif check.startswith(("coerce_dtype", "dtype(")):
                continue  # already reported cell by cell by _coerce
            elif check == "not_nullable":
                reason, value = "missing value in a required column", None
            errors.append(
                RowError(_position(df, case.index), column, reason, _plain(value))
            )
    if errors:
        # Cells that failed coercion are missing now; a required column may report
        # them again as "missing value": keep only the type error.
        seen = {(e.row, e.column) for e in errors if e.reason.startswith("wrong type")}
        errors = [
            e
            for e in errors
            if e.reason.startswith("wrong type") or (e.row, e.column) not in seen
        ]
        errors.sort(key=lambda e: (e.row is None, e.row or 0, e.column or ""))
        raise CohortValidationError(errors)
    return validated


def _contradictions(df: pd.DataFrame) -> list[RowError]:
    """The record's cross-field rules, row by row (one definition:
    :func:`data_schema.patient.consistency_problems`)."""
    specs = field_specs()
    columns: dict[str, list[object]] = {}
    for name in CONSISTENCY_FIELDS:
        if name not in df:
            columns[name] = [None] * len(df)
            continue
        col = df[name]
        values = col.astype(object).where(col.notna(), None).tolist()
        if specs[name].kind == "date":  # Timestamp → date, as in a record
            values = [None if v is None else v.date() for v in values]
        columns[name] = values
    errors = []
    for row, message in consistency_problems(columns):
        column, reason = message.split(": ", 1)
        errors.append(RowError(row, column, reason))
    return errors


def _plain(value: object) -> object:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value.item() if hasattr(value, "item") else value
