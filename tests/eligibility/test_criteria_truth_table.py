"""Truth table per criterion of NCT05585671, with its boundaries.

Each row: criterion id, changes to an otherwise eligible patient (``None`` deletes a
field), the expected verdict and, for ``unknown``, the fields reported missing. For an
exclusion criterion ``met`` means the patient HAS the excluding condition.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from eligibility.derived import ACR1997_ITEMS

SCREENING = date(2026, 12, 1)  # = conftest.SCREENING


def ago(n: int) -> date:
    return SCREENING - timedelta(days=n)


def exposed(stem: str, days: int | None) -> dict[str, Any]:
    """Exposure ``stem`` last ``days`` before screening (None: date unknown)."""
    return {
        f"{stem}_ever": True,
        f"{stem}_last_date": None if days is None else ago(days),
    }


ACR_ALL_FALSE = dict.fromkeys(ACR1997_ITEMS, False)
ACR_NAMES = list(ACR_ALL_FALSE)
# A man of 40 (age_years only) with SCr 88.4 µmol/L = 1.0 mg/dL:
# CrCl = (140 − 40) × weight / 72 → 60.0 mL/min at 43.2 kg, 59.9 at 43.128 kg.
CG_MAN = {
    "sex": "male",
    "date_of_birth": None,
    "age_years": 40.0,
    "creatinine_umol_l": 88.4,
    "pregnant": None,
    "lactating": None,
}

CASES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    # --- inclusion ---------------------------------------------------------------
    ("INC-01-age", {"date_of_birth": date(2008, 12, 1)}, "met", ()),  # 18th birthday
    ("INC-01-age", {"date_of_birth": date(2008, 12, 2)}, "not_met", ()),
    ("INC-01-age", {"date_of_birth": None, "age_years": 18.0}, "met", ()),
    ("INC-01-age", {"date_of_birth": None, "age_years": 17.9}, "not_met", ()),
    ("INC-01-age", {"date_of_birth": None}, "unknown", ("date_of_birth", "age_years")),
    (
        "INC-02-acr1997",
        {**ACR_ALL_FALSE, **dict.fromkeys(ACR_NAMES[:4], True)},
        "met",
        (),
    ),
    (
        "INC-02-acr1997",
        {**ACR_ALL_FALSE, **dict.fromkeys(ACR_NAMES[:3], True)},
        "not_met",
        (),
    ),
    (
        "INC-02-acr1997",
        {**ACR_ALL_FALSE, **dict.fromkeys(ACR_NAMES[:3], True), "acr_serositis": None},
        "unknown",
        ("acr_serositis",),
    ),
    # 4 known true decide it even with the other 7 missing
    (
        "INC-02-acr1997",
        {**dict.fromkeys(ACR_NAMES, None), **dict.fromkeys(ACR_NAMES[:4], True)},
        "met",
        (),
    ),
    # 0 true and 3 missing cannot reach 4
    (
        "INC-02-acr1997",
        {**ACR_ALL_FALSE, **dict.fromkeys(ACR_NAMES[:3], None)},
        "not_met",
        (),
    ),
    # per drug: each drug taken at its dose for >= 30 days (day 30 included)
    ("INC-04a-soc-stable-30d", {"prednisone_dose_unchanged_since": ago(30)}, "met", ()),
    (
        "INC-04a-soc-stable-30d",
        {"prednisone_dose_unchanged_since": ago(29)},
        "not_met",
        (),
    ),
    (
        "INC-04a-soc-stable-30d",
        {"hydroxychloroquine_dose_unchanged_since": ago(7)},
        "not_met",
        (),
    ),
    (  # a drug not taken needs no date
        "INC-04a-soc-stable-30d",
        {"prednisone_mg_day": 0.0, "prednisone_dose_unchanged_since": None},
        "met",
        (),
    ),
    (
        "INC-04a-soc-stable-30d",
        {
            "immunosuppressant_current": True,
            "immunosuppressant_name": "azathioprine",
            "immunosuppressant_dose_unchanged_since": ago(10),
        },
        "not_met",
        (),
    ),
    (  # the regimen-level date alone cannot tell a changed dose from a stable one
        "INC-04a-soc-stable-30d",
        {
            "soc_regimen_stable_since": ago(400),
            "prednisone_dose_unchanged_since": None,
            "hydroxychloroquine_dose_unchanged_since": None,
        },
        "unknown",
        (
            "prednisone_dose_unchanged_since",
            "hydroxychloroquine_dose_unchanged_since",
        ),
    ),
    ("INC-04b-prednisone-0-40", {"prednisone_mg_day": 40.0}, "met", ()),
    ("INC-04b-prednisone-0-40", {"prednisone_mg_day": 0.0}, "met", ()),
    ("INC-04b-prednisone-0-40", {"prednisone_mg_day": 40.5}, "not_met", ()),
    (
        "INC-04b-prednisone-0-40",
        {"prednisone_mg_day": None},
        "unknown",
        ("prednisone_mg_day",),
    ),
    (
        "INC-04c-soc-agent",
        {
            "prednisone_mg_day": 0.0,
            "hydroxychloroquine_current": False,
            "hydroxychloroquine_dose_unchanged_since": None,
        },
        "not_met",
        (),
    ),
    (
        "INC-04c-soc-agent",
        {
            "prednisone_mg_day": 0.0,
            "hydroxychloroquine_current": False,
            "hydroxychloroquine_dose_unchanged_since": None,
            "immunosuppressant_current": True,
            "immunosuppressant_name": "mycophenolate",
        },
        "met",
        (),
    ),
    (
        "INC-04c-soc-agent",
        {
            "prednisone_mg_day": 0.0,
            "hydroxychloroquine_current": False,
            "hydroxychloroquine_dose_unchanged_since": None,
            "immunosuppressant_current": True,
            "immunosuppressant_name": "other",
        },
        "needs_judgment",  # reading soc-immunosuppressant-list (tests/…/readings)
        (),
    ),
    (
        "INC-04c-soc-agent",
        {
            "prednisone_mg_day": 0.0,
            "hydroxychloroquine_current": None,
        },
        "unknown",
        ("hydroxychloroquine_current",),
    ),
    ("INC-05-consent", {"consent_signed": True}, "met", ()),
    ("INC-05-consent", {"consent_signed": False}, "not_met", ()),
    ("INC-05-consent", {"consent_signed": None}, "unknown", ("consent_signed",)),
    ("INC-06-contraception", {"contraception_agreed": True}, "met", ()),
    ("INC-06-contraception", {"contraception_agreed": False}, "not_met", ()),
    (
        "INC-06-contraception",
        {"contraception_agreed": None},
        "unknown",
        ("contraception_agreed",),
    ),
    # --- exclusion: previous kidney involvement ---------------------------------
    ("EXC-01a-kidney-biopsy", {"kidney_biopsy_confirmed": True}, "met", ()),
    ("EXC-01a-kidney-biopsy", {}, "not_met", ()),
    (
        "EXC-01a-kidney-biopsy",
        {"kidney_biopsy_confirmed": None},
        "unknown",
        ("kidney_biopsy_confirmed",),
    ),
    ("EXC-01b-urine-rbc", {"urine_rbc_per_hpf": 5}, "not_met", ()),
    ("EXC-01b-urine-rbc", {"urine_rbc_per_hpf": 6}, "met", ()),
    (
        "EXC-01b-urine-rbc",
        {"urine_rbc_per_hpf": 6, "urine_rbc_with_menses_or_infection": True},
        "not_met",
        (),
    ),
    (
        "EXC-01b-urine-rbc",
        {"urine_rbc_per_hpf": 6, "urine_rbc_with_menses_or_infection": None},
        "unknown",
        ("urine_rbc_with_menses_or_infection",),
    ),
    (
        "EXC-01b-urine-rbc",
        {"urine_rbc_per_hpf": 3, "urine_rbc_with_menses_or_infection": None},
        "not_met",
        (),
    ),
    (
        "EXC-01b-urine-rbc",
        {"urine_rbc_per_hpf": None},
        "unknown",
        ("urine_rbc_per_hpf",),
    ),
    ("EXC-01c-urine-wbc", {"urine_wbc_per_hpf": 5}, "not_met", ()),
    ("EXC-01c-urine-wbc", {"urine_wbc_per_hpf": 6}, "met", ()),
    (
        "EXC-01c-urine-wbc",
        {"urine_wbc_per_hpf": 6, "urine_wbc_with_infection": True},
        "not_met",
        (),
    ),
    (
        "EXC-01c-urine-wbc",
        {"urine_wbc_per_hpf": None},
        "unknown",
        ("urine_wbc_per_hpf",),
    ),
    ("EXC-01d-urine-casts", {"urine_cellular_casts": True}, "met", ()),
    ("EXC-01d-urine-casts", {}, "not_met", ()),
    (
        "EXC-01d-urine-casts",
        {"urine_cellular_casts": None},
        "unknown",
        ("urine_cellular_casts",),
    ),
    ("EXC-01e-urine-protein", {"urine_protein_g_24h": 0.50}, "not_met", ()),
    ("EXC-01e-urine-protein", {"urine_protein_g_24h": 0.51}, "met", ()),
    (
        "EXC-01e-urine-protein",
        {"urine_protein_g_24h": None},
        "unknown",
        ("urine_protein_g_24h",),
    ),
    ("EXC-01f-acr-renal-disorder", {"acr_renal_disorder": True}, "met", ()),
    ("EXC-01f-acr-renal-disorder", {}, "not_met", ()),
    (
        "EXC-01f-acr-renal-disorder",
        {"acr_renal_disorder": None},
        "unknown",
        ("acr_renal_disorder",),
    ),
    (
        "EXC-01g-lupus-nephritis-diagnosis",
        {
            "lupus_nephritis_diagnosis_ever": True,
            "lupus_nephritis_diagnosis_source": "clinical",
        },
        "met",
        (),
    ),
    ("EXC-01g-lupus-nephritis-diagnosis", {}, "not_met", ()),
    (
        "EXC-01g-lupus-nephritis-diagnosis",
        {"lupus_nephritis_diagnosis_ever": None},
        "unknown",
        ("lupus_nephritis_diagnosis_ever",),
    ),
    (
        "EXC-01h-earlier-abnormal-urinalysis",
        exposed("abnormal_urinalysis", 900),
        "met",
        (),
    ),
    ("EXC-01h-earlier-abnormal-urinalysis", {}, "not_met", ()),
    (
        "EXC-01h-earlier-abnormal-urinalysis",
        {"abnormal_urinalysis_ever": None},
        "unknown",
        ("abnormal_urinalysis_ever",),
    ),
    # --- severe lupus, pregnancy ------------------------------------------------
    (
        "EXC-02a-neuropsychiatric-lupus",
        {"neuropsychiatric_lupus_active": True},
        "met",
        (),
    ),
    ("EXC-02a-neuropsychiatric-lupus", {}, "not_met", ()),
    (
        "EXC-02a-neuropsychiatric-lupus",
        {"neuropsychiatric_lupus_active": None},
        "unknown",
        ("neuropsychiatric_lupus_active",),
    ),
    ("EXC-02b-cardiac-lupus", {"cardiac_lupus_active": True}, "met", ()),
    ("EXC-02b-cardiac-lupus", {}, "not_met", ()),
    (
        "EXC-02b-cardiac-lupus",
        {"cardiac_lupus_active": None},
        "unknown",
        ("cardiac_lupus_active",),
    ),
    (
        "EXC-02c-other-severe-active-lupus",
        {"cardiac_lupus_active": True},
        "met",
        (),
    ),
    ("EXC-02c-other-severe-active-lupus", {}, "needs_judgment", ()),  # open list
    ("EXC-03-pregnancy-lactation", {"pregnant": True}, "met", ()),
    ("EXC-03-pregnancy-lactation", {"lactating": True}, "met", ()),
    ("EXC-03-pregnancy-lactation", {}, "not_met", ()),
    (
        "EXC-03-pregnancy-lactation",
        {"sex": "male", "pregnant": None, "lactating": None},
        "not_met",
        (),
    ),
    ("EXC-03-pregnancy-lactation", {"pregnant": None}, "unknown", ("pregnant",)),
    # --- previous treatment -----------------------------------------------------
    # default of the contradiction b-cell-history: both readings side by side
    (
        "EXC-04a-b-cell-therapy-ever",
        {**exposed("b_cell_therapy", 100), "b_cell_therapy_agent": "rituximab"},
        "met",
        (),
    ),
    (
        "EXC-04a-b-cell-therapy-ever",
        {**exposed("b_cell_therapy", 1096), "b_cell_therapy_agent": "rituximab"},
        "needs_judgment",
        (),
    ),
    ("EXC-04a-b-cell-therapy-ever", {}, "not_met", ()),
    (
        "EXC-04a-b-cell-therapy-ever",
        {"b_cell_therapy_ever": None},
        "unknown",
        ("b_cell_therapy_ever", "b_cell_therapy_agent"),  # the washout reading's
    ),
    # 6 calendar months before 2026-12-01 is 2026-06-01, 183 days; the readings
    # (6 months / 90 days) disagree in between
    ("EXC-04b-iv-cyclophosphamide-6m", exposed("iv_cyclophosphamide", 90), "met", ()),
    (
        "EXC-04b-iv-cyclophosphamide-6m",
        exposed("iv_cyclophosphamide", 183),
        "needs_judgment",
        (),
    ),
    (
        "EXC-04b-iv-cyclophosphamide-6m",
        exposed("iv_cyclophosphamide", 184),
        "not_met",
        (),
    ),
    ("EXC-04b-iv-cyclophosphamide-6m", {}, "not_met", ()),  # ever = false
    (
        "EXC-04b-iv-cyclophosphamide-6m",
        exposed("iv_cyclophosphamide", None),
        "unknown",
        ("iv_cyclophosphamide_last_date",),
    ),
    (
        "EXC-04b-iv-cyclophosphamide-6m",
        {"iv_cyclophosphamide_ever": None},
        "unknown",
        ("iv_cyclophosphamide_ever",),
    ),
    ("EXC-04c-ivig-3m", exposed("ivig", 91), "met", ()),
    ("EXC-04c-ivig-3m", exposed("ivig", 92), "not_met", ()),
    ("EXC-04c-ivig-3m", {"ivig_ever": None}, "unknown", ("ivig_ever",)),
    (
        "EXC-04d-prednisone-over-100mg-3m",
        exposed("prednisone_over_100mg", 91),
        "met",
        (),
    ),
    (
        "EXC-04d-prednisone-over-100mg-3m",
        exposed("prednisone_over_100mg", 92),
        "not_met",
        (),
    ),
    (
        "EXC-04d-prednisone-over-100mg-3m",
        exposed("prednisone_over_100mg", None),
        "unknown",
        ("prednisone_over_100mg_last_date",),
    ),
    # --- liver and kidney function ----------------------------------------------
    ("EXC-05a-alt-over-2x-uln", {"alt_u_l": 80.0}, "not_met", ()),  # exactly 2 × 40
    ("EXC-05a-alt-over-2x-uln", {"alt_u_l": 80.1}, "met", ()),
    ("EXC-05a-alt-over-2x-uln", {"alt_u_l": 70.0, "alt_uln_u_l": 35.0}, "not_met", ()),
    ("EXC-05a-alt-over-2x-uln", {"alt_u_l": 70.1, "alt_uln_u_l": 35.0}, "met", ()),
    ("EXC-05a-alt-over-2x-uln", {"alt_u_l": None}, "unknown", ("alt_u_l",)),
    ("EXC-05a-alt-over-2x-uln", {"alt_uln_u_l": None}, "unknown", ("alt_uln_u_l",)),
    ("EXC-05b-ast-over-2x-uln", {"ast_u_l": 80.0}, "not_met", ()),
    ("EXC-05b-ast-over-2x-uln", {"ast_u_l": 80.1}, "met", ()),
    ("EXC-05b-ast-over-2x-uln", {"ast_u_l": None}, "unknown", ("ast_u_l",)),
    ("EXC-05c-crcl-below-60", {**CG_MAN, "weight_kg": 43.2}, "not_met", ()),
    ("EXC-05c-crcl-below-60", {**CG_MAN, "weight_kg": 43.128}, "met", ()),
    ("EXC-05c-crcl-below-60", {"weight_kg": None}, "unknown", ("weight_kg",)),
    (
        "EXC-05c-crcl-below-60",
        {"creatinine_umol_l": None},
        "unknown",
        ("creatinine_umol_l",),
    ),
    (
        "EXC-05c-crcl-below-60",
        {"date_of_birth": None},
        "unknown",
        ("date_of_birth", "age_years"),
    ),
    # --- immunity ---------------------------------------------------------------
    ("EXC-06-primary-immunodeficiency", {"primary_immunodeficiency": True}, "met", ()),
    ("EXC-06-primary-immunodeficiency", {}, "not_met", ()),
    (
        "EXC-06-primary-immunodeficiency",
        {"primary_immunodeficiency": None},
        "unknown",
        ("primary_immunodeficiency",),
    ),
    ("EXC-07-igg-below-400mg-dl", {"igg_g_l": 4.0}, "not_met", ()),  # = 400 mg/dL
    ("EXC-07-igg-below-400mg-dl", {"igg_g_l": 3.99}, "met", ()),
    ("EXC-07-igg-below-400mg-dl", {"igg_g_l": None}, "unknown", ("igg_g_l",)),
    ("EXC-08-iga-below-10mg-dl", {"iga_g_l": 0.10}, "not_met", ()),  # = 10 mg/dL
    ("EXC-08-iga-below-10mg-dl", {"iga_g_l": 0.09}, "met", ()),
    ("EXC-08-iga-below-10mg-dl", {"iga_g_l": None}, "unknown", ("iga_g_l",)),
    # --- infection history ------------------------------------------------------
    (
        "EXC-09a-chronic-infection-therapy",
        {"chronic_infection_suppressive_therapy": True},
        "met",
        (),
    ),
    ("EXC-09a-chronic-infection-therapy", {}, "not_met", ()),
    (
        "EXC-09a-chronic-infection-therapy",
        {"chronic_infection_suppressive_therapy": None},
        "unknown",
        ("chronic_infection_suppressive_therapy",),
    ),
    (
        "EXC-09b-infection-hospitalisation-60d",
        exposed("infection_hospitalisation", 60),
        "met",
        (),
    ),
    (
        "EXC-09b-infection-hospitalisation-60d",
        exposed("infection_hospitalisation", 61),
        "not_met",
        (),
    ),
    (
        "EXC-09b-infection-hospitalisation-60d",
        {"infection_hospitalisation_ever": None},
        "unknown",
        ("infection_hospitalisation_ever",),
    ),
    (
        "EXC-09c-parenteral-antiinfective-60d",
        exposed("parenteral_antiinfective", 60),
        "met",
        (),
    ),
    (
        "EXC-09c-parenteral-antiinfective-60d",
        exposed("parenteral_antiinfective", 61),
        "not_met",
        (),
    ),
    (
        "EXC-09c-parenteral-antiinfective-60d",
        exposed("parenteral_antiinfective", None),
        "unknown",
        ("parenteral_antiinfective_last_date",),
    ),
    ("EXC-09d-hepatitis-b", {"hbsag_positive": True}, "met", ()),
    ("EXC-09d-hepatitis-b", {"hbcab_positive": True}, "met", ()),
    (
        "EXC-09d-hepatitis-b",
        {"hbsag_positive": None, "hbcab_positive": True},
        "met",
        (),
    ),
    ("EXC-09d-hepatitis-b", {}, "not_met", ()),
    ("EXC-09d-hepatitis-b", {"hbsag_positive": None}, "unknown", ("hbsag_positive",)),
    ("EXC-10-anaphylaxis", {"anaphylaxis_history": True}, "met", ()),
    ("EXC-10-anaphylaxis", {}, "not_met", ()),
    (
        "EXC-10-anaphylaxis",
        {"anaphylaxis_history": None},
        "unknown",
        ("anaphylaxis_history",),
    ),
    ("EXC-11-hiv", {"hiv_positive": True}, "met", ()),
    ("EXC-11-hiv", {}, "not_met", ()),
    ("EXC-11-hiv", {"hiv_positive": None}, "unknown", ("hiv_positive",)),
    ("EXC-12-other-lab-abnormality", {}, "needs_judgment", ()),
    ("EXC-13-intercurrent-illness", {}, "needs_judgment", ()),
    ("EXC-14-substance-abuse", {"substance_abuse_current": True}, "met", ()),
    ("EXC-14-substance-abuse", exposed("substance_abuse", 365), "met", ()),
    ("EXC-14-substance-abuse", exposed("substance_abuse", 366), "not_met", ()),
    ("EXC-14-substance-abuse", {}, "not_met", ()),
    (
        "EXC-14-substance-abuse",
        {"substance_abuse_current": None},
        "unknown",
        ("substance_abuse_current",),
    ),
    (
        "EXC-14-substance-abuse",
        {"substance_abuse_ever": None},
        "unknown",
        ("substance_abuse_ever",),
    ),
    # --- excluded concomitant medications ---------------------------------------
    (
        "EXC-15a-b-cell-washout",
        {**exposed("b_cell_therapy", 365), "b_cell_therapy_agent": "rituximab"},
        "met",
        (),
    ),
    (
        "EXC-15a-b-cell-washout",
        {**exposed("b_cell_therapy", 366), "b_cell_therapy_agent": "rituximab"},
        "not_met",
        (),
    ),
    # belimumab, half-life 19.4 d → 5 half-lives = 97 days
    (
        "EXC-15a-b-cell-washout",
        {
            **exposed("b_cell_therapy", 97),
            "b_cell_therapy_agent": "belimumab",
            "b_cell_therapy_half_life_days": 19.4,
        },
        "met",
        (),
    ),
    (
        "EXC-15a-b-cell-washout",
        {
            **exposed("b_cell_therapy", 98),
            "b_cell_therapy_agent": "belimumab",
            "b_cell_therapy_half_life_days": 19.4,
        },
        "not_met",
        (),
    ),
    (
        "EXC-15a-b-cell-washout",
        {**exposed("b_cell_therapy", 50), "b_cell_therapy_agent": "belimumab"},
        "unknown",
        ("b_cell_therapy_half_life_days",),
    ),
    ("EXC-15a-b-cell-washout", {}, "not_met", ()),
    (
        "EXC-15b-investigational-biologic-365d",
        exposed("investigational_biologic", 365),
        "met",
        (),
    ),
    (
        "EXC-15b-investigational-biologic-365d",
        exposed("investigational_biologic", 366),
        "not_met",
        (),
    ),
    (
        "EXC-15b-investigational-biologic-365d",
        {"investigational_biologic_ever": None},
        "unknown",
        ("investigational_biologic_ever",),
    ),
    ("EXC-15c-iv-cyclophosphamide-90d", exposed("iv_cyclophosphamide", 90), "met", ()),
    (
        "EXC-15c-iv-cyclophosphamide-90d",
        exposed("iv_cyclophosphamide", 91),
        "not_met",
        (),
    ),
    (
        "EXC-15d-cyclophosphamide-leukopenia",
        {**exposed("iv_cyclophosphamide", 60), "leukocytes_10e9_l": 1.99},
        "met",
        (),
    ),
    (  # ever / current course disagree on an old course
        "EXC-15d-cyclophosphamide-leukopenia",
        {**exposed("iv_cyclophosphamide", 400), "leukocytes_10e9_l": 1.99},
        "needs_judgment",
        (),
    ),
    (
        "EXC-15d-cyclophosphamide-leukopenia",
        {**exposed("iv_cyclophosphamide", 400), "leukocytes_10e9_l": 2.0},
        "not_met",
        (),
    ),
    ("EXC-15d-cyclophosphamide-leukopenia", {"leukocytes_10e9_l": 1.0}, "not_met", ()),
    (
        "EXC-15d-cyclophosphamide-leukopenia",
        {**exposed("iv_cyclophosphamide", 400), "leukocytes_10e9_l": None},
        "unknown",
        ("leukocytes_10e9_l",),
    ),
    # non-biologic: max(30 days, 5 half-lives)
    (
        "EXC-15e-investigational-nonbiologic-washout",
        exposed("investigational_nonbiologic", 30),
        "met",
        (),
    ),
    (
        "EXC-15e-investigational-nonbiologic-washout",
        exposed("investigational_nonbiologic", 31),
        "unknown",
        ("investigational_nonbiologic_half_life_days",),
    ),
    (
        "EXC-15e-investigational-nonbiologic-washout",
        {
            **exposed("investigational_nonbiologic", 31),
            "investigational_nonbiologic_half_life_days": 2.0,
        },
        "not_met",
        (),
    ),
    (
        "EXC-15e-investigational-nonbiologic-washout",
        {
            **exposed("investigational_nonbiologic", 50),
            "investigational_nonbiologic_half_life_days": 10.0,
        },
        "met",
        (),
    ),
    (
        "EXC-15e-investigational-nonbiologic-washout",
        {
            **exposed("investigational_nonbiologic", 51),
            "investigational_nonbiologic_half_life_days": 10.0,
        },
        "not_met",
        (),
    ),
    ("EXC-15f-live-vaccine-30d", exposed("live_vaccine", 30), "met", ()),
    ("EXC-15f-live-vaccine-30d", exposed("live_vaccine", 31), "not_met", ()),
    ("EXC-15f-live-vaccine-30d", exposed("live_vaccine", 0), "met", ()),
    (
        "EXC-15f-live-vaccine-30d",
        {"live_vaccine_ever": None},
        "unknown",
        ("live_vaccine_ever",),
    ),
]


@pytest.mark.parametrize(
    ("criterion_id", "overrides", "expected", "missing"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_truth_table(verdict_of, criterion_id, overrides, expected, missing) -> None:
    v = verdict_of(criterion_id, **overrides)
    assert v.verdict == expected, v.reason
    assert v.missing == missing
    assert v.reason


@pytest.mark.parametrize(("risk", "expected"), [(0.5, "not_met"), (0.51, "met")])
def test_risk_gate_criterion(verdict_of, risk, expected) -> None:
    assert verdict_of("INC-03-risk-gate", risk=risk).verdict == expected


def test_every_criterion_has_rows_for_each_verdict_it_can_take(criteria) -> None:
    covered: dict[str, set[str]] = {}
    for cid, _, expected, _ in CASES:
        covered.setdefault(cid, set()).add(expected)
    covered["INC-03-risk-gate"] = {"met", "not_met"}
    for c in criteria.criteria:
        assert c.id in covered, f"{c.id} has no truth-table rows"
        if "needs_judgment" not in covered[c.id]:
            assert {"met", "not_met"} <= covered[c.id], c.id


def test_eligible_patient_meets_every_inclusion_and_no_exclusion(
    criteria, verdict_of
) -> None:
    for c in criteria.criteria:
        v = verdict_of(c.id)
        if v.verdict == "needs_judgment":
            continue
        assert v.verdict == ("met" if c.kind == "inclusion" else "not_met"), v.reason


def test_reason_and_evidence_are_readable(verdict_of) -> None:
    v = verdict_of("EXC-15f-live-vaccine-30d", **exposed("live_vaccine", 12))
    assert v.reason == (
        "excluded: last live_vaccine 12 days before screening (within 30 days, "
        "inclusive)"
    )
    assert v.evidence["live_vaccine_last_date"] == ago(12)
    v = verdict_of("EXC-05c-crcl-below-60", **CG_MAN, weight_kg=43.128)
    assert v.evidence["crcl_cockcroft_gault_ml_min"] == 59.9
    assert "59.9 < 60" in v.reason
