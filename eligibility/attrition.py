"""Attrition: how many patients each step of the screening rules out.

Step 0 is everyone screened, step 1 the risk gate, step 2 the undetermined gates
(sent to review, not ruled out), then one step per criterion in file order; small
cells are suppressed for sharing (``data_schema.SMALL_CELL``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_schema import SMALL_CELL, VERDICTS
from eligibility.criteria import TrialCriteria
from eligibility.decision import VERDICT_DTYPE
from eligibility.evaluate import FALSE, JUDGMENT, TRUE, UNKNOWN, Codes


def _verdict_codes(column: pd.Series) -> Codes:
    """Truth codes of a verdict column (categorical from screen_frame, or text)."""
    if isinstance(column.dtype, pd.CategoricalDtype) and column.dtype == VERDICT_DTYPE:
        return column.cat.codes.to_numpy()
    lookup = {v: i for i, v in enumerate(VERDICTS)}
    return np.array([lookup[v] for v in column], dtype=np.int8)


def _row(
    step: str,
    kind: str,
    remaining: int,
    *,
    ruled_out_here: int = 0,
    fails: int = 0,
    unknown: int = 0,
    needs_judgment: int = 0,
) -> dict[str, object]:
    return {
        "step": step,
        "kind": kind,
        "remaining": remaining,
        "ruled_out_here": ruled_out_here,
        "fails": fails,
        "unknown": unknown,
        "needs_judgment": needs_judgment,
    }


def attrition_table(
    screened: pd.DataFrame, criteria: TrialCriteria, *, min_cell: int = SMALL_CELL
) -> pd.DataFrame:
    """Sequential and per-criterion counts, in criterion order, small cells hidden.

    Step 0 is everyone screened; step 1 the risk gate (a gate ``below`` rules a
    patient out; its ``unknown`` counts the undetermined gates); step 2 the
    patients whose gate is undetermined, reviewed and not ruled out (``unknown``);
    then one step per criterion.
    ``remaining`` counts patients not yet ruled out after that step (sequential);
    ``ruled_out_here`` those it removes from the remainder; ``fails``, ``unknown``
    and ``needs_judgment`` are per-criterion counts over everyone.

    Args:
        screened: output of :func:`screen_frame`.
        criteria: the criteria it was screened with.
        min_cell: counts in ``1 … min_cell − 1`` are shown as ``"<10"`` (strings);
            0 is shown as 0.

    Returns:
        One row per step with columns ``step``, ``kind``, ``remaining``,
        ``ruled_out_here``, ``fails``, ``unknown``, ``needs_judgment``.
    """
    alive = np.ones(len(screened), dtype=bool)
    rows = [_row("screened", "", int(alive.sum()))]
    state = screened["gate"].to_numpy(dtype=object)
    below, undetermined = state == "below", state == "undetermined"
    kept = int((alive & ~below).sum())
    rows.append(
        _row(
            f"risk > {criteria.risk_gate.threshold:g}",
            "gate",
            kept,
            ruled_out_here=int((alive & below).sum()),
            fails=int(below.sum()),
            unknown=int(undetermined.sum()),
        )
    )
    rows.append(
        _row(
            "gate undetermined (review; obtain the missing predictors)",
            "gate",
            kept,
            unknown=int(undetermined.sum()),
        )
    )
    alive &= ~below
    for c in criteria.criteria:
        v = _verdict_codes(screened[c.id])
        fails = v == (TRUE if c.kind == "exclusion" else FALSE)
        rows.append(
            _row(
                c.id,
                c.kind,
                int((alive & ~fails).sum()),
                ruled_out_here=int((alive & fails).sum()),
                fails=int(fails.sum()),
                unknown=int((v == UNKNOWN).sum()),
                needs_judgment=int((v == JUDGMENT).sum()),
            )
        )
        alive &= ~fails
    table = pd.DataFrame(rows)
    counts = ["remaining", "ruled_out_here", "fails", "unknown", "needs_judgment"]
    for col in counts:
        table[col] = [
            f"<{min_cell}" if 0 < x < min_cell else x for x in table[col].tolist()
        ]
    return table
