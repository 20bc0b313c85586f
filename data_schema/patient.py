"""The patient record: every field the model and the trial criteria use, defined once.

Each field carries its unit (in the name where a wrong unit could harm a patient, and
always in ``json_schema_extra["unit"]``), a physiological range and a description.
Training, eligibility and serving all import this module; nobody redeclares a field.

Conventions
-----------
* Missing is a real state: almost every field is optional and ``None`` means "not
  recorded". Downstream code must treat ``None`` as *unknown*, never as *normal*.
* Values are validated strictly: ``"12"`` is not a number and ``1`` is not ``True``.
  Out-of-range, wrongly typed and unknown fields are rejected with the field's name.
* Exposure history uses a pair of fields: ``<exposure>_ever`` (was it ever given /
  did it ever happen) and ``<exposure>_last_date`` (the most recent date).
  ``ever=False`` is a recorded negative; ``ever=None`` is unknown.
* Concentrations use the units of Chinese and European routine labs (g/L, µmol/L,
  10⁹/L). The trial's criteria quote mg/dL; the eligibility engine converts
  explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

# Strict scalars: no silent string->number or int->bool coercion.
StrictFloat = Annotated[float, Strict()]
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]

Sex = Literal["female", "male"]
Immunosuppressant = Literal[
    "azathioprine",
    "mycophenolate",
    "methotrexate",
    "ciclosporin",
    "tacrolimus",
    "leflunomide",
    "other",
]
BCellAgent = Literal["rituximab", "belimumab", "telitacicept", "obinutuzumab", "other"]
DiagnosisSource = Literal[
    "kidney_biopsy", "clinical", "coded_diagnosis", "patient_reported"
]

# Field roles, recorded in json_schema_extra["role"]:
#   "predictor"  - an input of the 2-year LN risk model (clinical.md §8.3)
#   "criterion"  - a fact only the trial's criteria need
#   "identifier" - never used for prediction, never logged
PREDICTOR = "predictor"
CRITERION = "criterion"
IDENTIFIER = "identifier"


def _num(
    description: str,
    unit: str,
    ge: float,
    le: float,
    role: str = PREDICTOR,
) -> Any:
    """An optional numeric field with unit, physiological range and role."""
    return Field(
        default=None,
        # Finite bounds already reject NaN and ±inf (tested); allow_inf_nan=False
        # would add a Python-level check to every number of every record.
        ge=ge,
        le=le,
        description=f"{description} Unit: {unit}. Valid range {ge:g}–{le:g}.",
        json_schema_extra={"unit": unit, "role": role},
    )


def _flag(description: str, role: str = PREDICTOR) -> Any:
    """An optional yes/no field; ``None`` means not recorded."""
    return Field(
        default=None,
        description=f"{description} true/false; null if not recorded.",
        json_schema_extra={"unit": "boolean", "role": role},
    )


def _no_number(value: Any) -> Any:
    """Refuse a number where a date is expected: pydantic would read 0 as
    1970-01-01 (Unix time), a silent guess about what the sender meant."""
    if isinstance(value, int | float):  # bool is an int too
        raise ValueError("expected a date as YYYY-MM-DD, not a number")
    return value


#: A calendar date: an ISO 8601 string (YYYY-MM-DD) or a date, never a number.
Day = Annotated[date, BeforeValidator(_no_number)]


def _day(description: str, role: str = CRITERION) -> Any:
    """An optional calendar date (ISO 8601, YYYY-MM-DD)."""
    return Field(
        default=None,
        description=f"{description} ISO date YYYY-MM-DD; null if not recorded.",
        json_schema_extra={"unit": "date", "role": role},
    )


class PatientRecord(BaseModel):
    """One adult with SLE at the time of screening for NCT05585671.

    A record holds the predictors of the 2-year new-onset lupus nephritis risk model
    and every fact the trial's inclusion and exclusion criteria need. All laboratory
    values are the most recent ones before the screening date.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=64)

    # --- identity and demographics -------------------------------------------------
    patient_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]+$",
        description="Pseudonymous study identifier (letters, digits, . _ -). Never "
        "used for prediction and never written to logs.",
        json_schema_extra={"unit": "text", "role": IDENTIFIER},
    )
    sex: Sex = Field(
        description="Sex recorded at birth: 'female' or 'male'. Used by the model and "
        "by the Cockcroft–Gault formula (×0.85 for women).",
        json_schema_extra={"unit": "category", "role": PREDICTOR},
    )
    age_years: StrictFloat | None = _num(
        "Age at the date of the record. Give this or date_of_birth.", "years", 0, 120
    )
    date_of_birth: Day | None = _day(
        "Date of birth; the eligibility engine derives age at screening from it."
    )
    disease_duration_years: StrictFloat | None = _num(
        "Time since SLE diagnosis.", "years", 0, 90
    )
    weight_kg: StrictFloat | None = _num("Body weight.", "kg", 20, 300)
    height_cm: StrictFloat | None = _num("Body height.", "cm", 100, 230)

    # --- 1997 revised ACR classification criteria (Hochberg 1997), items 1-11 --------
    acr_malar_rash: StrictBool | None = _flag("ACR 1997 item 1: malar rash.")
    acr_discoid_rash: StrictBool | None = _flag("ACR 1997 item 2: discoid rash.")
    acr_photosensitivity: StrictBool | None = _flag(
        "ACR 1997 item 3: photosensitivity."
    )
    acr_oral_ulcers: StrictBool | None = _flag("ACR 1997 item 4: oral ulcers.")
    acr_arthritis: StrictBool | None = _flag(
        "ACR 1997 item 5: non-erosive arthritis of ≥ 2 peripheral joints."
    )
    acr_serositis: StrictBool | None = _flag(
        "ACR 1997 item 6: serositis (pleuritis or pericarditis)."
    )
    acr_renal_disorder: StrictBool | None = _flag(
        "ACR 1997 item 7: persistent proteinuria > 0.5 g/day or cellular casts.",
        CRITERION,
    )
    acr_neurologic_disorder: StrictBool | None = _flag(
        "ACR 1997 item 8: seizures or psychosis.", CRITERION
    )
    acr_hematologic_disorder: StrictBool | None = _flag(
        "ACR 1997 item 9: haemolytic anaemia, leukopenia, lymphopenia or "
        "thrombocytopenia.",
        CRITERION,
    )
    acr_immunologic_disorder: StrictBool | None = _flag(
        "ACR 1997 item 10: anti-DNA, anti-Sm or antiphospholipid antibodies.",
        CRITERION,
    )
    acr_antinuclear_antibody: StrictBool | None = _flag(
        "ACR 1997 item 11: positive antinuclear antibody.", CRITERION
    )
    alopecia: StrictBool | None = _flag("Non-scarring alopecia (not an ACR item).")
    hypertension: StrictBool | None = _flag("Diagnosed arterial hypertension.")

    # --- serology --------------------------------------------------------------------
    anti_dsdna_iu_ml: StrictFloat | None = _num(
        "Anti-double-stranded DNA antibody titre (ELISA scale; positive ≥ 100).",
        "IU/mL",
        0,
        100_000,
    )
    c3_g_l: StrictFloat | None = _num("Complement C3.", "g/L", 0.05, 4.0)
    c4_g_l: StrictFloat | None = _num("Complement C4.", "g/L", 0.005, 1.5)
    anti_c1q_positive: StrictBool | None = _flag("Anti-C1q antibody positive.")
    anti_sm_positive: StrictBool | None = _flag("Anti-Smith antibody positive.")
    anti_nucleosome_positive: StrictBool | None = _flag(
        "Anti-nucleosome antibody positive."
    )
    anti_rnp_positive: StrictBool | None = _flag("Anti-U1-RNP antibody positive.")
    anti_ssa_positive: StrictBool | None = _flag("Anti-SSA/Ro antibody positive.")
    antiphospholipid_positive: StrictBool | None = _flag(
        "Any antiphospholipid antibody (aCL, anti-β2GPI or lupus anticoagulant) "
        "positive."
    )
    sledai2k_nonrenal: StrictInt | None = _num(
        "SLEDAI-2K score excluding its four renal items.", "points", 0, 89
    )

    # --- haematology and chemistry (with the lab's upper normal limits) --------------
    leukocytes_10e9_l: StrictFloat | None = _num(
        "White blood cell count (2.0 × 10⁹/L = 2000/mm³).", "10⁹/L", 0, 100
    )
    leukocytes_uln_10e9_l: StrictFloat | None = _num(
        "Laboratory upper normal limit for the white cell count.",
        "10⁹/L",
        3,
        20,
        CRITERION,
    )
    lymphocytes_10e9_l: StrictFloat | None = _num("Lymphocyte count.", "10⁹/L", 0, 50)
    hemoglobin_g_l: StrictFloat | None = _num("Haemoglobin.", "g/L", 30, 220)
    platelets_10e9_l: StrictFloat | None = _num("Platelet count.", "10⁹/L", 1, 1500)
    albumin_g_l: StrictFloat | None = _num("Serum albumin.", "g/L", 10, 60)
    esr_mm_h: StrictFloat | None = _num(
        "Erythrocyte sedimentation rate.", "mm/h", 0, 150
    )
    crp_mg_l: StrictFloat | None = _num("C-reactive protein.", "mg/L", 0, 500)
    igg_g_l: StrictFloat | None = _num("Serum IgG (4.0 g/L = 400 mg/dL).", "g/L", 0, 60)
    igg_uln_g_l: StrictFloat | None = _num(
        "Laboratory upper normal limit for IgG.", "g/L", 5, 30, CRITERION
    )
    iga_g_l: StrictFloat | None = _num("Serum IgA (0.10 g/L = 10 mg/dL).", "g/L", 0, 20)
    iga_uln_g_l: StrictFloat | None = _num(
        "Laboratory upper normal limit for IgA.", "g/L", 1, 10, CRITERION
    )
    alt_u_l: StrictFloat | None = _num("Alanine aminotransferase.", "U/L", 0, 5000)
    alt_uln_u_l: StrictFloat | None = _num(
        "Laboratory upper normal limit for ALT (Chinese routine labs: 40).",
        "U/L",
        10,
        100,
        CRITERION,
    )
    ast_u_l: StrictFloat | None = _num("Aspartate aminotransferase.", "U/L", 0, 5000)
    ast_uln_u_l: StrictFloat | None = _num(
        "Laboratory upper normal limit for AST (Chinese routine labs: 40).",
        "U/L",
        10,
        100,
        CRITERION,
    )
    creatinine_umol_l: StrictFloat | None = _num(
        "Serum creatinine (88.4 µmol/L = 1 mg/dL).", "µmol/L", 10, 2000
    )
    creatinine_uln_umol_l: StrictFloat | None = _num(
        "Laboratory upper normal limit for serum creatinine.",
        "µmol/L",
        40,
        200,
        CRITERION,
    )

    # --- kidney history and urine -----------------------------------------------------
    kidney_biopsy_confirmed: StrictBool | None = _flag(
        "A kidney biopsy has ever confirmed lupus nephritis.", CRITERION
    )
    lupus_nephritis_diagnosis_ever: StrictBool | None = _flag(
        "Lupus nephritis has ever been diagnosed (by biopsy, clinically, or as a "
        "coded diagnosis such as ICD-10-CM M32.14).",
        CRITERION,
    )
    lupus_nephritis_diagnosis_date: Day | None = _day(
        "Date lupus nephritis was first diagnosed."
    )
    lupus_nephritis_diagnosis_source: DiagnosisSource | None = Field(
        default=None,
        description="What the lupus nephritis diagnosis rests on.",
        json_schema_extra={"unit": "category", "role": CRITERION},
    )
    abnormal_urinalysis_ever: StrictBool | None = _flag(
        "An earlier urinalysis ever showed kidney involvement: proteinuria "
        "> 0.5 g/day, > 5 RBC or WBC/hpf without menses or infection, or cellular "
        "casts.",
        CRITERION,
    )
    abnormal_urinalysis_last_date: Day | None = _day(
        "Most recent earlier urinalysis showing kidney involvement."
    )
    urine_protein_g_24h: StrictFloat | None = _num(
        "24-hour urine protein.", "g/24 h", 0, 30
    )
    urine_rbc_per_hpf: StrictInt | None = _num(
        "Urine red blood cells per high-power field.", "cells/hpf", 0, 1000
    )
    urine_rbc_with_menses_or_infection: StrictBool | None = _flag(
        "The urine RBC count was taken during menses or a urinary infection.",
        CRITERION,
    )
    urine_wbc_per_hpf: StrictInt | None = _num(
        "Urine white blood cells per high-power field.", "cells/hpf", 0, 1000
    )
    urine_wbc_with_infection: StrictBool | None = _flag(
        "The urine WBC count was taken during a urinary infection.", CRITERION
    )
    urine_cellular_casts: StrictBool | None = _flag(
        "RBC or WBC cellular casts seen in urine sediment.", CRITERION
    )

    # --- severe organ involvement, pregnancy, other conditions -----------------------
    neuropsychiatric_lupus_active: StrictBool | None = _flag(
        "Severe active neuropsychiatric lupus.", CRITERION
    )
    cardiac_lupus_active: StrictBool | None = _flag(
        "Severe active cardiac lupus involvement.", CRITERION
    )
    pregnant: StrictBool | None = _flag("Currently pregnant.", CRITERION)
    lactating: StrictBool | None = _flag("Currently breastfeeding.", CRITERION)
    primary_immunodeficiency: StrictBool | None = _flag(
        "History of a primary immunodeficiency.", CRITERION
    )
    anaphylaxis_history: StrictBool | None = _flag(
        "History of anaphylaxis to parenteral contrast agents, human or murine "
        "proteins or monoclonal antibodies.",
        CRITERION,
    )
    substance_abuse_current: StrictBool | None = _flag(
        "Current drug or alcohol abuse or dependence.", CRITERION
    )
    substance_abuse_ever: StrictBool | None = _flag(
        "Any history of drug or alcohol abuse or dependence.", CRITERION
    )
    substance_abuse_last_date: Day | None = _day(
        "Most recent date of drug or alcohol abuse or dependence."
    )

    # --- infection history and serology -----------------------------------------------
    chronic_infection_suppressive_therapy: StrictBool | None = _flag(
        "Currently on suppressive therapy for a chronic infection (e.g. tuberculosis, "
        "pneumocystis, CMV, HSV, herpes zoster, atypical mycobacteria).",
        CRITERION,
    )
    infection_hospitalisation_ever: StrictBool | None = _flag(
        "Ever hospitalised for the treatment of an infection.", CRITERION
    )
    infection_hospitalisation_last_date: Day | None = _day(
        "Most recent hospitalisation for the treatment of an infection."
    )
    parenteral_antiinfective_ever: StrictBool | None = _flag(
        "Ever received IV or IM antibacterial, antiviral, antifungal or "
        "antiparasitic agents.",
        CRITERION,
    )
    parenteral_antiinfective_last_date: Day | None = _day(
        "Most recent IV or IM anti-infective dose."
    )
    hbsag_positive: StrictBool | None = _flag(
        "Hepatitis B surface antigen positive.", CRITERION
    )
    hbcab_positive: StrictBool | None = _flag(
        "Hepatitis B core antibody positive.", CRITERION
    )
    hiv_positive: StrictBool | None = _flag(
        "Historically positive HIV test or positive at screening.", CRITERION
    )

    # --- current standard of care -----------------------------------------------------
    hydroxychloroquine_current: StrictBool | None = _flag(
        "Currently taking hydroxychloroquine."
    )
    hydroxychloroquine_mg_day: StrictFloat | None = _num(
        "Current hydroxychloroquine dose.", "mg/day", 0, 800, CRITERION
    )
    prednisone_mg_day: StrictFloat | None = _num(
        "Current prednisone (or equivalent) dose.", "mg/day", 0, 1000
    )
    immunosuppressant_current: StrictBool | None = _flag(
        "Currently taking an immunosuppressant (azathioprine, mycophenolate, "
        "methotrexate, ciclosporin, tacrolimus, leflunomide)."
    )
    immunosuppressant_name: Immunosuppressant | None = Field(
        default=None,
        description="The current immunosuppressant, if any.",
        json_schema_extra={"unit": "category", "role": CRITERION},
    )
    soc_regimen_stable_since: Day | None = _day(
        "First day of the current standard-of-care regimen at unchanged doses "
        "(prednisone, hydroxychloroquine, immunosuppressant)."
    )
    prednisone_dose_unchanged_since: Day | None = _day(
        "First day of the current prednisone dose: the start, or the last dose change."
    )
    hydroxychloroquine_dose_unchanged_since: Day | None = _day(
        "First day of the current hydroxychloroquine dose: the start, or the last "
        "dose change."
    )
    immunosuppressant_dose_unchanged_since: Day | None = _day(
        "First day of the current immunosuppressant dose: the start, or the last "
        "dose change."
    )

    # --- medication history with last-dose dates ------------------------------------
    prednisone_over_100mg_ever: StrictBool | None = _flag(
        "Ever received prednisone > 100 mg/day.", CRITERION
    )
    prednisone_over_100mg_last_date: Day | None = _day(
        "Most recent day on prednisone > 100 mg/day."
    )
    b_cell_therapy_ever: StrictBool | None = _flag(
        "Ever received a B-lymphocyte-targeted drug (rituximab, belimumab, ...).",
        CRITERION,
    )
    b_cell_therapy_agent: BCellAgent | None = Field(
        default=None,
        description="The most recent B-cell-targeted drug.",
        json_schema_extra={"unit": "category", "role": CRITERION},
    )
    b_cell_therapy_last_date: Day | None = _day(
        "Most recent dose of a B-cell-targeted drug."
    )
    b_cell_therapy_half_life_days: StrictFloat | None = _num(
        "Terminal half-life of that drug, for the 5-half-life wash-out.",
        "days",
        0.1,
        365,
        CRITERION,
    )
    iv_cyclophosphamide_ever: StrictBool | None = _flag(
        "Ever received intravenous cyclophosphamide.", CRITERION
    )
    iv_cyclophosphamide_last_date: Day | None = _day(
        "Most recent intravenous cyclophosphamide dose."
    )
    ivig_ever: StrictBool | None = _flag(
        "Ever received intravenous immunoglobulin.", CRITERION
    )
    ivig_last_date: Day | None = _day("Most recent IVIG dose.")
    investigational_biologic_ever: StrictBool | None = _flag(
        "Ever received a biologic investigational agent (e.g. abetimus, anti-CD40L).",
        CRITERION,
    )
    investigational_biologic_last_date: Day | None = _day(
        "Most recent dose of a biologic investigational agent."
    )
    investigational_nonbiologic_ever: StrictBool | None = _flag(
        "Ever received a non-biologic investigational agent.", CRITERION
    )
    investigational_nonbiologic_last_date: Day | None = _day(
        "Most recent dose of a non-biologic investigational agent."
    )
    investigational_nonbiologic_half_life_days: StrictFloat | None = _num(
        "Half-life of that agent, for the 5-half-life wash-out.",
        "days",
        0.01,
        365,
        CRITERION,
    )
    live_vaccine_ever: StrictBool | None = _flag(
        "Ever received a live vaccine.", CRITERION
    )
    live_vaccine_last_date: Day | None = _day("Most recent live vaccine.")

    # --- what only the screening visit settles ---------------------------------------
    consent_signed: StrictBool | None = _flag(
        "Written informed consent signed (false = declined).", CRITERION
    )
    contraception_agreed: StrictBool | None = _flag(
        "Agrees to use contraception during the study (false = declined).", CRITERION
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> PatientRecord:
        """Reject records whose fields contradict each other."""
        values = self.__dict__  # runs for every record of a batch: plain lookups
        problems = consistency_problems(
            {name: (values[name],) for name in CONSISTENCY_FIELDS}
        )
        if problems:
            raise ValueError(problems[0][1])
        return self


# Exposure pairs that follow the <stem>_ever / <stem>_last_date convention.
_EXPOSURE_STEMS: tuple[str, ...] = (
    "abnormal_urinalysis",
    "substance_abuse",
    "infection_hospitalisation",
    "parenteral_antiinfective",
    "prednisone_over_100mg",
    "b_cell_therapy",
    "iv_cyclophosphamide",
    "ivig",
    "investigational_biologic",
    "investigational_nonbiologic",
    "live_vaccine",
)
EXPOSURE_STEMS = _EXPOSURE_STEMS

#: (flag, detail): the detail may be recorded only when the flag is not false.
_DETAIL_OF_FLAG: tuple[tuple[str, str], ...] = (
    *((f"{s}_ever", f"{s}_last_date") for s in _EXPOSURE_STEMS),
    ("lupus_nephritis_diagnosis_ever", "lupus_nephritis_diagnosis_date"),
    ("lupus_nephritis_diagnosis_ever", "lupus_nephritis_diagnosis_source"),
    ("hydroxychloroquine_current", "hydroxychloroquine_dose_unchanged_since"),
    ("immunosuppressant_current", "immunosuppressant_dose_unchanged_since"),
)


#: The fields the cross-field rules read.
CONSISTENCY_FIELDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            "date_of_birth",
            "age_years",
            "disease_duration_years",
            *(name for pair in _DETAIL_OF_FLAG for name in pair),
        )
    )
)


