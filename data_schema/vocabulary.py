"""The words every decision is given in: one definition, read by every package.

* A *verdict* is the answer of one criterion for one patient. For an exclusion
  criterion ``met`` means the patient HAS the excluding condition; ``unknown`` means
  a datum it needs is not recorded; ``needs_judgment`` that only the investigator
  can answer.
* A *status* is the screening decision for one patient. Missing data never gives
  ``eligible``.
* A *gate state* says where a patient's 2-year risk stands against the trial's gate:
  ``above`` (auto-passed), ``below`` (auto-excluded) or ``undetermined`` (in the
  review zone, or missing predictors could carry it across an edge).
* Shareable counts (attrition, subgroups) below :data:`SMALL_CELL` are suppressed.
"""

from __future__ import annotations

from typing import Literal, get_args

Verdict = Literal["not_met", "met", "unknown", "needs_judgment"]
#: The verdicts in truth-code order: not_met 0, met 1, unknown 2, needs_judgment 3.
VERDICTS: tuple[str, ...] = get_args(Verdict)

Status = Literal["eligible", "needs_review", "ineligible"]
#: The statuses, in the order counts are reported.
STATUSES: tuple[str, ...] = get_args(Status)

GateState = Literal["above", "below", "undetermined"]
#: The gate states.
GATE_STATES: tuple[str, ...] = get_args(GateState)

SMALL_CELL = 10
"""Counts from 1 to SMALL_CELL − 1 are shown as "<10" in shareable tables (the
OHDSI PatientLevelPrediction ``minCellCount`` convention)."""
