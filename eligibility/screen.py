"""The one screening: the model's risk, the gate, then the trial's rules.

``screen_patients`` is what the service (``/screen``, ``/screen_batch``) and the CLI
(``lnrisk screen``) both run: the risk of every patient of a table, the uncertainty
band where it can change the decision (above the gate: below it a patient is
ineligible whatever the band), every criterion, and the decision
(:mod:`eligibility.decision`). One patient is a table of one row.

:func:`screen` and :func:`screen_frame` apply the rules to risks computed elsewhere
(tests, notebooks). Research screening support, not a diagnostic device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from data_schema import PatientRecord
from eligibility.attrition import attrition_table
from eligibility.criteria import TrialCriteria
from eligibility.decision import Decision, Screened, decide
from eligibility.table import Table

if TYPE_CHECKING:  # the service imports this module before it loads XGBoost
    from riskmodel import LNRiskModel

CHUNK = 20_000  # patients per progress step (smaller chunks cost ~30 ms each)
BandFor = Literal["gate", "all"]


def score(
    model: LNRiskModel, table: Table, threshold: float, band_for: BandFor = "gate"
) -> tuple[np.ndarray, np.ndarray]:
    """Risk per patient and the (n, 2) band (NaN where not computed).

    The band costs ten boosters' predictions, about ten times the risk itself, so by
    default it is computed only above the gate, where it can change the decision.
    """
    features = table.features()
    risk = model.predict_proba(features)
    band = np.full((table.n, 2), np.nan)
    if model.band is not None:
        rows = np.ones(table.n, dtype=bool) if band_for == "all" else risk > threshold
        if rows.any():
            low, high = model.predict_band(features[rows])  # type: ignore[misc]
            band[rows] = np.column_stack([low, high])
    return risk, band


def screen_patients(
    model: LNRiskModel,
    table: Table,
    criteria: TrialCriteria,
    *,
    band_for: BandFor = "gate",
) -> Screened:
    """Risk, band, every criterion and the decision for every patient of a table."""
    risk, band = score(model, table, criteria.risk_gate.threshold, band_for)
    return decide(table, criteria, risk, band)


def screen(
    record: PatientRecord,
    *,
    risk: float,
    band: tuple[float, float] | None,
    screening_date: date,
    criteria: TrialCriteria,
) -> Decision:
    """Screen one patient whose risk (and band) were computed elsewhere.

    Raises:
        ValueError: a risk or band that is not a probability.
    """
    if not 0.0 <= risk <= 1.0:
        raise ValueError(f"risk must be a probability in [0, 1], got {risk}")
    if band is not None and not 0.0 <= band[0] <= band[1] <= 1.0:
        raise ValueError(f"band must satisfy 0 <= low <= high <= 1, got {band}")
    table = Table.from_record(record, screening_date)
    bands = np.array([band if band is not None else (np.nan, np.nan)])
    return decide(table, criteria, np.array([risk]), bands).decision(0)


def screen_frame(
    df: pd.DataFrame,
    risks: Sequence[float] | np.ndarray,
    bands: Sequence[tuple[float, float] | None] | np.ndarray | None,
    screening_date: date,
    criteria: TrialCriteria,
) -> pd.DataFrame:
    """Screen every row of a cohort table whose risks were computed elsewhere.

    Returns:
        Same index as ``df``: ``status``, ``risk``, ``gate_passed``,
        ``missing_fields`` (tuple), ``to_confirm`` (tuple) and one verdict column
        per criterion id (``met`` / ``not_met`` / ``unknown`` / ``needs_judgment``).
    """
    n = len(df)
    if bands is None:
        band = None
    else:
        band = np.array(
            [(np.nan, np.nan) if b is None else b for b in bands], dtype=np.float64
        ).reshape(n, 2)
    screened = decide(
        Table.from_frame(df, screening_date), criteria, np.asarray(risks), band
    )
    out = screened.frame()
    out.index = df.index
    return out


# --- a whole file ---------------------------------------------------------------------
@dataclass(frozen=True)
class ScreeningResult:
    per_patient: pd.DataFrame
    attrition: pd.DataFrame


def screen_population(
    model: LNRiskModel,
    cohort: pd.DataFrame,
    screening_date: date,
    criteria: TrialCriteria,
    *,
    band_for: BandFor = "gate",
    progress: Callable[[int], None] | None = None,
) -> ScreeningResult:
    """:func:`screen_patients` for a validated cohort table, in chunks.

    Args:
        model: the model whose risk feeds the gate.
        cohort: a table that passed :func:`data_schema.validate_cohort`.
        screening_date: day 0 for ages and wash-out windows.
        criteria: from :func:`eligibility.load_criteria`.
        band_for: ``"gate"`` (patients above the gate) or ``"all"``.
        progress: called with the number of patients done after each chunk.
    """
    parts = []
    for start in range(0, len(cohort), CHUNK):
        chunk = cohort.iloc[start : start + CHUNK]
        screened = screen_patients(
            model, Table.from_frame(chunk, screening_date), criteria, band_for=band_for
        )
        part = screened.frame()
        if model.band is not None:
            part.insert(2, "risk_band_low", screened.band[:, 0])
            part.insert(3, "risk_band_high", screened.band[:, 1])
        parts.append(part)
        if progress:
            progress(len(chunk))
    per_patient = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if "patient_id" in cohort:
        per_patient.insert(0, "patient_id", cohort["patient_id"].to_numpy())
    return ScreeningResult(per_patient, attrition_table(per_patient, criteria))


def write_results(result: ScreeningResult, out_dir: str | Path) -> list[Path]:
    """``screening.csv`` (one row per patient) and ``attrition.csv``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = result.per_patient.copy()
    for col in ("missing_fields", "to_confirm"):
        if col in table:
            table[col] = table[col].map(lambda v: ";".join(v) if v else "")
    paths = [out / "screening.csv", out / "attrition.csv"]
    table.to_csv(paths[0], index=False)
    result.attrition.to_csv(paths[1], index=False)
    return paths
