"""Fixtures for the eligibility tests: the criteria and an eligible patient."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pytest

from data_schema import PatientRecord
from eligibility import Table, load_criteria
from eligibility.criteria import TrialCriteria
from eligibility.decision import CriterionVerdict, phrase
from eligibility.evaluate import Evaluation, Gate, Program

SCREENING = date(2026, 12, 1)

#: A 40-year-old woman who meets every criterion (consent and contraception recorded).
ELIGIBLE: dict[str, Any] = {
    "patient_id": "T-001",
    "sex": "female",
    "date_of_birth": date(1986, 6, 1),
    "weight_kg": 60.0,
    "height_cm": 162.0,
    "acr_malar_rash": True,
    "acr_discoid_rash": False,
    "acr_photosensitivity": False,
    "acr_oral_ulcers": False,
    "acr_arthritis": True,
    "acr_serositis": False,
    "acr_renal_disorder": False,
    "acr_neurologic_disorder": False,
    "acr_hematologic_disorder": True,
    "acr_immunologic_disorder": True,
    "acr_antinuclear_antibody": True,
    "leukocytes_10e9_l": 5.5,
    "igg_g_l": 12.0,
    "iga_g_l": 2.0,
    "alt_u_l": 20.0,
    "alt_uln_u_l": 40.0,
    "ast_u_l": 22.0,
    "ast_uln_u_l": 40.0,
    "creatinine_umol_l": 60.0,
    "kidney_biopsy_confirmed": False,
    "lupus_nephritis_diagnosis_ever": False,
    "abnormal_urinalysis_ever": False,
    "urine_protein_g_24h": 0.1,
    "urine_rbc_per_hpf": 2,
    "urine_rbc_with_menses_or_infection": False,
    "urine_wbc_per_hpf": 1,
    "urine_wbc_with_infection": False,
    "urine_cellular_casts": False,
    "neuropsychiatric_lupus_active": False,
    "cardiac_lupus_active": False,
    "pregnant": False,
    "lactating": False,
    "primary_immunodeficiency": False,
    "anaphylaxis_history": False,
    "substance_abuse_current": False,
    "substance_abuse_ever": False,
    "chronic_infection_suppressive_therapy": False,
    "infection_hospitalisation_ever": False,
    "parenteral_antiinfective_ever": False,
    "hbsag_positive": False,
    "hbcab_positive": False,
    "hiv_positive": False,
    "hydroxychloroquine_current": True,
    "prednisone_mg_day": 10.0,
    "immunosuppressant_current": False,
    "soc_regimen_stable_since": date(2026, 6, 1),
    "prednisone_dose_unchanged_since": date(2026, 6, 1),
    "hydroxychloroquine_dose_unchanged_since": date(2026, 6, 1),
    "prednisone_over_100mg_ever": False,
    "b_cell_therapy_ever": False,
    "iv_cyclophosphamide_ever": False,
    "ivig_ever": False,
    "investigational_biologic_ever": False,
    "investigational_nonbiologic_ever": False,
    "live_vaccine_ever": False,
    "consent_signed": True,
    "contraception_agreed": True,
}


def make_record(**overrides: Any) -> PatientRecord:
    """The eligible patient with some fields changed; ``None`` deletes a field."""
    data = {**ELIGIBLE, **overrides}
    return PatientRecord(**{k: v for k, v in data.items() if v is not None})


@pytest.fixture(scope="session")
def screening_date() -> date:
    return SCREENING


@pytest.fixture(scope="session")
def record() -> Callable[..., PatientRecord]:
    """``record(**overrides)``: the eligible patient changed; ``None`` deletes."""
    return make_record


@pytest.fixture(scope="session")
def criteria() -> TrialCriteria:
    return load_criteria()


@pytest.fixture(scope="session")
def verdict_of(
    criteria: TrialCriteria,
) -> Callable[..., CriterionVerdict]:
    """``verdict_of(criterion_id, risk=..., **overrides)`` on the eligible patient."""

    def run(criterion_id: str, risk: float = 0.8, **overrides: Any) -> CriterionVerdict:
        table = Table.from_record(make_record(**overrides), SCREENING)
        gate = Gate(np.array([risk]), criteria.risk_gate.threshold)
        criterion = criteria.by_id[criterion_id]
        evaluation = Evaluation(Program.of([criterion.rule]), table, gate)
        return phrase(criterion, evaluation, evaluation.program.roots[0], 0)

    return run
