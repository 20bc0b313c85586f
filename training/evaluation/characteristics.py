"""Participant characteristics of the development and held-out test sets.

TRIPOD+AI items 20b (characteristics, sample size, events, missing data) and 20c
(the evaluation data beside the development data). One row per characteristic,
one column per set: counts with their share for yes/no characteristics, median and
interquartile range for measurements, and the share not recorded. A count below
:data:`data_schema.SMALL_CELL` is suppressed ("<10") so the table can be shared,
as the attrition and subgroup tables are.

The rows hold numbers only (plain JSON data); the model card formats them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from data_schema import OUTCOME_COLUMN, SMALL_CELL, feature_description

MEASUREMENTS: dict[str, str] = {
    "age_years": "Age",
    "disease_duration_years": "SLE duration",
    "sledai2k_nonrenal": "SLEDAI-2K, non-renal",
    "anti_dsdna_iu_ml": "Anti-dsDNA",
    "c3_g_l": "C3",
    "c4_g_l": "C4",
    "urine_protein_g_24h": "Urine protein",
    "urine_rbc_per_hpf": "Urine red cells",
    "creatinine_umol_l": "Serum creatinine",
    "albumin_g_l": "Serum albumin",
}
"""Measurements shown as median [IQR]: demography, activity and the key labs."""

YES_NO: dict[str, str] = {
    "anti_c1q_positive": "Anti-C1q positive",
    "hypertension": "Hypertension",
    "hydroxychloroquine_current": "Hydroxychloroquine",
    "immunosuppressant_current": "Immunosuppressant",
}
"""Yes/no characteristics shown as n (%) of the patients with a record."""


def _suppressed(count: int, min_cell: int) -> int | str:
    return count if count == 0 or count >= min_cell else f"<{min_cell}"


def _count_row(flags: pd.Series, min_cell: int) -> dict[str, Any]:
    n_total = len(flags)
    recorded = flags.dropna().astype(bool)
    count = int(recorded.sum())
    return {
        "count": _suppressed(count, min_cell),
        "share": count / len(recorded) if len(recorded) else None,
        "missing": 1.0 - len(recorded) / n_total if n_total else None,
    }


def _measurement(values: pd.Series) -> dict[str, Any]:
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    recorded = x[np.isfinite(x)]
    if len(recorded) == 0:
        q1 = median = q3 = None
    else:
        q1, median, q3 = (float(v) for v in np.percentile(recorded, [25, 50, 75]))
    return {
        "median": median,
        "q1": q1,
        "q3": q3,
        "missing": 1.0 - len(recorded) / len(x) if len(x) else None,
    }


def characteristics_table(
    sets: Mapping[str, pd.DataFrame], *, min_cell: int = SMALL_CELL
) -> list[dict[str, Any]]:
    """Characteristics of each set of patients, side by side.

    Args:
        sets: set name (e.g. ``development``, ``test``) to its cohort table.
        min_cell: counts below this are shown as ``"<min_cell"``.

    Returns:
        Rows with ``label``, ``unit``, ``kind`` (``count``, ``yes_no`` or
        ``measurement``) and, per set name, the numbers: ``count`` (patients,
        events), ``count``/``share``/``missing`` (yes/no) or
        ``median``/``q1``/``q3``/``missing`` (measurements; shares are 0–1).
    """
    rows: list[dict[str, Any]] = [
        {
            "label": "Patients",
            "unit": "",
            "kind": "count",
            **{name: {"count": len(df)} for name, df in sets.items()},
        },
        {
            "label": "New-onset lupus nephritis within 2 years",
            "unit": "",
            "kind": "yes_no",
            **{
                name: _count_row(df[OUTCOME_COLUMN], min_cell)
                for name, df in sets.items()
            },
        },
        {
            "label": "Female sex",
            "unit": "",
            "kind": "yes_no",
            **{
                name: _count_row(
                    df["sex"].map({"female": True, "male": False}), min_cell
                )
                for name, df in sets.items()
            },
        },
    ]
    for column, label in MEASUREMENTS.items():
        _, unit = feature_description(column)
        rows.append(
            {
                "label": label,
                "unit": unit,
                "kind": "measurement",
                **{name: _measurement(df[column]) for name, df in sets.items()},
            }
        )
    for column, label in YES_NO.items():
        rows.append(
            {
                "label": label,
                "unit": "",
                "kind": "yes_no",
                **{name: _count_row(df[column], min_cell) for name, df in sets.items()},
            }
        )
    return rows


__all__ = ["MEASUREMENTS", "YES_NO", "characteristics_table"]
