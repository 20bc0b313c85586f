"""Tests of the synthetic cohort generator against clinical.md §8.

Seeds are fixed, so every number below is deterministic; the tolerances are the bands
of §8.1 / §8.2 / §8.6 (stated in each test's name or docstring), wide enough that a
change of seed would also pass.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import special
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from data_schema.fields import field_specs
from data_schema.patient import PatientRecord
from data_schema.table import (
    OUTCOME_COLUMN,
    PANDAS_DTYPES,
    TRUE_RISK_COLUMN,
    validate_cohort,
)
from synthetic.checks import exclusions_met, kidney_involvement_met
from synthetic.generator import (
    ACR_NONRENAL_ITEMS,
    OUTCOME_TERMS,
    SHIFTS,
    PopulationShift,
    generate_cohort,
    linear_predictor,
    solve_intercept,
)

REFERENCE = date(2026, 12, 1)


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """The default 20,000-patient cohort (seed 0)."""
    return generate_cohort(n=20_000, seed=0)


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    """A 100,000-patient cohort (seed 7) for the §8.1 population targets."""
    return generate_cohort(n=100_000, seed=7)


# --- schema and determinism -----------------------------------------------------------
def test_cohort_passes_validate_cohort_with_zero_errors(cohort: pd.DataFrame) -> None:
    validated = validate_cohort(cohort)
    assert len(validated) == len(cohort) == 20_000


def test_columns_have_schema_dtypes(cohort: pd.DataFrame) -> None:
    expected = PANDAS_DTYPES
    for name, spec in field_specs().items():
        assert str(cohort[name].dtype) == expected[spec.kind], name
    assert str(cohort[OUTCOME_COLUMN].dtype) == "Int64"
    assert str(cohort[TRUE_RISK_COLUMN].dtype) == "float64"
    extra = set(cohort.columns) - set(field_specs()) - {OUTCOME_COLUMN}
    extra -= {TRUE_RISK_COLUMN}
    assert extra == {
        "dgp_latent_activity",
        "dgp_linear_predictor",
        "dgp_prior_kidney_involvement",
    }
    assert str(cohort["dgp_prior_kidney_involvement"].dtype) == "bool"
    assert set(cohort["sex"].unique()) == {"female", "male"}
    assert cohort["patient_id"].iloc[0] == "SYN-0-000001"
    assert cohort["patient_id"].str.fullmatch(r"SYN-0-\d{6}").all()


def test_values_lie_inside_field_ranges(cohort: pd.DataFrame) -> None:
    for name, spec in field_specs().items():
        if spec.kind in ("float", "int") and cohort[name].notna().any():
            values = cohort[name].dropna().astype("float64")
            assert values.min() >= spec.ge and values.max() <= spec.le, name


def test_rows_are_valid_patient_records(cohort: pd.DataFrame) -> None:
    """Every 100th row builds a strict PatientRecord (types, ranges, consistency)."""
    specs = field_specs()
    cast = {"float": float, "int": int, "bool": bool, "category": str, "text": str}
    for _, row in cohort.iloc[::100].iterrows():
        values = {}
        for name, spec in specs.items():
            value = row[name]
            if pd.isna(value):
                continue
            values[name] = (
                value.date() if spec.kind == "date" else cast[spec.kind](value)
            )
        PatientRecord(**values)


def test_same_seed_gives_identical_frame_and_other_seed_differs() -> None:
    a = generate_cohort(n=2_000, seed=11)
    b = generate_cohort(n=2_000, seed=11)
    pd.testing.assert_frame_equal(a, b)
    c = generate_cohort(n=2_000, seed=12)
    assert not a["c3_g_l"].equals(c["c3_g_l"])
    assert not a[TRUE_RISK_COLUMN].equals(c[TRUE_RISK_COLUMN])


def test_age_date_of_birth_duration_and_acr_items_are_consistent(
    cohort: pd.DataFrame,
) -> None:
    ref = pd.Timestamp(REFERENCE)
    from_dob = (ref - cohort["date_of_birth"]).dt.days / 365.25
    np.testing.assert_allclose(cohort["age_years"], from_dob, atol=1e-9)
    assert cohort["age_years"].between(18, 75).all()
    onset = cohort["age_years"] - cohort["disease_duration_years"]
    assert (onset.dropna() >= 12 - 1e-6).all()
    assert not cohort["acr_renal_disorder"].any()
    items = cohort[list(ACR_NONRENAL_ITEMS)].astype(int).sum(axis=1)
    assert (items >= 4).all()
    assert cohort["consent_signed"].isna().all()
    assert cohort["contraception_agreed"].isna().all()


# --- §8.1 targets ---------------------------------------------------------------------
def _kidney_free(df: pd.DataFrame) -> pd.DataFrame:
    """§8.1 describes patients without prior kidney involvement (new-onset LN)."""
    return df[~kidney_involvement_met(df)]


def test_mean_true_risk_is_010_pm_0005_and_observed_pm_001(large: pd.DataFrame) -> None:
    kidney_free = _kidney_free(large)
    assert abs(kidney_free[TRUE_RISK_COLUMN].mean() - 0.10) < 0.005
    assert abs(kidney_free[OUTCOME_COLUMN].mean() - 0.10) < 0.01
    # the kidney-involved patients (left out) are at higher risk
    assert large[TRUE_RISK_COLUMN].mean() > kidney_free[TRUE_RISK_COLUMN].mean()


def test_true_model_auroc_is_082_pm_003(large: pd.DataFrame) -> None:
    auc = roc_auc_score(large[OUTCOME_COLUMN].astype(int), large[TRUE_RISK_COLUMN])
    assert abs(auc - 0.82) < 0.03


def test_share_with_true_risk_over_half_is_15_to_4_percent(large: pd.DataFrame) -> None:
    assert 0.015 <= (large[TRUE_RISK_COLUMN] > 0.5).mean() <= 0.04


def test_recorded_log_dsdna_c3_correlation_is_minus_044_pm_008(
    large: pd.DataFrame,
) -> None:
    both = large[["anti_dsdna_iu_ml", "c3_g_l"]].dropna()
    r = np.corrcoef(np.log10(both["anti_dsdna_iu_ml"]), both["c3_g_l"])[0, 1]
    assert abs(r - (-0.44)) < 0.08


def test_male_share_8_pm_1_percent_and_dsdna_positive_50_pm_8_percent(
    large: pd.DataFrame,
) -> None:
    assert abs((large["sex"] == "male").mean() - 0.08) < 0.01
    positive = (large["anti_dsdna_iu_ml"].dropna() >= 100).mean()
    assert abs(positive - 0.50) < 0.08


def test_incidence_012_gives_mean_true_risk_012_pm_0005() -> None:
    df = generate_cohort(n=50_000, seed=5, incidence=0.12)
    assert abs(_kidney_free(df)[TRUE_RISK_COLUMN].mean() - 0.12) < 0.005
    assert solve_intercept(0.12) > solve_intercept(0.10)


def test_three_variable_model_auroc_062_to_076_and_max_risk_below_half(
    large: pd.DataFrame,
) -> None:
    """§8.1 sanity check (RIFLE-LN): male, age, anti-dsDNA+ only reach AUC ~0.70."""
    x = np.column_stack(
        [
            (large["sex"] == "male").to_numpy(float),
            large["age_years"].to_numpy(float),
            (large["anti_dsdna_iu_ml"].fillna(0) >= 100).to_numpy(float),
        ]
    )
    y = large[OUTCOME_COLUMN].astype(int).to_numpy()
    risk = LogisticRegression().fit(x, y).predict_proba(x)[:, 1]
    assert 0.62 <= roc_auc_score(y, risk) <= 0.76
    assert risk.max() < 0.5


# --- §8.6 missingness, noise and confounding ------------------------------------------
def test_missingness_rates_lie_in_stated_bands(cohort: pd.DataFrame) -> None:
    """C1q / nucleosome measured 40–60 %, IgG/IgA 85–95 %, weight 93–97 %."""
    measured = cohort.notna().mean()
    for name in ("anti_c1q_positive", "anti_nucleosome_positive"):
        assert 0.40 <= measured[name] <= 0.60, name
    for name in ("igg_g_l", "iga_g_l"):
        assert 0.85 <= measured[name] <= 0.95, name
    assert 0.93 <= measured["weight_kg"] <= 0.97
    for name in ("anti_dsdna_iu_ml", "c3_g_l", "c4_g_l", "lymphocytes_10e9_l"):
        assert 0.95 <= measured[name] < 1.0, name
    assert measured["age_years"] == measured["sex"] == 1.0


def test_c1q_is_measured_more_often_when_activity_is_high(
    cohort: pd.DataFrame,
) -> None:
    z = cohort["dgp_latent_activity"]
    measured = cohort["anti_c1q_positive"].notna()
    assert measured[z > 1].mean() > measured[z < -1].mean() + 0.15


def test_noise_changes_recorded_labs_but_not_the_truth() -> None:
    noisy = generate_cohort(n=5_000, seed=3, measurement_noise=True)
    clean = generate_cohort(n=5_000, seed=3, measurement_noise=False)
    pd.testing.assert_series_equal(noisy[TRUE_RISK_COLUMN], clean[TRUE_RISK_COLUMN])
    pd.testing.assert_series_equal(noisy[OUTCOME_COLUMN], clean[OUTCOME_COLUMN])
    both = noisy["c3_g_l"].notna() & clean["c3_g_l"].notna()
    assert (noisy.loc[both, "c3_g_l"] != clean.loc[both, "c3_g_l"]).mean() > 0.99
    ratio = noisy["anti_dsdna_iu_ml"] / clean["anti_dsdna_iu_ml"]
    assert 0.15 < np.log(ratio.dropna()).std() < 0.35  # CV 20–30 %


def test_complete_records_differ_only_where_values_went_missing() -> None:
    from data_schema import model_features

    recorded = generate_cohort(n=3_000, seed=5)
    complete = generate_cohort(n=3_000, seed=5, missing_values=False)
    predictors = [f for f in model_features() if f in complete]
    assert complete[predictors].notna().all().all()
    gone = recorded[predictors].isna()
    assert gone.to_numpy().mean() > 0.02  # values do go missing by default
    kept = recorded[predictors].where(~gone)
    pd.testing.assert_frame_equal(kept, complete[predictors].where(~gone))
    pd.testing.assert_series_equal(
        recorded[TRUE_RISK_COLUMN], complete[TRUE_RISK_COLUMN]
    )


def test_noise_free_records_reproduce_the_linear_predictor() -> None:
    """Without noise the recorded values are the truth (age to within a day)."""
    df = generate_cohort(n=5_000, seed=4, measurement_noise=False)
    x = {name: df[name] for name in OUTCOME_TERMS if name in df}
    x |= {
        "male": (df["sex"] == "male").astype(float),
        "anti_dsdna_iu_ml": df["anti_dsdna_iu_ml"],
        "lymphocytes_10e9_l": df["lymphocytes_10e9_l"],
        "urine_protein_g_24h": df["urine_protein_g_24h"],
        "disease_duration_years": df["disease_duration_years"],
    }
    frame = pd.DataFrame(x).astype("float64")
    complete = frame.notna().all(axis=1).to_numpy()
    assert complete.sum() > 1_000
    lp = linear_predictor(frame[complete], beta0=df.attrs["dgp_beta0"])
    np.testing.assert_allclose(lp, df.loc[complete, "dgp_linear_predictor"], atol=1e-3)
    np.testing.assert_allclose(
        df[TRUE_RISK_COLUMN], special.expit(df["dgp_linear_predictor"]), rtol=1e-12
    )


def test_treatment_is_confounded_by_activity(cohort: pd.DataFrame) -> None:
    """Prednisone dose rises and HCQ use falls with Z, yet prednisone has beta 0."""
    z = cohort["dgp_latent_activity"]
    assert np.corrcoef(z, cohort["prednisone_mg_day"])[0, 1] > 0.15
    hcq = cohort["hydroxychloroquine_current"].astype(bool)
    assert z[hcq].mean() < z[~hcq].mean()
    assert abs(hcq.mean() - 0.85) < 0.02


# --- the outcome model ----------------------------------------------------------------
def _centre_patient(**changes: float) -> dict[str, np.ndarray]:
    """A patient at every centre of §8.4, all flags 0, disease duration 2 y."""
    x = {name: centre for name, (_, centre) in OUTCOME_TERMS.items()}
    x |= {
        "anti_dsdna_iu_ml": 100.0,
        "lymphocytes_10e9_l": 1.5,
        "urine_protein_g_24h": 0.10,
        "disease_duration_years": 2.0,
        "anti_nucleosome_positive": 0.0,
        "acr_oral_ulcers": 0.0,
        "esr_mm_h": 20.0,
        "urine_rbc_per_hpf": 1.0,
        "immunosuppressant_current": 0.0,
        "prednisone_mg_day": 10.0,
    }
    x |= changes
    return {k: np.array([v], dtype=float) for k, v in x.items()}


def test_linear_predictor_known_values() -> None:
    """Hand-computed from the §8.4 table."""
    assert linear_predictor(_centre_patient())[0] == pytest.approx(0.0)
    assert linear_predictor(_centre_patient(male=1.0))[0] == pytest.approx(0.69)
    # Duration < 1 y +0.4; protein capped at 0.5 g: 2.0 * (0.5 - 0.1) = 0.8.
    x = _centre_patient(disease_duration_years=0.5, urine_protein_g_24h=3.0)
    assert linear_predictor(x)[0] == pytest.approx(1.2)
    # anti-dsDNA 1000 IU/mL: +0.6 per log10; C3 0.58: -1.5 * -0.3 = +0.45.
    x = _centre_patient(anti_dsdna_iu_ml=1000.0, c3_g_l=0.58)
    assert linear_predictor(x, beta0=-2.0)[0] == pytest.approx(-2.0 + 0.6 + 0.45)
    # Prednisone has beta 0 even with the small terms.
    a = linear_predictor(_centre_patient(prednisone_mg_day=0.0), small_terms=True)
    b = linear_predictor(_centre_patient(prednisone_mg_day=40.0), small_terms=True)
    assert a[0] == pytest.approx(b[0]) == pytest.approx(0.0)


def test_textbook_high_risk_vignette_outranks_low_risk_one() -> None:
    high = _centre_patient(
        male=1.0,
        age_years=24.0,
        anti_dsdna_iu_ml=800.0,
        c3_g_l=0.55,
        c4_g_l=0.05,
        anti_c1q_positive=1.0,
        lymphocytes_10e9_l=0.7,
        disease_duration_years=0.5,
    )
    low = _centre_patient(
        age_years=55.0,
        anti_dsdna_iu_ml=20.0,
        c3_g_l=1.2,
        hydroxychloroquine_current=1.0,
        disease_duration_years=8.0,
    )
    beta0 = solve_intercept(0.10)
    assert special.expit(linear_predictor(high, beta0=beta0))[0] > 0.5
    assert special.expit(linear_predictor(low, beta0=beta0))[0] < 0.02


def test_small_terms_change_beta0_but_keep_the_incidence() -> None:
    df = generate_cohort(n=20_000, seed=8, small_terms=True)
    assert df.attrs["dgp_beta0"] != solve_intercept(0.10)
    assert abs(_kidney_free(df)[TRUE_RISK_COLUMN].mean() - 0.10) < 0.005


# --- population shifts ----------------------------------------------------------------
def test_external_shift_keeps_beta0_and_changes_case_mix_and_incidence() -> None:
    solve_intercept.cache_clear()
    base = generate_cohort(n=50_000, seed=9)
    ext = generate_cohort(n=50_000, seed=9, shift="external")
    assert solve_intercept.cache_info().misses == 1
    assert ext.attrs["dgp_beta0"] == base.attrs["dgp_beta0"]
    assert ext["age_years"].mean() > base["age_years"].mean() + 4
    assert (ext["sex"] == "male").mean() > (base["sex"] == "male").mean()
    hcq = ext["hydroxychloroquine_current"].astype(bool).mean()
    assert hcq > base["hydroxychloroquine_current"].astype(bool).mean() + 0.05
    assert abs(ext[TRUE_RISK_COLUMN].mean() - base[TRUE_RISK_COLUMN].mean()) > 0.02
    assert np.median(ext["anti_dsdna_iu_ml"].dropna()) < np.median(
        base["anti_dsdna_iu_ml"].dropna()
    )


def test_assay_shift_scales_recorded_dsdna_by_07_and_leaves_the_truth() -> None:
    base = generate_cohort(n=5_000, seed=10)
    clia = generate_cohort(n=5_000, seed=10, shift="assay_clia")
    ratio = (clia["anti_dsdna_iu_ml"] / base["anti_dsdna_iu_ml"]).dropna()
    # Titres clipped at the 1 IU/mL floor of the field range are the only exception.
    unclipped = base.loc[ratio.index, "anti_dsdna_iu_ml"] > 2.0
    np.testing.assert_allclose(ratio[unclipped], 0.7, rtol=1e-12)
    pd.testing.assert_series_equal(base[TRUE_RISK_COLUMN], clia[TRUE_RISK_COLUMN])


def test_custom_shift_object_is_accepted_and_bad_inputs_are_rejected() -> None:
    custom = replace(SHIFTS["none"], name="older", age_mean_shift_years=10.0)
    df = generate_cohort(n=1_000, seed=1, shift=custom)
    assert df.attrs["dgp_shift"] == "older"
    with pytest.raises(ValueError, match="unknown shift"):
        generate_cohort(n=10, shift="mars")
    with pytest.raises(ValueError, match="incidence"):
        generate_cohort(n=10, incidence=1.2)
    with pytest.raises(ValueError, match="n must be"):
        generate_cohort(n=0)
    with pytest.raises(ValueError, match="assay_scale"):
        PopulationShift("bad", anti_dsdna_assay_scale=0.0)


# --- trial-exclusion facts, read by the trial's criteria file ------------------------
#: Exclusions no synthetic patient is meant to meet: the investigator's judgment,
#: leukopenia after cyclophosphamide (leukocytes are not drawn that low on purpose),
#: and the kidney history the generator does not simulate (ACR renal item, an
#: earlier abnormal urinalysis).
NOT_GENERATED = {
    "EXC-12-other-lab-abnormality",
    "EXC-13-intercurrent-illness",
    "EXC-15d-cyclophosphamide-leukopenia",
    "EXC-01f-acr-renal-disorder",
    "EXC-01h-earlier-abnormal-urinalysis",
}


@pytest.fixture(scope="module")
def excluded(cohort: pd.DataFrame) -> pd.DataFrame:
    return exclusions_met(cohort)


def test_15_to_35_percent_excluded_and_every_generated_exclusion_appears(
    excluded: pd.DataFrame,
) -> None:
    assert 0.15 <= excluded.any(axis=1).mean() <= 0.35
    seen = set(excluded.columns[excluded.any()])
    assert set(excluded.columns) - NOT_GENERATED <= seen
    assert not seen & {"EXC-12-other-lab-abnormality", "EXC-13-intercurrent-illness"}


def test_contaminated_urine_samples_are_recorded_as_such(
    cohort: pd.DataFrame, excluded: pd.DataFrame
) -> None:
    """A high urine RBC count taken during menses or an infection is not a reason."""
    contaminated = cohort["urine_rbc_with_menses_or_infection"].fillna(False)
    high = (cohort["urine_rbc_per_hpf"] > 5).fillna(False) & contaminated
    assert high.sum() > 50
    assert not excluded.loc[high, "EXC-01b-urine-rbc"].any()
    clean = cohort["urine_rbc_with_menses_or_infection"].eq(False).fillna(False)
    renal = (cohort["urine_rbc_per_hpf"] > 5).fillna(False) & clean
    assert renal.sum() > 50
    assert excluded.loc[renal, "EXC-01b-urine-rbc"].all()


def test_prevalences_of_the_main_exclusion_facts(excluded: pd.DataFrame) -> None:
    """§8.2 pre-exclusion prevalences, recorded values (some are missing)."""

    def share(*ids: str) -> float:
        return float(excluded[list(ids)].any(axis=1).mean())

    assert 0.02 <= share("EXC-05a-alt-over-2x-uln", "EXC-05b-ast-over-2x-uln") <= 0.04
    assert 0.01 <= share("EXC-05c-crcl-below-60") <= 0.03
    assert 0.045 <= share("EXC-09d-hepatitis-b") <= 0.075
    assert 0.005 <= share("EXC-07-igg-below-400mg-dl") <= 0.015
    urine = [c for c in excluded.columns if c.startswith("EXC-01")]
    assert len(urine) == 8  # every route to prior kidney involvement
    assert 0.06 <= share(*urine) <= 0.10


def test_history_dates_precede_the_reference_and_match_the_ever_flags(
    cohort: pd.DataFrame,
) -> None:
    ref = pd.Timestamp(REFERENCE)
    for name in cohort.columns:
        if name.endswith("_last_date"):
            stem = name.removesuffix("_last_date")
            ever = cohort[f"{stem}_ever"].fillna(False).astype(bool)
            assert cohort.loc[ever, name].notna().all(), name
            assert cohort.loc[~ever, name].isna().all(), name
            assert (cohort[name].dropna() < ref).all(), name
    stable = (ref - cohort["soc_regimen_stable_since"]).dt.days
    assert 0.07 <= (stable < 30).mean() <= 0.13
    assert (cohort["alt_uln_u_l"].dropna() == 40).all()
    creat_uln = cohort.groupby("sex")["creatinine_uln_umol_l"].first()
    assert creat_uln["male"] > creat_uln["female"]
