"""PatientRecord: one definition, strict validation, messages that name the field."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from data_schema import PatientRecord, field_specs, model_features

VALID = {
    "patient_id": "P-001",
    "sex": "female",
    "age_years": 29.0,
    "anti_dsdna_iu_ml": 320.0,
    "c3_g_l": 0.62,
    "urine_rbc_per_hpf": 2,
    "hydroxychloroquine_current": True,
}


def _error_fields(exc: ValidationError) -> set[str]:
    return {str(e["loc"][0]) for e in exc.errors() if e["loc"]}


def test_valid_record_keeps_missing_as_none() -> None:
    rec = PatientRecord(**VALID)
    assert rec.c4_g_l is None  # not recorded stays unknown, never "normal"
    assert rec.urine_rbc_per_hpf == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("c3_g_l", 9.0),
        ("c3_g_l", -0.1),
        ("age_years", 130.0),
        ("urine_protein_g_24h", 31.0),
        ("alt_u_l", float("nan")),
        ("weight_kg", float("inf")),
    ],
)
def test_out_of_range_is_rejected_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as info:
        PatientRecord(**{**VALID, field: value})
    assert _error_fields(info.value) == {field}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("c3_g_l", "0.6"),  # a string is not a number
        ("pregnant", 1),  # 1 is not True
        ("pregnant", "yes"),
        ("age_years", True),  # a boolean is not an age
        ("urine_rbc_per_hpf", 2.5),  # a count is a whole number
        ("sex", "F"),  # categories are spelled out
        ("soc_regimen_stable_since", "last spring"),
        ("date_of_birth", 0),  # not Unix time: 1970-01-01 would be a guess
        ("live_vaccine_last_date", 1_700_000_000),
        ("lupus_nephritis_diagnosis_date", 20240101),
    ],
)
def test_wrong_type_is_rejected_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        PatientRecord(**{**VALID, field: value})
    assert _error_fields(info.value) == {field}


def test_unknown_field_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError) as info:
        PatientRecord(**{**VALID, "c3_mg_dl": 62})
    assert _error_fields(info.value) == {"c3_mg_dl"}
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_sex_is_required() -> None:
    data = {k: v for k, v in VALID.items() if k != "sex"}
    with pytest.raises(ValidationError) as info:
        PatientRecord(**data)
    assert _error_fields(info.value) == {"sex"}


def test_contradictions_are_rejected_with_the_field_in_the_message() -> None:
    with pytest.raises(ValidationError, match="disease_duration_years"):
        PatientRecord(**{**VALID, "disease_duration_years": 40.0})
    with pytest.raises(ValidationError, match="ivig_last_date"):
        PatientRecord(**VALID, ivig_ever=False, ivig_last_date=date(2026, 1, 1))


def test_every_field_has_unit_description_and_numeric_range() -> None:
    for name, spec in field_specs().items():
        assert spec.unit, f"{name} has no unit"
        assert len(spec.description) > 10, f"{name} has no description"
        if spec.kind in ("float", "int"):
            assert spec.ge is not None and spec.le is not None, f"{name} has no range"
            assert spec.ge < spec.le


def test_model_features_cover_the_dgp_predictors() -> None:
    # clinical.md §8.4 outcome-model terms must all be inputs of the model.
    needed = {
        "male", "age_years", "disease_duration_years", "anti_dsdna_iu_ml", "c3_g_l",
        "c4_g_l", "anti_c1q_positive", "anti_sm_positive", "antiphospholipid_positive",
        "anti_ssa_positive", "sledai2k_nonrenal", "lymphocytes_10e9_l", "hypertension",
        "acr_serositis", "acr_discoid_rash", "acr_photosensitivity",
        "hydroxychloroquine_current", "albumin_g_l", "urine_protein_g_24h",
    }  # fmt: skip
    assert needed <= set(model_features())
    # Identifiers and trial-only facts are never model inputs.
    assert "patient_id" not in model_features()
    assert "pregnant" not in model_features()


def test_trial_facts_are_in_the_record() -> None:
    # NCT05585671 needs these facts; each must have exactly one definition.
    for name in (
        "date_of_birth", "kidney_biopsy_confirmed", "urine_cellular_casts",
        "neuropsychiatric_lupus_active", "cardiac_lupus_active", "pregnant",
        "lactating", "b_cell_therapy_last_date", "iv_cyclophosphamide_last_date",
        "ivig_last_date", "prednisone_over_100mg_last_date", "alt_uln_u_l",
        "ast_uln_u_l", "igg_g_l", "iga_g_l", "creatinine_umol_l", "weight_kg",
        "hbsag_positive", "hbcab_positive", "hiv_positive", "anaphylaxis_history",
        "substance_abuse_last_date", "live_vaccine_last_date",
        "investigational_biologic_last_date", "soc_regimen_stable_since",
        "infection_hospitalisation_last_date", "parenteral_antiinfective_last_date",
        "chronic_infection_suppressive_therapy", "primary_immunodeficiency",
        "leukocytes_10e9_l", "consent_signed", "contraception_agreed",
    ):  # fmt: skip
        assert name in field_specs(), name


def test_json_round_trip() -> None:
    rec = PatientRecord(**VALID, soc_regimen_stable_since=date(2026, 9, 1))
    again = PatientRecord.model_validate_json(rec.model_dump_json())
    assert again == rec
