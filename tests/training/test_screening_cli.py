"""`lnrisk screen`: champion risk, the trial's rules, per-patient CSV and attrition."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthetic.generator import generate_cohort
from training.cli import app

pytestmark = pytest.mark.slow


def test_screen_writes_decisions_and_attrition(trained, tmp_path) -> None:
    patients = tmp_path / "patients.parquet"
    generate_cohort(n=1500, seed=606).drop(
        columns=["ln_within_2y", "true_risk_2y"]
    ).to_parquet(patients)  # screening needs no outcome
    out = tmp_path / "results"
    result = CliRunner().invoke(
        app,
        ["screen", "--input", str(patients), "--screening-date", "2026-12-01",
         "--out", str(out), "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    per_patient = pd.read_csv(out / "screening.csv")
    attrition = pd.read_csv(out / "attrition.csv")
    assert len(per_patient) == 1500
    assert set(per_patient["status"]) <= {"eligible", "ineligible", "needs_review"}
    # the gate decides first: nobody at or below 0.5 is anything but ineligible
    low = per_patient["risk"] <= 0.5
    assert (per_patient.loc[low, "status"] == "ineligible").all()
    assert {"risk_band_low", "risk_band_high", "EXC-01e-urine-protein"} <= set(
        per_patient.columns
    )
    assert attrition["step"].iloc[0] == "screened"
    assert str(attrition["remaining"].iloc[0]) == "1500"


def test_screen_rejects_a_bad_date(tmp_path) -> None:
    result = CliRunner().invoke(
        app,
        ["screen", "--input", str(tmp_path / "x.parquet"), "--screening-date",
         "01/12/2026", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


def test_band_is_computed_where_it_can_change_the_decision(
    trained, small_config
) -> None:
    """Default: band above the gate only; `all`: everyone; decisions identical."""
    from datetime import date

    import numpy as np

    from data_schema import validate_cohort
    from eligibility import load_criteria
    from eligibility.screen import screen_population
    from training.registry import tracking

    model, _ = tracking.load_registered(
        small_config.tracking.registered_model, "champion"
    )
    cohort = validate_cohort(generate_cohort(n=3000, seed=607, incidence=0.3))
    day, rules = date(2026, 12, 1), load_criteria()
    lazy = screen_population(model, cohort, day, rules).per_patient
    full = screen_population(model, cohort, day, rules, band_for="all").per_patient
    above = lazy["risk"] > 0.5
    assert above.any() and (~above).any()
    assert lazy.loc[above, "risk_band_low"].notna().all()
    assert lazy.loc[~above, "risk_band_low"].isna().all()
    assert full["risk_band_low"].notna().all()
    np.testing.assert_allclose(
        lazy.loc[above, ["risk_band_low", "risk_band_high"]],
        full.loc[above, ["risk_band_low", "risk_band_high"]],
    )
    assert (lazy["status"] == full["status"]).all()
