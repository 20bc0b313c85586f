"""NCT05585671 eligibility: the trial's criteria as versioned data (issue 4).

* ``nct05585671.yaml`` — every inclusion and exclusion criterion of the registry text,
  each with a stable id, the verbatim wording and a rule.
* :mod:`eligibility.rules` — the rule language (all / any / not over typed leaves),
  validated at load; Kleene three-valued evaluation with reasons.
* :mod:`eligibility.derived` — derived clinical variables (ACR 1997 count,
  Cockcroft–Gault, multiples of ULN, age at screening), pinned to their sources.
* :mod:`eligibility.engine` — ``screen``: per-criterion verdicts and the decision.
* :mod:`eligibility.batch` — ``screen_frame`` (the same decisions, column-wise, for a
  cohort table) and ``attrition_table`` (small cells suppressed).

``serving`` imports this package; it imports ``data_schema`` only.
"""

from eligibility.batch import attrition_table, screen_frame
from eligibility.criteria import (
    DEFAULT_CRITERIA_PATH,
    CriteriaError,
    Criterion,
    TrialCriteria,
    load_criteria,
    parse_criteria,
)
from eligibility.engine import CriterionVerdict, Decision, evaluate_criterion, screen

__all__ = [
    "DEFAULT_CRITERIA_PATH",
    "CriteriaError",
    "Criterion",
    "CriterionVerdict",
    "Decision",
    "TrialCriteria",
    "attrition_table",
    "evaluate_criterion",
    "load_criteria",
    "parse_criteria",
    "screen",
    "screen_frame",
]
