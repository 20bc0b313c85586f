"""FHIR resources as flat columns: one row per resource, the elements the mapping reads.

Both readers come through here: a Bulk Data ndjson file is parsed block by block by
Arrow's JSON reader with an explicit schema (only the elements named below are read;
everything else is skipped in C++), and one patient's resources are written as
ndjson and parsed the same way. So a bundle and a bulk export are flattened by one
definition, and the rules (:mod:`data_schema.fhir.select`) see the same columns.

The facts frame has one row per resource: ``pid`` (the patient's id), ``ref``
(``Observation/abc``), ``rtype``, ``concept`` (from the mapping's codes; None when no
coding is mapped), ``code`` (the first coding, for messages), ``status``, ``day`` and
``end`` (calendar dates, datetime64), ``num`` / ``unit`` (a quantity or a daily
dose), ``high`` / ``high_unit`` (the reference range's upper limit), ``result`` (1.0
positive, 0.0 negative, NaN), ``evidence`` (concepts among a Condition's evidence
codes, ``;``-joined) and ``route`` (``system|code``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from data_schema.fhir.mapping import FhirMapping

FACT_COLUMNS = (
    "pid",
    "ref",
    "rtype",
    "concept",
    "code",
    "status",
    "day",
    "end",
    "num",
    "unit",
    "high",
    "high_unit",
    "result",
    "evidence",
    "route",
)
#: Resource types the mapping reads; others are counted, not read.
READ_TYPES = (
    "Patient",
    "Observation",
    "Condition",
    "MedicationStatement",
    "MedicationAdministration",
    "Immunization",
)
UCUM = "http://unitsofmeasure.org"
_DAYS_PER_UNIT = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0}

_S = pa.string()
_F = pa.float64()
_CODING = pa.list_(pa.struct([("system", _S), ("code", _S)]))
_CONCEPT = pa.struct([("coding", _CODING)])
_QTY = pa.struct([("value", _F), ("unit", _S), ("system", _S), ("code", _S)])
_REF = pa.struct([("reference", _S)])
_PERIOD = pa.struct([("start", _S), ("end", _S)])
_COMMON = [("resourceType", _S), ("id", _S), ("status", _S)]
_SCHEMAS = {
    "Patient": pa.schema([*_COMMON, ("gender", _S), ("birthDate", _S)]),
    "Observation": pa.schema(
        [
            *_COMMON,
            ("subject", _REF),
            ("code", _CONCEPT),
            ("effectiveDateTime", _S),
            ("effectivePeriod", _PERIOD),
            ("effectiveInstant", _S),
            ("valueQuantity", _QTY),
            ("valueCodeableConcept", _CONCEPT),
            ("valueBoolean", pa.bool_()),
            ("interpretation", pa.list_(_CONCEPT)),
            ("referenceRange", pa.list_(pa.struct([("high", _QTY)]))),
        ]
    ),
    "Condition": pa.schema(
        [
            *_COMMON,
            ("subject", _REF),
            ("code", _CONCEPT),
            ("verificationStatus", _CONCEPT),
            ("onsetDateTime", _S),
            ("onsetPeriod", _PERIOD),
            ("evidence", pa.list_(pa.struct([("code", pa.list_(_CONCEPT))]))),
        ]
    ),
    "MedicationStatement": pa.schema(
        [
            *_COMMON,
            ("subject", _REF),
            ("medicationCodeableConcept", _CONCEPT),
            ("effectiveDateTime", _S),
            ("effectivePeriod", _PERIOD),
            (
                "dosage",
                pa.list_(
                    pa.struct(
                        [
                            ("route", _CONCEPT),
                            (
                                "timing",
                                pa.struct(
                                    [
                                        (
                                            "repeat",
                                            pa.struct(
                                                [
                                                    ("frequency", _F),
                                                    ("period", _F),
                                                    ("periodUnit", _S),
                                                ]
                                            ),
                                        )
                                    ]
                                ),
                            ),
                            (
                                "doseAndRate",
                                pa.list_(pa.struct([("doseQuantity", _QTY)])),
                            ),
                        ]
                    )
                ),
            ),
        ]
    ),
    "MedicationAdministration": pa.schema(
        [
            *_COMMON,
            ("subject", _REF),
            ("medicationCodeableConcept", _CONCEPT),
            ("effectiveDateTime", _S),
            ("effectivePeriod", _PERIOD),
            ("dosage", pa.struct([("route", _CONCEPT), ("dose", _QTY)])),
        ]
    ),
    "Immunization": pa.schema(
        [
            *_COMMON,
            ("patient", _REF),
            ("vaccineCode", _CONCEPT),
            ("occurrenceDateTime", _S),
        ]
    ),
}


def frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame whose object columns (Python strings, None) stay object columns.

    pandas 3 would store them as Arrow strings and convert them back to Python
    strings at every ``to_numpy``; over a registry's millions of rows that doubled
    the time of reading an export.
    """
    return pd.DataFrame(
        {
            name: pd.Series(col, dtype=object, copy=False)
            if col.dtype == object
            else col
            for name, col in columns.items()
        },
        copy=False,
    )


