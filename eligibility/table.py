"""Patients as typed columns: what the criteria are evaluated on.

One patient is a table of one row. The same evaluator reads a cohort table (a
DataFrame) or a request's records, so the single-patient and the column-wise
screening agree by construction. Columns are converted when a rule first asks for
them and cached: a criterion that reads age twice (the age criterion and creatinine
clearance) pays once, and a single record converts only the fields the criteria use.

Every accessor takes one field name (→ one value per patient) or a tuple of names
(→ a matrix, one row per field): the evaluator reads all fields of one kind of rule
leaf at once. Missing is NaN (numbers, days), False plus :meth:`Table.na` (flags),
None (text).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache, cached_property
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from data_schema import (
    PatientRecord,
    field_specs,
    frame_to_features,
    records_to_features,
)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Fields = str | tuple[str, ...]


def _plain(value: Any) -> Any:
    """A cell as the record would hold it: date, float, bool, str or None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value).date()
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class Table(ABC):
    """Typed, cached access to the fields of ``n`` patients on a screening date.

    Build one with :meth:`from_frame`, :meth:`from_records` or :meth:`from_record`;
    an absent column counts as missing for everyone.
    """

    def __init__(self, n: int, screening_date: date) -> None:
        self.n = n
        self.screening_date = screening_date
        self._cache: dict[tuple[str, Fields], Any] = {}

    @classmethod
    def from_frame(cls, df: pd.DataFrame, screening_date: date) -> Table:
        """A validated cohort table (``data_schema.validate_cohort``)."""
        return _FrameTable(df.reset_index(drop=True), screening_date)

    @classmethod
    def from_records(
        cls, records: Sequence[PatientRecord], screening_date: date
    ) -> Table:
        """Validated records (a request: one patient or a few)."""
        return _RecordTable(records, screening_date)

    @classmethod
    def from_record(cls, record: PatientRecord, screening_date: date) -> Table:
        """One patient: a table of one row."""
        return _RecordTable((record,), screening_date)

    # --- what a source provides ---------------------------------------------------
    @abstractmethod
    def value(self, name: str, row: int) -> Any:
        """The recorded value of one cell (date, number, flag, text or None)."""

    @abstractmethod
    def features(self) -> np.ndarray:
        """The model's feature matrix (age at the screening date when only the date
        of birth is recorded)."""

    @abstractmethod
    def _typed(self, kind: str, fields: tuple[str, ...]) -> np.ndarray:
        """``kind`` (num, na, flag, text, dates) of ``fields``, one row per field."""

    # --- typed access, cached -----------------------------------------------------
    def _get(self, kind: str, fields: Fields) -> Any:
        key = (kind, fields)
        found = self._cache.get(key)
        if found is None:
            if isinstance(fields, str):
                found = self._typed_one(kind, fields)
            else:
                found = self._typed(kind, fields)
            self._cache[key] = found
        return found

    def _typed_one(self, kind: str, name: str) -> np.ndarray:
        """``kind`` of one field (one value per patient)."""
        return self._typed(kind, (name,))[0]

    def num(self, fields: Fields) -> FloatArray:
        """Numbers (counts as floats), NaN where missing."""
        return self._get("num", fields)

    def na(self, fields: Fields) -> BoolArray:
        """Where the field is not recorded."""
        return self._get("na", fields)

    def flag(self, fields: Fields) -> BoolArray:
        """Where the flag is recorded true (missing → False; see :meth:`na`)."""
        return self._get("flag", fields)

    def text(self, fields: Fields) -> NDArray[np.object_]:
        """Categories and text, None where missing."""
        return self._get("text", fields)

    def dates(self, fields: Fields) -> NDArray[np.datetime64]:
        """Dates as ``datetime64[D]``, NaT where missing or after the screening date.

        Every date is read relative to the screening date: one after it (a birth,
        a dose, a diagnosis that has not happened yet on day 0) cannot be used, so
        what rests on it is unknown (:meth:`after_screening` tells which).
        """
        key = ("dates-on", fields)
        found = self._cache.get(key)
        if found is None:
            found = self._get("dates", fields)
            later = found > np.datetime64(self.screening_date, "D")
            if later.any():
                found = np.where(later, np.datetime64("NaT"), found)
            self._cache[key] = found
        return found

    def after_screening(self, name: str, row: int) -> bool:
        """The date ``name`` of ``row`` is recorded but later than the screening
        date."""
        value = self.value(name, row)
        return value is not None and value > self.screening_date

    def days_ago(self, fields: Fields) -> FloatArray:
        """Whole days from the date to the screening date (0 on the day; NaN if
        missing)."""
        key = ("days_ago", fields)
        found = self._cache.get(key)
        if found is None:
            days = np.datetime64(self.screening_date, "D") - self.dates(fields)
            found = days.astype(np.float64)
            found[np.isnat(days)] = np.nan
            self._cache[key] = found
        return found

    def derived(self, name: str, make: Callable[[], Any]) -> Any:
        """A derived variable of this table, computed once (see
        :mod:`eligibility.derived`)."""
        key = ("derived", name)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = make()
        return found


