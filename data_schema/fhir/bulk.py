"""A FHIR Bulk Data export (a folder of ndjson) → a cohort table, column-wise.

Each ``<ResourceType>*.ndjson`` file is read in blocks of whole lines by Arrow's JSON
reader (only the elements the mapping needs are parsed), flattened into columns
(:mod:`data_schema.fhir.flatten`) and, once every file is read, the mapping's rules
run over all patients at once (:func:`data_schema.fhir.select.select`) — the same
code :func:`data_schema.fhir.read_patient` runs for one patient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from data_schema.fhir.flatten import READ_TYPES, blocks, flatten_ndjson
from data_schema.fhir.mapping import FhirMapping, load_mapping
from data_schema.fhir.select import PROBLEM_COLUMNS, select
from data_schema.fields import field_specs
from data_schema.table import PANDAS_DTYPES


@dataclass
class BulkReading:
    """A bulk export read as a cohort table."""

    cohort: pd.DataFrame  # one row per Patient resource, every PatientRecord column
    provenance: pd.DataFrame  # same rows: the resource behind each value
    problems: pd.DataFrame  # pid, resource, field, why
    resources: dict[str, int]  # resources read per type (files of other types: 0)


def bulk_files(folder: str | Path) -> list[tuple[str, Path]]:
    """(resource type, file) for every ``*.ndjson`` of a folder, Patient first."""
    files = sorted(Path(folder).glob("*.ndjson"))
    if not files:
        raise FileNotFoundError(f"{folder}: no .ndjson files (a FHIR Bulk Data export)")
    typed = [(f.name.split(".")[0].split("_")[0], f) for f in files]
    return sorted(typed, key=lambda t: (t[0] != "Patient", t[0], t[1].name))


def read_bulk(
    folder: str | Path,
    screening_date: date,
    *,
    progress: Callable[[int], None] | None = None,
    mapping: FhirMapping | None = None,
) -> BulkReading:
    """Read every ndjson file of a Bulk Data export into a cohort table.

    Args:
        folder: the export's folder (``Patient.ndjson``, ``Observation.ndjson`` …).
        screening_date: day 0 of every look-back window.
        progress: called with the bytes read after each block.
        mapping: the mapping (default: ``mapping.yaml``).

    Raises:
        FileNotFoundError: no ndjson file in the folder.
    """
    m = mapping or load_mapping()
    facts, patients, problems = [], [], []
    counts: dict[str, int] = {}
    for rtype, path in bulk_files(folder):
        if rtype not in READ_TYPES:
            counts.setdefault(rtype, 0)
            problems.append((None, path.name, None, f"{rtype} is not read"))
            if progress:
                progress(path.stat().st_size)
            continue
        for data, lines, size in blocks(path):
            flat = flatten_ndjson(data, rtype, m, offset=lines)
            facts.append(flat.facts)
            patients.append(flat.patients)
            problems += flat.problems
            read = len(facts[-1]) + len(flat.patients)
            counts[rtype] = counts.get(rtype, 0) + read
            if progress:
                progress(size)
    chosen = select(
        pd.concat(facts, ignore_index=True),
        pd.concat(patients, ignore_index=True),
        screening_date,
        m,
    )
    read_problems = pd.DataFrame(problems, columns=list(PROBLEM_COLUMNS))
    return BulkReading(
        cohort=cohort_table(chosen.values),
        provenance=chosen.provenance.reset_index(drop=True),
        problems=pd.concat([read_problems, chosen.problems], ignore_index=True),
        resources=counts,
    )


def cohort_table(values: pd.DataFrame) -> pd.DataFrame:
    """Selected values (object columns) as a typed cohort table with every field."""
    n = len(values)
    columns = {}
    for name, spec in field_specs().items():
        dtype = PANDAS_DTYPES[spec.kind]
        if name not in values:
            columns[name] = pd.Series([None] * n, dtype=dtype)
            continue
        col = values[name].reset_index(drop=True)
        if spec.kind == "float":
            columns[name] = pd.to_numeric(col, errors="raise").astype("float64")
        elif spec.kind == "int":
            columns[name] = pd.to_numeric(col).astype("Float64").astype("Int64")
        elif spec.kind == "date":
            columns[name] = pd.to_datetime(col).astype("datetime64[ns]")
        else:
            columns[name] = col.astype(dtype)
    return pd.DataFrame(columns)
