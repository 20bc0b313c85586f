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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from data_schema import (
    OUTCOME_COLUMN,
    CohortValidationError,
    field_specs,
    validate_cohort,
)
from data_schema.table import RowError, parse_dates
from eligibility import TrialCriteria
from eligibility.population import group_verdicts

if TYPE_CHECKING:
    from training.config import TrainingConfig

#: The steps of a population's attrition (besides one row per criterion route).
STEP_COHORT = "cohort"
STEP_LEFT_OUT = "left out (any route)"
STEP_NOT_RULED_OUT = "kept, not ruled out (data missing)"
STEP_POPULATION = "development population"

SourceReader = Callable[[str], pd.DataFrame]
"""Rebuilds the cohort a data source describes (e.g. ``synthetic://…``)."""


def read_cohort(path: str | Path, date_format: str | None = None) -> pd.DataFrame:
    """Read a cohort table from Parquet or CSV (by extension), unvalidated.

    Args:
        path: the file.
        date_format: the ``strftime`` format of the file's dates written as text
            (e.g. ``%d/%m/%Y``); None: they must be ISO 8601 (``YYYY-MM-DD``), which
            :func:`data_schema.validate_cohort` checks. Dates are never guessed.

    Raises:
        data_schema.CohortValidationError: a date that does not follow the named
            format, with its row, column and value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cohort file not found: {path}")
    if path.suffix.lower() in {".parquet", ".pq"}:
        df = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        df = pd.read_csv(path)
    else:
        raise ValueError(
            f"unsupported cohort file type {path.suffix!r} (parquet or csv)"
        )
    return df if date_format is None else _read_dates(df, date_format)


def _read_dates(df: pd.DataFrame, date_format: str) -> pd.DataFrame:
    """The date columns of ``df`` read with ``date_format``; every cell that does
    not follow it is reported."""
    errors: list[RowError] = []
    out = df.copy()
    for name, spec in field_specs().items():
        if spec.kind != "date" or name not in df:
            continue
        parsed, bad, reason = parse_dates(df[name], date_format)
        errors += [
            RowError(int(i), name, reason, df[name].iat[i])
            for i in np.flatnonzero(bad.to_numpy())
        ]
        out[name] = parsed
    if errors:
        raise CohortValidationError(errors)
    return out


#: The run tag recording the ``strftime`` format a source file's dates were read with.
DATE_FORMAT_TAG = "data_date_format"


def read_source(
    source: str,
    readers: Mapping[str, SourceReader] | None = None,
    date_format: str | None = None,
) -> pd.DataFrame:
    """The cohort a recorded data source names: a file path, or ``<scheme>://…``.

    ``date_format`` is the format a file's dates were read with when the run was
    made (the run's ``data_date_format`` tag; None: ISO 8601).

    Raises:
        ValueError: a scheme no reader was given for.
    """
    scheme = urlparse(source).scheme
    if len(scheme) <= 1 or scheme == "file":  # a path (or a Windows drive letter)
        return read_cohort(source.removeprefix("file://"), date_format)
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


def development_population(
    cohort: pd.DataFrame,
    criteria: TrialCriteria,
    groups: Sequence[str],
    reference_date: date | None = None,
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """The patients the model is for, and the attrition of leaving the rest out.

    A patient meeting any criterion of ``groups`` (routes to a condition such as
    prior kidney involvement, defined once in the criteria file) is left out; one
    whose routes are all unknown (e.g. no urine result) cannot be told apart and
    stays, counted as such.

    Returns:
        The kept rows (index reset), and one attrition row per step: ``step``,
        ``patients``, ``events`` (when the outcome is known) — the cohort, each
        route (patients meeting it; one patient may meet several), the patients
        left out, those kept though not ruled out, and the population.
    """
    day = reference_date or date.today()

    def row(step: str, rows: pd.DataFrame | np.ndarray) -> dict[str, object]:
        table = cohort[rows] if isinstance(rows, np.ndarray) else rows
        events = int(table[OUTCOME_COLUMN].sum()) if OUTCOME_COLUMN in table else None
        return {"step": step, "patients": len(table), "events": events}

    attrition = [row(STEP_COHORT, cohort)]
    left_out = np.zeros(len(cohort), dtype=bool)
    not_ruled_out = np.zeros(len(cohort), dtype=bool)
    for group in groups:
        verdicts = group_verdicts(cohort, criteria, group, day)
        for criterion in criteria.group(group):
            met = (verdicts[criterion.id] == "met").to_numpy()
            attrition.append(row(f"{group}: {criterion.id}", met))
        left_out |= verdicts["met"].to_numpy(dtype=bool)
        not_ruled_out |= verdicts["unknown"].to_numpy(dtype=bool)
    attrition.append(row(STEP_LEFT_OUT, left_out))
    attrition.append(row(STEP_NOT_RULED_OUT, ~left_out & not_ruled_out))
    kept = cohort[~left_out].reset_index(drop=True)
    attrition.append(row(STEP_POPULATION, kept))
    return kept, attrition


@dataclass(frozen=True)
class PopulationDefinition:
    """Who a run's model is for: the criteria groups left out, read on one day.

    A run records it as tags, so the same patients can be rebuilt from the same data
    source later (evaluation, promotion), whatever day that is.
    """

    groups: tuple[str, ...]
    day: date

    def apply(
        self, cohort: pd.DataFrame, criteria: TrialCriteria
    ) -> tuple[pd.DataFrame, list[dict[str, object]]]:
        """The kept patients and the attrition (see :func:`development_population`)."""
        return development_population(cohort, criteria, self.groups, self.day)

    def tags(self) -> dict[str, str]:
        return {
            "population_groups": ",".join(self.groups),
            "population_date": self.day.isoformat(),
        }

    @classmethod
    def of(
        cls, groups: Sequence[str], reference_date: date | None
    ) -> PopulationDefinition:
        """The definition of a config's population settings, read today by default."""
        return cls(tuple(groups), reference_date or date.today())

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> PopulationDefinition | None:
        """The definition a run recorded; None for a run on everyone."""
        if "population_groups" not in tags:
            return None
        groups = tuple(g for g in tags["population_groups"].split(",") if g)
        return cls(groups, date.fromisoformat(tags["population_date"]))


def config_population(config: TrainingConfig) -> PopulationDefinition:
    """The population a training config develops and evaluates its models on."""
    return PopulationDefinition.of(
        config.population.exclude_groups, config.population.reference_date
    )
