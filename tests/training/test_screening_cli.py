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
    # the gate decides first: auto-excluded patients are ineligible, undetermined
    # ones never eligible
    gate = per_patient["gate"]
    assert set(gate) <= {"above", "below", "undetermined"}
    assert (per_patient.loc[gate == "below", "status"] == "ineligible").all()
    assert (per_patient.loc[gate == "undetermined", "status"] != "eligible").all()
    assert {"risk_low", "risk_high", "gate_to_obtain", "EXC-01e-urine-protein"} <= set(
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


def test_population_screening_uses_the_models_gate(trained, small_config) -> None:
    """Chunked screening of a file gives every patient the model's own gate."""
    from datetime import date

    import numpy as np

    from data_schema import validate_cohort
    from eligibility import load_criteria
    from eligibility.screen import screen_population
    from eligibility.table import Table
    from training.registry import tracking

    model, _ = tracking.load_registered(
        small_config.tracking.registered_model, "champion"
    )
    cohort = validate_cohort(generate_cohort(n=3000, seed=607, incidence=0.3))
    for column in ("anti_c1q_positive", "urine_protein_g_24h"):
        cohort.loc[cohort.index[:500], column] = None  # records missing key labs
    day, rules = date(2026, 12, 1), load_criteria()
    result = screen_population(model, cohort, day, rules).per_patient
    features = Table.from_frame(cohort, day).features()
    states = model.gate(features, rules.risk_gate.threshold)
    assert (result["gate"].to_numpy() == states.state).all()
    np.testing.assert_allclose(result["risk_low"], states.low)
    np.testing.assert_allclose(result["risk_high"], states.high)
    assert {"above", "below", "undetermined"} <= set(result["gate"])
    undetermined = (result["gate"] == "undetermined").to_numpy()
    status = result["status"].to_numpy()
    # an undetermined gate is never eligible, and rules a patient out only where a
    # criterion does (e.g. kidney involvement): never by the gate itself
    assert (status[undetermined] != "eligible").all()
    failing = np.zeros(len(result), dtype=bool)
    for c in rules.criteria:
        failing |= result[c.id].to_numpy() == (
            "met" if c.kind == "exclusion" else "not_met"
        )
    assert (failing[undetermined & (status == "ineligible")]).all()
    assert ((status == "needs_review") | failing)[undetermined].all()


def test_screen_reads_a_fhir_bulk_export(trained, tmp_path) -> None:
    """`cohort --format fhir-ndjson` → `screen --input DIR`: the same CSVs as
    screening the table the export reads as, plus the unused resources."""
    from datetime import date

    from data_schema.fhir.bulk import read_bulk

    folder = tmp_path / "bulk"
    runner = CliRunner()
    made = runner.invoke(
        app,
        ["cohort", "--n", "400", "--seed", "5", "--format", "fhir-ndjson",
         "--out", str(folder)],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert {"Patient.ndjson", "Observation.ndjson"} <= {
        p.name for p in folder.iterdir()
    }
    table = tmp_path / "as_table.parquet"
    read_bulk(folder, date(2026, 12, 1)).cohort.to_parquet(table)
    for source, out in ((folder, tmp_path / "a"), (table, tmp_path / "b")):
        result = runner.invoke(
            app,
            ["screen", "--input", str(source), "--screening-date", "2026-12-01",
             "--out", str(out), "--no-progress"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a" / "screening.csv"),
        pd.read_csv(tmp_path / "b" / "screening.csv"),
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "a" / "attrition.csv"),
        pd.read_csv(tmp_path / "b" / "attrition.csv"),
    )
    problems = pd.read_csv(tmp_path / "a" / "fhir_problems.csv")
    assert list(problems.columns) == ["pid", "resource", "field", "why"]
