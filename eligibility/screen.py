"""Population screening: the champion's risk, then the trial's rules, for a whole file.

``lnrisk screen`` scores every patient with the registered model (risk and uncertainty
band), applies the eligibility criteria column-wise (:func:`eligibility.screen_frame`,
the same decisions as the single-patient path), and writes a per-patient CSV and the
attrition table. Research screening support, not a diagnostic device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from data_schema import frame_to_features
from eligibility.batch import attrition_table, screen_frame
from eligibility.criteria import TrialCriteria

if TYPE_CHECKING:  # the service imports this module before it loads XGBoost
    from riskmodel import LNRiskModel

CHUNK = 20_000  # patients per progress step (smaller chunks cost ~30 ms each)
BandFor = Literal["gate", "all"]


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
    """Risk, band and every criterion for each patient of a validated cohort table.

    The band can only change the decision of a patient above the risk gate (at or
    below it the patient is ineligible whatever the band), so by default it is
    computed for those patients only: it costs ten boosters' predictions, about
    ten times the risk itself. Below the gate ``risk_band_low/high`` are empty.

    Args:
        model: the model whose risk feeds the gate.
        cohort: a table that passed :func:`data_schema.validate_cohort`.
        screening_date: day 0 for ages and wash-out windows.
        criteria: from :func:`eligibility.load_criteria`.
        band_for: ``"gate"`` (patients above the gate) or ``"all"``.
        progress: called with the number of patients done after each chunk.
    """
    threshold = criteria.risk_gate.threshold
    parts = []
    for start in range(0, len(cohort), CHUNK):
        chunk = cohort.iloc[start : start + CHUNK]
        X = frame_to_features(chunk, as_of=screening_date)
        risk = model.predict_proba(X)
        bands = None
        if model.band is not None:
            bands = np.full((len(chunk), 2), np.nan)
            rows = np.arange(len(chunk)) if band_for == "all" else risk > threshold
            if np.any(rows):
                low, high = model.predict_band(X[rows])  # type: ignore[misc]
                bands[rows] = np.column_stack([low, high])
        screened = screen_frame(chunk, risk, bands, screening_date, criteria)
        if bands is not None:
            screened.insert(2, "risk_band_low", bands[:, 0])
            screened.insert(3, "risk_band_high", bands[:, 1])
        parts.append(screened)
        if progress:
            progress(len(chunk))
    per_patient = pd.concat(parts) if parts else pd.DataFrame()
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