def consistency_problems(
    columns: Mapping[str, Sequence[Any]],
) -> list[tuple[int, str]]:
    """Contradictions between fields, as (row, message), sorted by row.

    The one definition of the cross-field rules: a record checks itself as a
    one-row table, and a batch sent as columns (:mod:`data_schema.columns`) is
    checked column by column without building a record per patient.

    Args:
        columns: at least the :data:`CONSISTENCY_FIELDS`, each a sequence of values
            (one per patient, None = missing).
    """
    # Each rule first asks a C-level question (is anything recorded? is any flag
    # false?) so that a single record, checked on every request, pays ~2 µs.
    problems: list[tuple[int, str]] = []
    born = columns["date_of_birth"]
    if born.count(None) < len(born):
        today = date.today()
        for i, b in enumerate(born):
            if b is not None and b > today:
                problems.append((i, "date_of_birth: must not be in the future"))
    durations = columns["disease_duration_years"]
    if durations.count(None) < len(durations):
        ages = columns["age_years"]
        for i, (age, duration) in enumerate(zip(ages, durations, strict=True)):
            if age is not None and duration is not None and duration > age:
                problems.append(
                    (
                        i,
                        "disease_duration_years: must not exceed age_years "
                        f"({duration} > {age})",
                    )
                )
    for flag, detail in _DETAIL_OF_FLAG:
        flags, details = columns[flag], columns[detail]
        # flags are True/False/None (strict booleans)
        if details.count(None) == len(details) or False not in flags:
            continue
        for i, (f, d) in enumerate(zip(flags, details, strict=True)):
            if f is False and d is not None:
                problems.append((i, f"{detail}: given although {flag} is false"))
    problems.sort(key=lambda p: p[0])
    return problems
