"""The development population and the oracle's absence from everything shipped."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pandas as pd
import pytest

from data_schema import without_truth
from synthetic import generate_cohort
from training.config import load_config
from training.data import PopulationDefinition, config_population
from training.pipeline import fit_and_evaluate

KIDNEY = "dgp_prior_kidney_involvement"


@pytest.fixture(scope="module")
def config():  # -> TrainingConfig
    return load_config()


def _sediment_explained_only(cohort) -> pd.Series:
    """Kidney involvement shown only by urine cells the record attributes to menses or
    infection: the registry does not count those, so neither does the filter."""
    rbc = (cohort["urine_rbc_per_hpf"] > 5) & ~cohort[
        "urine_rbc_with_menses_or_infection"
    ]
    wbc = (cohort["urine_wbc_per_hpf"] > 5) & ~cohort["urine_wbc_with_infection"]
    other = (
        (cohort["urine_protein_g_24h"] > 0.5)
        | cohort["urine_cellular_casts"]
        | cohort["kidney_biopsy_confirmed"]
        | cohort["acr_renal_disorder"]
        | cohort["lupus_nephritis_diagnosis_ever"]
        | cohort["abnormal_urinalysis_ever"]
    )
    sediment = (cohort["urine_rbc_per_hpf"] > 5) | (cohort["urine_wbc_per_hpf"] > 5)
    return (sediment & ~rbc & ~wbc & ~other).astype(bool)


def test_the_filter_drops_exactly_the_kidney_involved(config) -> None:
    """With every value recorded, the patients left out are those whose clinical
    truth has kidney involvement at baseline, by whatever route — except urine cells
    the record itself explains by menses or infection."""
    cohort = generate_cohort(n=4000, seed=5, missing_values=False)
    kept, attrition = config_population(config).apply(cohort, config.trial_criteria)
    involved = cohort[KIDNEY] & ~_sediment_explained_only(cohort)
    assert involved.sum() > 200 and _sediment_explained_only(cohort).sum() > 0
    assert list(kept["patient_id"]) == list(cohort.loc[~involved, "patient_id"])
    rows = {row["step"]: row["patients"] for row in attrition}
    assert rows["left out (any route)"] == int(involved.sum())
    assert rows["development population"] == len(kept)


def test_missing_values_never_leave_a_patient_out_wrongly(config) -> None:
    """A record missing its urine results cannot show kidney involvement it has;
    it never shows one it does not have."""
    cohort = generate_cohort(n=4000, seed=5)
    kept, attrition = config_population(config).apply(cohort, config.trial_criteria)
    left_out = ~cohort["patient_id"].isin(kept["patient_id"])
    assert not (left_out & ~cohort[KIDNEY]).any()
    rows = {row["step"]: row["patients"] for row in attrition}
    assert rows["kept, not ruled out (data missing)"] > 0


def test_a_run_records_its_population_as_tags() -> None:
    definition = PopulationDefinition.of(["kidney-involvement"], None)
    assert PopulationDefinition.from_tags(definition.tags()) == definition
    assert PopulationDefinition.from_tags({}) is None


@pytest.mark.slow
def test_shipped_model_files_are_byte_identical_without_the_oracle(
    small_config, small_cohort, tmp_path: Path
) -> None:
    """Real data has no true-risk column: the model trained without it is the same,
    file for file, byte for byte."""
    cohort, _ = small_cohort
    assert "true_risk_2y" in cohort
    with_truth = fit_and_evaluate(small_config, cohort, show_progress=False)
    blind = fit_and_evaluate(small_config, without_truth(cohort), show_progress=False)
    a = with_truth.model.save(tmp_path / "with_truth")
    b = blind.model.save(tmp_path / "without_truth")
    files = sorted(p.name for p in Path(a).iterdir())
    assert files == sorted(p.name for p in Path(b).iterdir())
    shipped = json.loads((Path(a) / "model.json").read_text())
    assert {"review_zone", "imputation"} <= set(shipped)  # the gate's parameters too
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == [], (mismatch, errors)
    assert with_truth.evaluation.true_risk is not None
    assert blind.evaluation.true_risk is None
