"""NCT05585671 eligibility: the trial's criteria as versioned data.

* ``nct05585671.yaml`` — every inclusion and exclusion criterion of the registry text,
  each with a stable id, the verbatim wording and a rule.
* :mod:`eligibility.rules` — the rule language (all / any / not over typed leaves),
  validated at load.
* :mod:`eligibility.readings` — the named readings of ambiguous registry sentences
  and a site's overlay pinning them (part of the criteria version).
* :mod:`eligibility.calendar` — ages in calendar years, windows in calendar months.
* :mod:`eligibility.table` — patients as typed columns; one patient is a table of
  one row.
* :mod:`eligibility.derived` — derived clinical variables (ACR 1997 count,
  Cockcroft–Gault, multiples of ULN, age at screening), pinned to their sources.
* :mod:`eligibility.evaluate` — the one evaluator: truth codes per patient, reasons
  and evidence on request.
* :mod:`eligibility.decision` — the decision of every patient; one patient's
  reasons and evidence.
* :mod:`eligibility.screen` — the one screening (risk → gate → rules), used by the
  service and the CLI.
* :mod:`eligibility.attrition` — attrition counts, small cells suppressed.
* :mod:`eligibility.sheet` — the criteria sheet (HTML) a reviewer checks the
  encoding against.

It imports ``data_schema`` only (and a model's ``predict_proba`` by duck typing).
"""

from eligibility.attrition import attrition_table
from eligibility.criteria import (
    DEFAULT_CRITERIA_PATH,
    CriteriaError,
    Criterion,
    TrialCriteria,
    load_criteria,
    parse_criteria,
)
from eligibility.decision import CriterionVerdict, Decision, Screened, decide
from eligibility.screen import screen, screen_frame, screen_patients
from eligibility.table import Table

__all__ = [
    "DEFAULT_CRITERIA_PATH",
    "CriteriaError",
    "Criterion",
    "CriterionVerdict",
    "Decision",
    "Screened",
    "Table",
    "TrialCriteria",
    "attrition_table",
    "decide",
    "load_criteria",
    "parse_criteria",
    "screen",
    "screen_frame",
    "screen_patients",
]