@dataclass
class Flat:
    """One block of resources of one type, flattened."""

    columns: dict[str, np.ndarray] | None  # FACT_COLUMNS; None for Patient blocks
    patients: pd.DataFrame  # pid, ref, gender, birth (Patient resources only)
    problems: list[tuple[str, str, str | None, str]]  # (pid, resource, field, why)

    @property
    def facts(self) -> pd.DataFrame:
        """One row per non-Patient resource (FACT_COLUMNS)."""
        return _empty_facts() if self.columns is None else frame(self.columns)

    def rows(self) -> list[dict]:
        """The same rows as plain dicts, dates as ``datetime.date`` or None — for one
        patient, where building a DataFrame would cost more than the rules."""
        if self.columns is None:
            return []
        cols = {}
        for name, col in self.columns.items():
            if col.dtype.kind == "M":
                col = col.astype(object)  # datetime.date; NaT becomes None
            elif col.dtype.kind == "f":
                col = np.where(np.isnan(col), None, col).astype(object)
            cols[name] = col.tolist()
        return [
            dict(zip(cols, values, strict=True))
            for values in zip(*cols.values(), strict=True)
        ]


# --- reading nested Arrow columns ---
def _get(table: pa.Table, path: str) -> pa.Array:
    """A nested element (``a.b.c``) as one array; null where any step is null."""
    first, *rest = path.split(".")
    arr = table.column(first).combine_chunks()
    for name in rest:
        arr = pc.struct_field(arr, name)
    return arr


def _first(arr: pa.Array) -> pa.Array:
    """The first element of each list (null where the list is empty or null)."""
    n = len(arr)
    parents = pc.list_parent_indices(arr).to_numpy()
    flat = pc.list_flatten(arr)
    take = np.full(n, -1, dtype=np.int64)
    if len(parents):
        rows, first = np.unique(parents, return_index=True)
        take[rows] = first
    missing = take < 0
    if len(flat) == 0:
        return pa.nulls(n, flat.type)
    return flat.take(pa.array(np.where(missing, 0, take), mask=missing))


def _field(arr: pa.Array, *path: str) -> pa.Array:
    for name in path:
        arr = pc.struct_field(arr, name)
    return arr


def _coalesce(*arrays: pa.Array) -> pa.Array:
    return pc.coalesce(*arrays)


