"""Conditions defined by a group of criteria, read for a whole cohort table.

The criteria file is the one definition of, e.g., prior kidney involvement (the
criteria of group ``kidney-involvement``, each a route to it). The training pipeline
reads it here to leave those patients out of the development population of a
*new-onset* lupus nephritis model, with the same rules the screening applies.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from data_schema import VERDICTS
from eligibility.criteria import TrialCriteria
from eligibility.evaluate import TRUE, UNKNOWN, Evaluation, Program
from eligibility.table import Table

KIDNEY_INVOLVEMENT = "kidney-involvement"
"""The group of criteria that defines prior kidney involvement."""


def group_verdicts(
    df: pd.DataFrame, criteria: TrialCriteria, group: str, screening_date: date
) -> pd.DataFrame:
    """One column per criterion of ``group`` (its verdict per patient), then
    ``met`` (any route met) and ``unknown`` (none met, some route unknown).

    The group's criteria state that the patient HAS the condition (``met`` = has
    it), as an exclusion does.
    """
    members = criteria.group(group)
    program = Program.of([c.rule for c in members])
    evaluation = Evaluation(program, Table.from_frame(df, screening_date), None)
    codes = evaluation.root_codes()  # (patients, members)
    out = pd.DataFrame(
        {c.id: np.array(VERDICTS, dtype=object)[codes[:, j]]
         for j, c in enumerate(members)},
        index=df.index,
    )  # fmt: skip
    met = (codes == TRUE).any(axis=1)
    out["met"] = met
    out["unknown"] = ~met & (codes == UNKNOWN).any(axis=1)
    return out
