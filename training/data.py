"""Cohort files in, development and held-out test sets out.

A cohort is a table in the :class:`data_schema.PatientRecord` schema, one row per
patient, with the observed outcome ``ln_within_2y`` when it is used for training or
validation. It comes from a file (Parquet or CSV) or from another *data source* named
by a URL-like string that a run records so the same data can be rebuilt: a file
path, or ``synthetic://…`` for the synthetic generator. Readers for schemes other than
files are passed in by the caller (the CLI passes the synthetic generator's), so the
training path itself never imports the generator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from data_schema import OUTCOME_COLUMN, validate_cohort

SourceReader = Callable[[str], pd.DataFrame]
"""Rebuilds the cohort a data source describes (e.g. ``synthetic://…``)."""


def read_cohort(path: str | Path) -> pd.DataFrame:
    """Read a cohort table from Parquet or CSV (by extension), unvalidated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cohort file not found: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"unsupported cohort file type {path.suffix!r} (parquet or csv)")


def read_source(
    source: str, readers: Mapping[str, SourceReader] | None = None
) -> pd.DataFrame:
    """The cohort a recorded data source names: a file path, or ``<scheme>://…``.

    Raises:
        ValueError: a scheme no reader was given for.
    """
    scheme = urlparse(source).scheme
    if len(scheme) <= 1 or scheme == "file":  # a path (or a Windows drive letter)
        return read_cohort(source.removeprefix("file://"))
    reader = (readers or {}).get(scheme)
    if reader is None:
        raise ValueError(
            f"data source {source!r}: nothing here reads {scheme}:// sources "
            "(run through the lnrisk CLI, or pass --cohort with a file)"
        )
    return reader(source)


def load_outcome_cohort(df: pd.DataFrame, what: str = "training") -> pd.DataFrame:
    """Validate a cohort table that must carry the observed outcome.

    Raises:
        data_schema.CohortValidationError: listing every bad row.
        ValueError: the outcome column is absent.
    """
    cohort = validate_cohort(df)
    if OUTCOME_COLUMN not in cohort:
        raise ValueError(
            f"the cohort has no {OUTCOME_COLUMN!r} column: {what} needs the observed "
            "2-year outcome (1 = new-onset LN within 24 months)"
        )
    return cohort


def split_by_patient(
    df: pd.DataFrame, test_fraction: float, seed: int, stratify: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Development and held-out test sets; each patient lands in exactly one."""
    ids = df["patient_id"].to_numpy()
    per_patient = df.groupby("patient_id", sort=False)[OUTCOME_COLUMN].max()
    dev_ids, test_ids = train_test_split(
        per_patient.index.to_numpy(),
        test_size=test_fraction,
        random_state=seed,
        stratify=per_patient.to_numpy() if stratify else None,
    )
    test_mask = np.isin(ids, test_ids)
    assert not np.isin(dev_ids, test_ids).any()
    return (
        df.loc[~test_mask].reset_index(drop=True),
        df.loc[test_mask].reset_index(drop=True),
    )
