"""The `lnrisk` command line: one subcommand per job, clear errors, exit codes."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app

runner = CliRunner()


def test_cohort_writes_a_valid_file(tmp_path) -> None:
    out = tmp_path / "c.parquet"
    result = runner.invoke(
        app, ["cohort", "--n", "300", "--seed", "5", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    assert len(df) == 300 and "true_risk_2y" in df


def test_cohort_rejects_an_unknown_shift(tmp_path) -> None:
    result = runner.invoke(
        app, ["cohort", "--shift", "mars", "--out", str(tmp_path / "c.parquet")]
    )
    assert result.exit_code == 2
    assert "unknown shift 'mars'" in result.output


@pytest.mark.slow
def test_train_if_no_champion_does_nothing_when_one_exists(trained) -> None:
    result = runner.invoke(app, ["train", "--if-no-champion", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "champion exists" in result.output


def test_train_on_a_bad_cohort_lists_every_bad_row(tmp_path) -> None:
    bad = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c"],
            "sex": ["female", "x", "male"],
            "c3_g_l": [0.8, 0.9, 50.0],
            "ln_within_2y": [0, 1, 0],
        }
    )
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    result = runner.invoke(app, ["train", "--cohort", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert "row 1, column 'sex'" in result.output
    assert "row 2, column 'c3_g_l'" in result.output


def test_invalid_config_fails_before_any_data(tmp_path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("split:\n  test_fraction: 1.5\n")
    result = runner.invoke(app, ["train", "--config", str(cfg), "--no-progress"])
    assert result.exit_code == 2
    assert "test_fraction" in result.output
