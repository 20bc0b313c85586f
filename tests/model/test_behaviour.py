"""Behavioural tests of the registered champion, in clinical terms (Made-With-ML)."""

from __future__ import annotations

import numpy as np
import pytest

from data_schema import PatientRecord, frame_to_records, records_to_features
from synthetic.generator import generate_cohort
from training.registry import tracking

pytestmark = pytest.mark.slow

HIGH_RISK = PatientRecord(
    sex="male",
    age_years=22.0,
    disease_duration_years=0.4,
    anti_dsdna_iu_ml=1200.0,
    c3_g_l=0.42,
    c4_g_l=0.04,
    anti_c1q_positive=True,
    anti_sm_positive=True,
    lymphocytes_10e9_l=0.7,
    hypertension=True,
    urine_protein_g_24h=0.45,
    hydroxychloroquine_current=False,
)
LOW_RISK = PatientRecord(
    sex="female",
    age_years=52.0,
    disease_duration_years=9.0,
    anti_dsdna_iu_ml=15.0,
    c3_g_l=1.15,
    c4_g_l=0.25,
    anti_c1q_positive=False,
    antiphospholipid_positive=True,
    acr_discoid_rash=True,
    urine_protein_g_24h=0.05,
    hydroxychloroquine_current=True,
)


@pytest.fixture(scope="module")
def champion(trained):
    tracking.configure()
    model, _ = tracking.load_registered("ln-risk", "champion")
    return model


@pytest.fixture(scope="module")
def patients() -> list[PatientRecord]:
    return frame_to_records(generate_cohort(n=300, seed=404))


def test_textbook_high_risk_vignette_outranks_low_risk(champion) -> None:
    high, low = champion.predict_proba(records_to_features([HIGH_RISK, LOW_RISK]))
    assert high > low
    # below the cohort's average 2-year risk (10 %); the default model puts this
    # vignette at ~0.01, the tests' small profile (≤ 120 shallow trees) at ~0.05
    assert low < 0.10
    assert high > 0.5


def test_row_order_and_patient_id_do_not_change_risk(champion, patients) -> None:
    p = champion.predict_proba(records_to_features(patients))
    order = np.random.default_rng(0).permutation(len(patients))
    shuffled = champion.predict_proba(records_to_features([patients[i] for i in order]))
    np.testing.assert_array_equal(shuffled, p[order])
    renamed = [r.model_copy(update={"patient_id": f"X{i}"}) for i, r in
               enumerate(patients)]  # fmt: skip
    np.testing.assert_array_equal(
        champion.predict_proba(records_to_features(renamed)), p
    )


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("c3_g_l", lambda v: max(0.05, v - 0.25)),  # lower C3
        ("c4_g_l", lambda v: max(0.005, v / 2)),  # lower C4
        ("anti_dsdna_iu_ml", lambda v: min(100_000.0, v * 4)),  # higher anti-dsDNA
    ],
)
def test_worse_serology_never_lowers_risk(champion, patients, field, change) -> None:
    before = champion.predict_proba(records_to_features(patients))
    worse = [
        r if getattr(r, field) is None
        else r.model_copy(update={field: change(getattr(r, field))})
        for r in patients
    ]  # fmt: skip
    after = champion.predict_proba(records_to_features(worse))
    assert (after >= before - 1e-12).all()
