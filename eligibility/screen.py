"""The one screening: the model's risk, the gate, then the trial's rules.

``screen_patients`` is what the service (``/screen``, ``/screen_batch``) and the CLI
(``lnrisk screen``) both run: the risk of every patient of a table and where it
stands against the gate (above, below, or undetermined given what is not recorded:
the model's three-valued gate), every criterion, and the decision
(:mod:`eligibility.decision`). One patient is a table of one row.

:func:`screen` and :func:`screen_frame` apply the rules to risks computed elsewhere
(tests, notebooks). Research screening support, not a diagnostic device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from data_schema import PatientRecord
from eligibility.attrition import attrition_table
from eligibility.criteria import TrialCriteria
from eligibility.decision import Decision, Screened, decide
from eligibility.evaluate import Gate
from eligibility.table import Table

if TYPE_CHECKING:  # the service imports this module before it loads XGBoost
    from riskmodel import LNRiskModel

CHUNK = 20_000  # patients per progress step (smaller chunks cost ~30 ms each)


def gate_of(model: LNRiskModel, table: Table, threshold: float) -> Gate:
    """The model's three-valued gate for every patient of a table."""
    states = model.gate(table.features(), threshold)
    return Gate(
        risk=states.risk,
        threshold=threshold,
        state=states.state,
        low=states.low,
        high=states.high,
        to_obtain=states.to_obtain,
        edges=(states.exclude_edge, states.pass_edge),
    )


def screen_patients(
    model: LNRiskModel, table: Table, criteria: TrialCriteria
) -> Screened:
    """Risk, gate, every criterion and the decision for every patient of a table."""
    gate = gate_of(model, table, criteria.risk_gate.cut)
    return decide(table, criteria, gate.risk, gate)


def screen(
    record: PatientRecord,
    *,
    risk: float,
    screening_date: date,
    criteria: TrialCriteria,
    gate: str | None = None,
) -> Decision:
    """Screen one patient whose risk was computed elsewhere.

    Args:
        record: the patient.
        risk: the 2-year risk (0–1).
        screening_date: day 0 of ages and windows.
        criteria: the criteria file.
        gate: ``above`` / ``below`` / ``undetermined``; None reads the risk against
            the criteria file's threshold.

    Raises:
        ValueError: a risk that is not a probability.
    """
    if not 0.0 <= risk <= 1.0:
        raise ValueError(f"risk must be a probability in [0, 1], got {risk}")
    table = Table.from_record(record, screening_date)
    risks = np.array([risk])
    states = None if gate is None else np.array([gate])
    given = Gate(risks, criteria.risk_gate.cut, state=states)
    return decide(table, criteria, risks, given).decision(0)


def screen_frame(
    df: pd.DataFrame,
    risks: Sequence[float] | np.ndarray,
    screening_date: date,
    criteria: TrialCriteria,
    gates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Screen every row of a cohort table whose risks were computed elsewhere.

    Args:
        df: the patients (``PatientRecord`` columns).
        risks: 2-year risk per row (0–1).
        screening_date: day 0 of ages and windows.
        criteria: the criteria file.
        gates: ``above`` / ``below`` / ``undetermined`` per row; None reads the
            risks against the criteria file's threshold.

    Returns:
        Same index as ``df``: the columns of :meth:`Screened.frame` — ``status``,
        ``risk``, the gate, ``missing_fields``, ``to_confirm`` and one verdict
        column per criterion id (``met`` / ``not_met`` / ``unknown`` /
        ``needs_judgment``).
    """
    risk = np.asarray(risks, dtype=np.float64)
    states = None if gates is None else np.asarray(gates, dtype=object)
    gate = Gate(risk, criteria.risk_gate.cut, state=states)
    screened = decide(Table.from_frame(df, screening_date), criteria, risk, gate)
    out = screened.frame()
    out.index = df.index
    return out


# --- a whole file ---------------------------------------------------------------------
@dataclass(frozen=True)
class ScreeningResult:
    """Every patient's line, the attrition table, and the criteria version (with
    its pinned readings) both were computed under."""

    per_patient: pd.DataFrame
    attrition: pd.DataFrame
    criteria_version: str = ""


def screen_population(
    model: LNRiskModel,
    cohort: pd.DataFrame,
    screening_date: date,
    criteria: TrialCriteria,
    *,
    progress: Callable[[int], None] | None = None,
) -> ScreeningResult:
    """:func:`screen_patients` for a validated cohort table, in chunks.

    Args:
        model: the model whose risk feeds the gate.
        cohort: a table that passed :func:`data_schema.validate_cohort`.
        screening_date: day 0 for ages and wash-out windows.
        criteria: from :func:`eligibility.load_criteria`.
        progress: called with the number of patients done after each chunk.
    """
    parts = []
    for start in range(0, len(cohort), CHUNK):
        chunk = cohort.iloc[start : start + CHUNK]
        table = Table.from_frame(chunk, screening_date)
        parts.append(screen_patients(model, table, criteria).frame())
        if progress:
            progress(len(chunk))
    per_patient = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if "patient_id" in cohort:
        per_patient.insert(0, "patient_id", cohort["patient_id"].to_numpy())
    return ScreeningResult(
        per_patient, attrition_table(per_patient, criteria), criteria.criteria_version
    )


def write_results(result: ScreeningResult, out_dir: str | Path) -> list[Path]:
    """``screening.csv`` (one row per patient) and ``attrition.csv`` (each step
    with the criteria version it was counted under)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = result.per_patient.copy()
    for col in ("gate_to_obtain", "missing_fields", "to_confirm"):
        if col in table:
            table[col] = table[col].map(lambda v: ";".join(v) if v else "")
    paths = [out / "screening.csv", out / "attrition.csv"]
    table.to_csv(paths[0], index=False)
    attrition = result.attrition.assign(criteria_version=result.criteria_version)
    attrition.to_csv(paths[1], index=False)
    return paths
