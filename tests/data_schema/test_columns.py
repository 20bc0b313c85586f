"""Patients as columns: the record's fields and rules, one list per field."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from data_schema import (
    PatientColumns,
    PatientRecord,
    columns_to_frame,
    frame_to_records,
    records_to_frame,
    validate_cohort,
)
from data_schema.patient import EXPOSURE_STEMS


def _as_columns(rows: list[dict]) -> dict[str, list]:
    names = dict.fromkeys(name for row in rows for name in row)
    return {name: [row.get(name) for row in rows] for name in names}


@pytest.fixture(scope="module")
def synthetic_rows() -> list[dict]:
    from synthetic.generator import generate_cohort

    records = frame_to_records(validate_cohort(generate_cohort(n=1500, seed=77)))
    return [r.model_dump(mode="json", exclude_none=True) for r in records]


def test_columns_give_the_same_table_as_records(synthetic_rows) -> None:
    """Same patients, same JSON values: the same typed table either way."""
    records = [PatientRecord.model_validate(row) for row in synthetic_rows]
    body = json.dumps(_as_columns(synthetic_rows))
    columns = PatientColumns.model_validate_json(body)
    assert columns.n_patients == len(records)
    pd.testing.assert_frame_equal(columns_to_frame(columns), records_to_frame(records))


def test_absent_columns_are_missing_for_everyone() -> None:
    columns = PatientColumns.model_validate({"sex": ["female", "male"]})
    frame = columns_to_frame(columns)
    assert list(frame.columns) == list(PatientRecord.model_fields)
    assert frame["c3_g_l"].isna().all() and frame["pregnant"].isna().all()


def _contradict(row: dict, kind: int, rng: random.Random) -> dict:
    row = dict(row)
    if kind == 0:
        row["date_of_birth"] = (date.today() + timedelta(days=30)).isoformat()
        row.pop("age_years", None)
    elif kind == 1:
        row["age_years"], row["disease_duration_years"] = 30.0, 31.5
    else:
        stem = rng.choice(EXPOSURE_STEMS)
        row[f"{stem}_ever"], row[f"{stem}_last_date"] = False, "2025-03-01"
    return row


def test_cross_field_rules_are_the_records_rules(synthetic_rows) -> None:
    """A row is refused as a column entry exactly when it is refused as a record,
    with the same message, for every kind of contradiction."""
    rng = random.Random(5)
    rows = list(synthetic_rows[:300])
    broken = sorted(rng.sample(range(len(rows)), 40))
    for k, i in enumerate(broken):
        rows[i] = _contradict(rows[i], k % 3, rng)
    record_errors = {}
    for i, row in enumerate(rows):
        try:
            PatientRecord.model_validate(row)
        except ValidationError as exc:
            record_errors[i] = exc.errors()[0]["msg"].removeprefix("Value error, ")
    assert sorted(record_errors) == broken
    with pytest.raises(ValidationError) as info:
        PatientColumns.model_validate(_as_columns(rows))
    message = info.value.errors()[0]["msg"]
    listed = message.split("; … and ")[0].removeprefix("Value error, ").split("; ")
    assert len(listed) == 20 and message.endswith("… and 20 more")
    for item in listed:
        row, text = item.removeprefix("row ").split(": ", 1)
        assert record_errors[int(row)] == text


def test_a_bad_value_is_named_by_field_and_row() -> None:
    with pytest.raises(ValidationError) as info:
        PatientColumns.model_validate(
            {"sex": ["female", "male", "female"], "c3_g_l": [0.9, -1.0, None]}
        )
    (error,) = info.value.errors()
    assert error["loc"] == ("c3_g_l", 1)
    # strict like the record: a string is not a number, 1 is not true
    for column, value in (("c3_g_l", "0.9"), ("pregnant", 1), ("sex", None)):
        with pytest.raises(ValidationError) as info:
            PatientColumns.model_validate(
                {"sex": ["female"], column: [value]} if column != "sex" else {}
            )
        assert info.value.errors()[0]["loc"][0] == column


def test_columns_of_different_lengths_and_unknown_columns_are_refused() -> None:
    with pytest.raises(ValidationError, match="c3_g_l: 1 values, but sex has 2"):
        PatientColumns.model_validate({"sex": ["female", "male"], "c3_g_l": [0.9]})
    with pytest.raises(ValidationError) as info:
        PatientColumns.model_validate({"sex": ["female"], "favourite": [1]})
    assert info.value.errors()[0]["loc"] == ("favourite",)


def test_each_column_documents_the_fields_unit_and_range() -> None:
    schema = PatientColumns.model_json_schema()["properties"]
    assert set(schema) == set(PatientRecord.model_fields)
    c3 = schema["c3_g_l"]
    assert c3["unit"] == "g/L" and "Valid range" in c3["description"]
    item = c3["anyOf"][0]["items"]["anyOf"][0]
    assert item["minimum"] == PatientRecord.model_fields["c3_g_l"].metadata[0].ge
