"""Dates in a site's file: ISO 8601 or the one format the user names, never
guessed; `lnrisk criteria` lists readings and renders the criteria sheet."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

from data_schema import CohortValidationError, validate_cohort
from training.cli import app
from training.data import read_cohort

AMBIGUOUS = "patient_id,sex,date_of_birth\nA,female,01/02/1990\nB,male,31/12/1990\n"


@pytest.fixture
def day_first(tmp_path):
    path = tmp_path / "cohort.csv"
    path.write_text(AMBIGUOUS)
    return path


def test_a_day_first_file_is_refused_without_a_named_format(day_first) -> None:
    with pytest.raises(CohortValidationError) as caught:
        validate_cohort(read_cohort(day_first))
    errors = [(e.row, e.column, e.value) for e in caught.value.errors]
    assert errors == [
        (0, "date_of_birth", "01/02/1990"),
        (1, "date_of_birth", "31/12/1990"),
    ]
    assert "ISO 8601" in str(caught.value)


def test_a_day_first_file_is_read_with_its_format(day_first) -> None:
    cohort = validate_cohort(read_cohort(day_first, "%d/%m/%Y"))
    born = [d.date() for d in cohort["date_of_birth"]]
    assert born == [date(1990, 2, 1), date(1990, 12, 31)]


def test_a_cell_off_the_named_format_is_refused_with_row_and_value(tmp_path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(AMBIGUOUS + "C,female,1990-05-06\n")
    with pytest.raises(CohortValidationError) as caught:
        read_cohort(path, "%d/%m/%Y")
    [error] = caught.value.errors
    assert (error.row, error.column, error.value) == (2, "date_of_birth", "1990-05-06")
    assert "%d/%m/%Y" in error.reason


def test_iso_dates_and_date_objects_are_read_as_they_are() -> None:
    frame = pd.DataFrame(
        {
            "patient_id": ["A", "B", "C"],
            "sex": ["female"] * 3,
            "date_of_birth": ["1990-02-01", date(1990, 12, 31), None],
        }
    )
    born = validate_cohort(frame)["date_of_birth"]
    assert born.iloc[0] == pd.Timestamp("1990-02-01")
    assert born.iloc[1] == pd.Timestamp("1990-12-31") and pd.isna(born.iloc[2])


def test_screen_refuses_the_file_naming_row_column_and_value(day_first, tmp_path):
    result = CliRunner().invoke(
        app,
        ["screen", "--input", str(day_first), "--screening-date", "2026-12-01",
         "--out", str(tmp_path / "out"), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "row 0, column 'date_of_birth'" in result.output
    assert "'31/12/1990'" in result.output


def test_criteria_lists_readings_and_writes_the_sheet(tmp_path) -> None:
    overlay = tmp_path / "site.yaml"
    overlay.write_text("readings:\n  b-cell-history: washout\n")
    sheet = tmp_path / "sheet.html"
    result = CliRunner().invoke(
        app, ["criteria", "--readings", str(overlay), "--html", str(sheet)]
    )
    assert result.exit_code == 0, result.output
    assert "+readings:b-cell-history=washout" in result.output
    assert "washout (pinned)" in result.output
    html = sheet.read_text()
    assert "Previous treatment with any B-lymphocyte-targeted drug" in html
    assert "6 calendar months" in html and "inclusive" in html
    assert html.count('<h3 id="reading-') == 6


def test_criteria_refuses_an_unknown_reading(tmp_path) -> None:
    overlay = tmp_path / "site.yaml"
    overlay.write_text("readings:\n  b-cell-histroy: washout\n")
    result = CliRunner().invoke(app, ["criteria", "--readings", str(overlay)])
    assert result.exit_code == 2
    assert "unknown reading 'b-cell-histroy'" in result.output


@pytest.mark.slow
def test_a_run_records_its_date_format_and_rebuilds_its_test_set_with_it(
    small_config, small_cohort, tmp_path
) -> None:
    """`lnrisk evaluate` and `promote` re-read a run's file: with the format the
    run read it with, or its day-first dates would not read at all."""
    from training.data import DATE_FORMAT_TAG
    from training.pipeline import train
    from training.registry import tracking
    from training.registry.promote import held_out_of_run, promote

    cohort, _ = small_cohort
    path = tmp_path / "day_first.csv"
    cohort.drop(columns=["true_risk_2y"]).to_csv(
        path, index=False, date_format="%d/%m/%Y"
    )
    config = small_config.model_copy(
        update={
            "tracking": small_config.tracking.model_copy(
                update={"registered_model": "ln-risk-day-first"}
            )
        }
    )

    def train_day_first():
        return train(
            config,
            read_cohort(path, "%d/%m/%Y"),
            str(path.resolve()),
            show_progress=False,
            date_format="%d/%m/%Y",
        )

    result = train_day_first()
    tags = tracking.run_tags_of(result.run_id)
    assert tags[DATE_FORMAT_TAG] == "%d/%m/%Y"
    test, _ = held_out_of_run(result.run_id, config.trial_criteria)
    assert len(test) == int(tracking.run_params_of(result.run_id)["n_test"])
    # without the recorded format the same file does not read
    with pytest.raises(CohortValidationError, match="ISO 8601"):
        validate_cohort(read_cohort(path))
    # a second run becomes the challenger; promotion reads the file either way
    again = train_day_first()
    assert again.alias == config.tracking.challenger_alias
    on_test = promote(config, dry_run=True)
    assert on_test.n_patients == len(test)
    on_file = promote(config, cohort_path=path, date_format="%d/%m/%Y", dry_run=True)
    assert on_file.n_patients > len(test)
    with pytest.raises(CohortValidationError, match="ISO 8601"):
        promote(config, cohort_path=path, dry_run=True)