@cache
def _record_layout() -> dict[str, tuple[np.ndarray, dict[str, int]]]:
    """For each kind of value, the positions of its fields in a record's
    ``__dict__`` (declaration order) and each field's row among them."""
    kinds = {"num": ("float", "int"), "flag": ("bool",), "dates": ("date",)}
    specs = list(field_specs().values())
    layout = {}
    for kind, field_kinds in kinds.items():
        positions = [j for j, s in enumerate(specs) if s.kind in field_kinds]
        rows = {specs[j].name: r for r, j in enumerate(positions)}
        layout[kind] = (np.array(positions, dtype=np.intp), rows)
    everything = np.arange(len(specs), dtype=np.intp)
    layout["cells"] = (everything, {s.name: j for j, s in enumerate(specs)})
    return layout


class _RecordTable(Table):
    """Records as they arrived: every field converted in one pass per kind of value,
    the first time any is asked for (one record: a few tens of microseconds)."""

    def __init__(self, records: Sequence[PatientRecord], screening_date: date) -> None:
        super().__init__(len(records), screening_date)
        self.records = records

    def value(self, name: str, row: int) -> Any:
        return getattr(self.records[row], name)

    def features(self) -> np.ndarray:
        found = self._cache.get(("features", ""))
        if found is None:
            found = records_to_features(self.records, as_of=self.screening_date)
            self._cache[("features", "")] = found
        return found

    @cached_property
    def _matrices(self) -> dict[str, np.ndarray]:
        """Every field's values, one matrix per kind (fields × patients)."""
        layout = _record_layout()
        cells = np.empty((len(layout["cells"][0]), self.n), dtype=object)
        for i, record in enumerate(self.records):
            cells[:, i] = tuple(record.__dict__.values())
        missing = np.equal(cells, None).astype(bool)
        num, flag, dates = (layout[k][0] for k in ("num", "flag", "dates"))
        return {
            "cells": cells,
            "na": missing,
            "num": np.where(missing[num], np.nan, cells[num]).astype(np.float64),
            "flag": np.equal(cells[flag], True).astype(bool),
            "dates": cells[dates].astype("datetime64[D]"),
        }

    def _typed(self, kind: str, fields: tuple[str, ...]) -> np.ndarray:
        rows, matrix = self._source(kind)
        return matrix[[rows[name] for name in fields]]

    def _typed_one(self, kind: str, name: str) -> np.ndarray:
        rows, matrix = self._source(kind)
        return matrix[rows[name]]  # a view: no copy

    def _source(self, kind: str) -> tuple[dict[str, int], np.ndarray]:
        layout = "cells" if kind in ("na", "text") else kind
        return _record_layout()[layout][1], self._matrices[
            "cells" if kind == "text" else kind
        ]


class _FrameTable(Table):
    """A cohort table: each column converted once, with pandas' vectorised casts."""

    def __init__(self, df: pd.DataFrame, screening_date: date) -> None:
        super().__init__(len(df), screening_date)
        self.df = df

    def value(self, name: str, row: int) -> Any:
        if name not in self.df:
            return None
        cells = self._cache.get(("cells", name))
        if cells is None:  # one conversion per column, not a lookup per cell
            cells = self._cache[("cells", name)] = self.df[name].to_numpy(object)
        return _plain(cells[row])

    def features(self) -> np.ndarray:
        found = self._cache.get(("features", ""))
        if found is None:
            found = frame_to_features(self.df, as_of=self.screening_date)
            self._cache[("features", "")] = found
        return found

    def _typed(self, kind: str, fields: tuple[str, ...]) -> np.ndarray:
        return np.stack([self._column(kind, name) for name in fields])

    def _typed_one(self, kind: str, name: str) -> np.ndarray:
        return self._column(kind, name)

    def _column(self, kind: str, name: str) -> np.ndarray:
        key = (f"column-{kind}", name)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._convert(kind, name)
        return found

    def _convert(self, kind: str, name: str) -> np.ndarray:
        column = self.df.get(name)
        if column is None:
            empty = {
                "num": np.nan,
                "na": True,
                "flag": False,
                "text": None,
                "dates": np.datetime64("NaT"),
            }[kind]
            dtype = {"text": object, "dates": "datetime64[D]"}.get(kind)
            return np.full(self.n, empty, dtype=dtype)
        if kind == "na":
            return column.isna().to_numpy(dtype=bool)
        if kind == "flag":
            return column.fillna(False).to_numpy(dtype=bool)
        if kind == "text":
            return column.astype(object).where(column.notna(), None).to_numpy()
        if kind == "dates":
            return pd.to_datetime(column).to_numpy(dtype="datetime64[D]")
        if not pd.api.types.is_numeric_dtype(column.dtype):
            column = pd.to_numeric(column)
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