def _strings(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _floats(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False).astype(np.float64)


def _days(arr: pa.Array) -> np.ndarray:
    """ISO dates / dateTimes → datetime64[D]; the local calendar day as written.

    Partial dates (``2020``, ``2020-05``) read as their first day; text that is not
    a date becomes NaT (the rules report a resource without a usable date).
    """
    day = pc.utf8_slice_codeunits(arr, 0, 10)
    parsed = pc.strptime(day, format="%Y-%m-%d", unit="s", error_is_null=True)
    out = parsed.to_numpy(zero_copy_only=False).astype("M8[D]")
    partial = np.flatnonzero(
        pc.is_valid(day).to_numpy(zero_copy_only=False) & np.isnat(out)
    )
    if len(partial):  # rare: read the few partial dates one by one
        texts = pd.Series(_strings(day)[partial], dtype=object)
        out[partial] = pd.to_datetime(
            texts, format="ISO8601", errors="coerce"
        ).to_numpy("M8[D]")
    return out


def _codings(concept: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(row, ``system|code``) for every coding of a CodeableConcept column."""
    codings = _field(concept, "coding")
    rows = pc.list_parent_indices(codings).to_numpy()
    flat = pc.list_flatten(codings)
    keys = pc.binary_join_element_wise(
        pc.fill_null(pc.struct_field(flat, "system"), ""),
        pc.fill_null(pc.struct_field(flat, "code"), ""),
        "|",
    )
    return rows, _strings(keys)


def _lookup(concept: pa.Array, index: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the concept of its first mapped coding, and its first coding."""
    n = len(concept)
    codings = _field(concept, "coding")
    rows = pc.list_parent_indices(codings).to_numpy()
    flat = pc.list_flatten(codings)
    keys = pc.dictionary_encode(
        pc.binary_join_element_wise(
            pc.fill_null(pc.struct_field(flat, "system"), ""),
            pc.fill_null(pc.struct_field(flat, "code"), ""),
            "|",
        )
    )
    # a bulk file repeats a few dozen codes: look each distinct one up once
    distinct = _strings(keys.dictionary)
    codes = keys.indices.to_numpy(zero_copy_only=False)
    names = np.array([index.get(k) for k in distinct], dtype=object)[codes]
    keys = distinct[codes]
    out = np.full(n, None, dtype=object)
    first = np.full(n, None, dtype=object)
    # reversed so that the first coding of a row is written last and wins
    first[rows[::-1]] = keys[::-1]
    hit = names != None  # noqa: E711 - elementwise on an object array
    out[rows[hit][::-1]] = names[hit][::-1]
    return out, first


def _flags(concept: pa.Array, m: FhirMapping) -> np.ndarray:
    """1.0 / 0.0 where a coding is a positive / negative result, else NaN."""
    out = np.full(len(concept), np.nan)
    rows, keys = _codings(concept)
    s = pd.Series(keys, dtype=object)
    out[rows[s.isin(m.negative).to_numpy()]] = 0.0
    out[rows[s.isin(m.positive).to_numpy()]] = 1.0
    return out


def _unit(qty: pa.Array) -> pa.Array:
    """The unit as an EHR sends it: the UCUM code when given, else the unit text."""
    return _coalesce(_field(qty, "code"), _field(qty, "unit"))


def _ids(table: pa.Table, rtype: str, subject: str, lines: np.ndarray) -> tuple:
    ids = _get(table, "id")
    refs = _strings(pc.binary_join_element_wise(f"{rtype}/", ids, ""))
    for k in np.flatnonzero(pc.is_null(ids).to_numpy(zero_copy_only=False)):
        refs[k] = f"{rtype} line {lines[k]}"  # no id: where it is
    if subject:
        pid = pc.replace_substring_regex(_get(table, subject), "^Patient/", "")
        return _strings(pid), refs
    return _strings(ids), refs


# --- per resource type ---
def _observation(t: pa.Table, m: FhirMapping) -> dict[str, np.ndarray]:
    value = _get(t, "valueQuantity")
    high = _field(_first(_get(t, "referenceRange")), "high")
    result = _flags(_get(t, "valueCodeableConcept"), m)
    boolean = _get(t, "valueBoolean").to_numpy(zero_copy_only=False)
    result = np.where(np.isnan(result), _as_flag(boolean), result)
    interp = _flags(pa.array(_first(_get(t, "interpretation"))), m)
    result = np.where(np.isnan(result), interp, result)
    day = _coalesce(
        _get(t, "effectiveDateTime"),
        _get(t, "effectivePeriod.start"),
        _get(t, "effectiveInstant"),
    )
    return {
        "codes": _get(t, "code"),
        "status": _strings(_get(t, "status")),
        "day": _days(day),
        "num": _floats(_field(value, "value")),
        "unit": _strings(_unit(value)),
        "high": _floats(_field(high, "value")),
        "high_unit": _strings(_unit(high)),
        "result": result,
    }


def _as_flag(values: np.ndarray) -> np.ndarray:
    out = np.full(len(values), np.nan)
    out[values == True] = 1.0  # noqa: E712 - object array of True/False/None
    out[values == False] = 0.0  # noqa: E712
    return out


def _condition(t: pa.Table, m: FhirMapping) -> dict[str, np.ndarray]:
    evidence = _get(t, "evidence")
    parents = pc.list_parent_indices(evidence).to_numpy()
    codes = pc.list_flatten(pc.struct_field(pc.list_flatten(evidence), "code"))
    code_parents = parents[
        pc.list_parent_indices(
            pc.struct_field(pc.list_flatten(evidence), "code")
        ).to_numpy()
    ]
    names, _ = _lookup(codes, m.code_index())
    joined = np.full(len(t), None, dtype=object)
    hits = pd.Series(names, dtype=object).notna().to_numpy()
    if hits.any():
        grouped = pd.Series(names[hits]).groupby(code_parents[hits]).agg(";".join)
        joined[grouped.index.to_numpy()] = grouped.to_numpy()
    verification = _first(_field(_get(t, "verificationStatus"), "coding"))
    day = _coalesce(_get(t, "onsetDateTime"), _get(t, "onsetPeriod.start"))
    return {
        "codes": _get(t, "code"),
        "status": _strings(pc.struct_field(verification, "code")),
        "day": _days(day),
        "evidence": joined,
    }


def _statement(t: pa.Table, m: FhirMapping) -> dict[str, np.ndarray]:
    dosage = _first(_get(t, "dosage"))
    dose = _field(_first(_field(dosage, "doseAndRate")), "doseQuantity")
    repeat = _field(dosage, "timing", "repeat")
    unit_days = (
        pd.Series(_strings(_field(repeat, "periodUnit")), dtype=object)
        .map(_DAYS_PER_UNIT)
        .to_numpy(dtype=np.float64)
    )
    per_day = _floats(_field(repeat, "frequency")) / (
        _floats(_field(repeat, "period")) * unit_days
    )
    route = _first(_field(_field(dosage, "route"), "coding"))
    return {
        "codes": _get(t, "medicationCodeableConcept"),
        "status": _strings(_get(t, "status")),
        "day": _days(
            _coalesce(_get(t, "effectivePeriod.start"), _get(t, "effectiveDateTime"))
        ),
        "end": _days(_get(t, "effectivePeriod.end")),
        "num": _floats(_field(dose, "value")) * per_day,
        "unit": _strings(_unit(dose)),
        "route": _route(route),
    }


def _route(coding: pa.Array) -> np.ndarray:
    keys = pc.binary_join_element_wise(
        pc.struct_field(coding, "system"), pc.struct_field(coding, "code"), "|"
    )
    return _strings(keys)


def _administration(t: pa.Table, m: FhirMapping) -> dict[str, np.ndarray]:
    dosage = _get(t, "dosage")
    dose = _field(dosage, "dose")
    route = _first(_field(_field(dosage, "route"), "coding"))
    return {
        "codes": _get(t, "medicationCodeableConcept"),
        "status": _strings(_get(t, "status")),
        "day": _days(
            _coalesce(_get(t, "effectiveDateTime"), _get(t, "effectivePeriod.start"))
        ),
        "end": _days(_get(t, "effectivePeriod.end")),
        "num": _floats(_field(dose, "value")),
        "unit": _strings(_unit(dose)),
        "route": _route(route),
    }


def _immunization(t: pa.Table, m: FhirMapping) -> dict[str, np.ndarray]:
    return {
        "codes": _get(t, "vaccineCode"),
        "status": _strings(_get(t, "status")),
        "day": _days(_get(t, "occurrenceDateTime")),
    }


_EXTRACT = {
    "Observation": (_observation, "subject.reference"),
    "Condition": (_condition, "subject.reference"),
    "MedicationStatement": (_statement, "subject.reference"),
    "MedicationAdministration": (_administration, "subject.reference"),
    "Immunization": (_immunization, "patient.reference"),
}


def _facts(t: pa.Table, rtype: str, m: FhirMapping, lines: np.ndarray) -> dict:
    extract, subject = _EXTRACT[rtype]
    cols = extract(t, m)
    pid, ref = _ids(t, rtype, subject, lines)
    concept, code = _lookup(cols.pop("codes"), m.code_index())
    n = len(t)
    frame = {
        "pid": pid,
        "ref": ref,
        "rtype": np.full(n, rtype, dtype=object),
        "concept": concept,
        "code": code,
    }
    for name in FACT_COLUMNS[5:]:
        if name in cols:
            frame[name] = cols[name]
        elif name in ("day", "end"):
            frame[name] = np.full(n, np.datetime64("NaT"), dtype="M8[D]")
        elif name in ("num", "high", "result"):
            frame[name] = np.full(n, np.nan)
        else:
            frame[name] = np.full(n, None, dtype=object)
    return frame


def _patients(t: pa.Table, lines: np.ndarray) -> pd.DataFrame:
    pid, ref = _ids(t, "Patient", "", lines)
    return frame(
        {
            "pid": pid,
            "ref": ref,
            "gender": _strings(_get(t, "gender")),
            "birth": _days(_get(t, "birthDate")),
        }
    )


# --- reading ndjson ---
def _parse(data: bytes, rtype: str) -> pa.Table:
    return pj.read_json(
        io.BytesIO(data),
        read_options=pj.ReadOptions(use_threads=False, block_size=1 << 20),
        parse_options=pj.ParseOptions(
            explicit_schema=_SCHEMAS[rtype], unexpected_field_behavior="ignore"
        ),
    )


def _parse_lines(data: bytes, rtype: str, offset: int) -> tuple:
    """After the block failed: the lines that parse (and their line numbers), and
    why the others did not.

    The block is halved until the failing lines are alone, so a bad line costs
    ~2·log2(lines) parses instead of one parse per line of its block.
    """
    lines = data.splitlines(keepends=True)
    good, numbers, problems = [], [], []

    def parse(lo: int, hi: int) -> None:
        chunk = b"".join(lines[lo:hi])
        if not chunk.strip():
            return
        read = [offset + k + 1 for k in range(lo, hi) if lines[k].strip()]
        try:
            table = _parse(chunk, rtype)
            if len(table) != len(read):  # a line holding two objects, say
                raise ValueError("not one JSON object per line")
        except (pa.ArrowInvalid, ValueError) as exc:
            if hi - lo == 1:
                where = f"{rtype} line {offset + lo + 1}"
                problems.append((None, where, None, f"not readable FHIR JSON: {exc}"))
                return
            mid = (lo + hi) // 2
            parse(lo, mid)
            parse(mid, hi)
            return
        good.append(table)
        numbers.extend(read)

    parse(0, len(lines))
    table = pa.concat_tables(good) if good else _SCHEMAS[rtype].empty_table()
    return table, np.array(numbers, dtype=np.int64), problems


def flatten_ndjson(data: bytes, rtype: str, m: FhirMapping, offset: int = 0) -> Flat:
    """Flatten a block of ndjson lines, all of one resource type.

    Args:
        data: whole lines (``\\n``-separated) of one resource type.
        rtype: the resource type (the bulk file's name).
        m: the mapping.
        offset: lines before this block, for line numbers in messages.
    """
    problems: list = []
    try:
        table = _parse(data, rtype)
        lines = offset + 1 + np.arange(len(table))
    except (pa.ArrowInvalid, ValueError):
        table, lines, problems = _parse_lines(data, rtype, offset)
    kinds = _strings(_get(table, "resourceType"))
    wrong = kinds != rtype
    if wrong.any():
        for k in np.flatnonzero(wrong):
            problems.append(
                (
                    None,
                    f"{rtype} line {lines[k]}",
                    None,
                    f"resourceType {kinds[k]!r} in the {rtype} file: not read",
                )
            )
        table, lines = table.filter(pa.array(~wrong)), lines[~wrong]
    if rtype == "Patient":
        return Flat(None, _patients(table, lines), problems)
    return Flat(_facts(table, rtype, m, lines), _empty_patients(), problems)


def _empty_facts() -> pd.DataFrame:
    def dtype(column: str) -> str:
        if column in ("day", "end"):
            return "datetime64[s]"
        return "float64" if column in ("num", "high", "result") else "object"

    return pd.DataFrame({c: pd.Series(dtype=dtype(c)) for c in FACT_COLUMNS})


def _empty_patients() -> pd.DataFrame:
    return _patients(_SCHEMAS["Patient"].empty_table(), np.zeros(0, dtype=np.int64))


def blocks(path, size: int = 1 << 24) -> Iterator[tuple[bytes, int, int]]:
    """A ndjson file in blocks of whole lines: (data, lines before, bytes read)."""
    lines = 0
    with open(path, "rb") as fh:
        rest = b""
        while True:
            chunk = fh.read(size)
            if not chunk:
                break
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            yield block, lines, len(chunk)
            lines += block.count(b"\n")
        if rest.strip():
            yield rest + b"\n", lines, 0
