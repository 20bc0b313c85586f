"""Cohort table validation reports every bad row, not just the first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_schema import (
    CohortValidationError,
    PatientRecord,
    frame_to_features,
    records_to_features,
    validate_cohort,
)


def _good_table(n: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(n)],
            "sex": ["female", "male"] * (n // 2),
            "age_years": np.linspace(20, 60, n),
            "c3_g_l": np.linspace(0.5, 1.2, n),
            "urine_rbc_per_hpf": list(range(n)),
            "pregnant": [False, None] * (n // 2),
            "ln_within_2y": [0, 1] * (n // 2),
        }
    )


def test_good_table_passes_and_is_coerced() -> None:
    out = validate_cohort(_good_table())
    assert str(out["pregnant"].dtype) == "boolean"
    assert str(out["urine_rbc_per_hpf"].dtype) == "Int64"
    assert out["pregnant"].isna().sum() == 3  # missing stays missing


def test_every_fault_is_reported_with_row_column_and_reason() -> None:
    df = _good_table(8).astype(object)
    df.loc[1, "c3_g_l"] = 7.5  # out of range
    df.loc[2, "age_years"] = "thirty"  # wrong type
    df.loc[3, "sex"] = "unknown"  # not a category
    df.loc[4, "urine_rbc_per_hpf"] = 2.5  # not a whole number
    df.loc[5, "patient_id"] = "P0"  # duplicate of row 0
    df.loc[6, "pregnant"] = "yes"  # not a boolean
    df["favourite_colour"] = "blue"  # unknown column
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(df)
    err = info.value
    found = {(e.row, e.column) for e in err.errors}
    assert {
        (1, "c3_g_l"),
        (2, "age_years"),
        (3, "sex"),
        (4, "urine_rbc_per_hpf"),
        (5, "patient_id"),
        (6, "pregnant"),
        (None, "favourite_colour"),
    } <= found
    assert err.bad_rows == [0, 1, 2, 3, 4, 5, 6]  # row 0 shares the duplicated id
    reasons = {(e.row, e.column): e.reason for e in err.errors}
    assert "≤ 4" in reasons[(1, "c3_g_l")]
    assert reasons[(2, "age_years")].startswith("wrong type")
    assert reasons[(None, "favourite_colour")] == "unknown column"
    assert "row 2, column 'age_years'" in str(err)


def test_missing_required_column_is_reported() -> None:
    with pytest.raises(CohortValidationError, match="required column missing"):
        validate_cohort(_good_table().drop(columns=["sex"]))


def test_row_consistency_check() -> None:
    """The record's cross-field rules, with the row and the field to fix."""
    from datetime import date, timedelta

    df = _good_table()
    df["disease_duration_years"] = [1.0, 1.0, 45.0, 1.0, 1.0, 1.0]  # age 36
    df["ivig_ever"] = [None, False, None, True, None, None]
    df["ivig_last_date"] = [None, "2025-01-01", None, "2025-01-01", None, None]
    future = (date.today() + timedelta(days=10)).isoformat()
    df["date_of_birth"] = [None, None, None, None, future, None]
    with pytest.raises(CohortValidationError) as info:
        validate_cohort(df)
    assert info.value.bad_rows == [1, 2, 4]
    found = {(e.row, e.column): e.reason for e in info.value.errors}
    assert found[(1, "ivig_last_date")] == "given although ivig_ever is false"
    assert found[(2, "disease_duration_years")].startswith("must not exceed age_years")
    assert found[(4, "date_of_birth")] == "must not be in the future"


def test_table_and_record_paths_give_the_same_features() -> None:
    table = validate_cohort(_good_table())
    records = [
        PatientRecord(**{k: v for k, v in row.items() if k != "ln_within_2y"})
        for row in _good_table().replace({np.nan: None}).to_dict("records")
    ]
    np.testing.assert_array_equal(
        frame_to_features(table), records_to_features(records)
    )


def test_records_to_frame_keeps_every_value_and_feature() -> None:
    """Records → typed table: same features, same cells, missing stays missing."""
    from datetime import date

    from data_schema import frame_to_records, records_to_frame
    from synthetic.generator import generate_cohort

    cohort = validate_cohort(generate_cohort(n=2000, seed=31))
    records = frame_to_records(cohort)
    # some patients known by date of birth only (age derived at the as-of date)
    records[:50] = [r.model_copy(update={"age_years": None}) for r in records[:50]]
    day = date(2026, 12, 1)
    frame = records_to_frame(records)
    np.testing.assert_array_equal(
        frame_to_features(frame, as_of=day), records_to_features(records, as_of=day)
    )
    assert list(frame.columns) == list(PatientRecord.model_fields)
    back = frame_to_records(frame)
    assert back == records
