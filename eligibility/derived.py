"""Derived clinical variables: code, pinned to their published sources.

Criteria files name these variables (``derived: crcl_cockcroft_gault_ml_min``); the
formulas live here, with the citation in each docstring and worked examples from the
literature as known-value tests in ``tests/eligibility/test_derived.py``.

Each variable is computed once, column-wise, on a :class:`~eligibility.table.Table`
(one patient is a table of one row) and returns an :class:`Interval`: per patient the
range of values still possible (``lo == hi`` when fully known, NaN when it cannot be
computed), the fields whose absence leaves it open, and the evidence of one row for
a coordinator. Missing inputs never become a number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, NamedTuple

import numpy as np

from data_schema import PatientRecord
from eligibility.calendar import calendar_age_years
from eligibility.table import BoolArray, FloatArray, Table

UMOL_L_PER_MG_DL_CREATININE = 88.4
"""Serum creatinine: 1 mg/dL = 88.4 µmol/L (clinical.md §6)."""

# Unit conversions of the trial's thresholds into the record's units (clinical.md §6).
IGG_400_MG_DL_IN_G_L = 400 / 100  # 1 g/L = 100 mg/dL → 400 mg/dL = 4.0 g/L
IGA_10_MG_DL_IN_G_L = 10 / 100  # 10 mg/dL = 0.10 g/L
LEUKOCYTES_2000_PER_MM3_IN_10E9_L = 2000 * 1e6 / 1e9  # 1 mm³ = 1 µL = 1e-6 L → 2.0

ACR1997_ITEMS: tuple[str, ...] = (
    "acr_malar_rash",
    "acr_discoid_rash",
    "acr_photosensitivity",
    "acr_oral_ulcers",
    "acr_arthritis",
    "acr_serositis",
    "acr_renal_disorder",
    "acr_neurologic_disorder",
    "acr_hematologic_disorder",
    "acr_immunologic_disorder",
    "acr_antinuclear_antibody",
)
"""The 11 items of the 1997 revised ACR criteria, in Hochberg's order."""


class Interval(NamedTuple):
    """A derived variable of every patient of a table.

    Attributes:
        lo: smallest value still possible (NaN: cannot be computed).
        hi: largest value still possible (NaN: cannot be computed).
        missing: field → rows where its absence leaves the value open, in the
            order the fields are reported.
        evidence: the inputs and intermediate values of one row.
    """

    lo: FloatArray
    hi: FloatArray
    missing: dict[str, BoolArray]
    evidence: Callable[[int], dict[str, Any]]


# --- formulas on plain numbers (tested against worked examples) -----------------------
def cockcroft_gault_ml_min(
    age_years: Any, weight_kg: Any, creatinine_umol_l: Any, female: Any
) -> Any:
    """Creatinine clearance by Cockcroft–Gault, in mL/min (not BSA-normalised).

    ``CrCl = (140 − age) × weight / (72 × SCr[mg/dL]) × 0.85 if female``, with
    SCr[mg/dL] = SCr[µmol/L] / 88.4. Actual body weight is used. Numbers or numpy
    arrays (element-wise).

    Source: Cockcroft DW, Gault MH. Prediction of creatinine clearance from serum
    creatinine. Nephron 1976;16(1):31–41. Conversion 1 mg/dL = 88.4 µmol/L
    (clinical.md §6).

    Args:
        age_years: age in years.
        weight_kg: actual body weight in kg.
        creatinine_umol_l: serum creatinine in µmol/L.
        female: apply the 0.85 factor for women.

    Returns:
        Creatinine clearance in mL/min.
    """
    scr_mg_dl = np.divide(creatinine_umol_l, UMOL_L_PER_MG_DL_CREATININE)
    crcl = np.subtract(140.0, age_years) * weight_kg / (72.0 * scr_mg_dl)
    return (
        np.where(female, crcl * 0.85, crcl)
        if np.ndim(crcl)
        else (crcl * 0.85 if female else crcl)
    )


def ckd_epi_2021_ml_min_173m2(
    age_years: float, creatinine_umol_l: float, female: bool
) -> float:
    """eGFR by the race-free CKD-EPI 2021 creatinine equation, mL/min/1.73 m².

    ``142 × min(SCr/κ, 1)^α × max(SCr/κ, 1)^−1.200 × 0.9938^age × 1.012 [female]``,
    SCr in mg/dL, κ = 0.7 (F) / 0.9 (M), α = −0.241 (F) / −0.302 (M).

    Source: Inker LA et al. New creatinine- and cystatin C-based equations to
    estimate GFR without race. N Engl J Med 2021;385:1737–49 (clinical.md §6).
    Not used by NCT05585671 (which asks for creatinine clearance); reported only.

    Args:
        age_years: age in years.
        creatinine_umol_l: serum creatinine (IDMS-traceable) in µmol/L.
        female: sex is female.

    Returns:
        eGFR in mL/min/1.73 m².
    """
    scr = creatinine_umol_l / UMOL_L_PER_MG_DL_CREATININE
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = scr / kappa
    egfr = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200
    egfr *= 0.9938**age_years
    return egfr * 1.012 if female else egfr


# --- derived variables on a table -----------------------------------------------------
def _point(
    values: FloatArray,
    missing: dict[str, BoolArray],
    evidence: Callable[[int], dict[str, Any]],
) -> Interval:
    return Interval(values, values, missing, evidence)


def age_at_screening_years(t: Table) -> Interval:
    """Age in years at the screening date.

    From ``date_of_birth`` (:func:`~eligibility.calendar.calendar_age_years`);
    when it is missing, ``age_years`` as recorded. Missing both → unknown (either
    field settles it).
    """

    def make() -> Interval:
        has_dob = ~t.na("date_of_birth")
        age = t.num("age_years")
        if has_dob.any():
            from_dob = calendar_age_years(t.dates("date_of_birth"), t.screening_date)
            age = np.where(has_dob, from_dob, age)
        gone = np.isnan(age)

        def evidence(i: int) -> dict[str, Any]:
            if has_dob[i]:
                dob = t.value("date_of_birth", i)
                return {"date_of_birth": dob, "age_at_screening_years": age[i]}
            if not gone[i]:
                return {"age_years": age[i]}
            return {}

        return _point(age, {"date_of_birth": gone, "age_years": gone}, evidence)

    return t.derived("age_at_screening_years", make)


def acr1997_count(t: Table) -> Interval:
    """Number of the 11 revised ACR 1997 SLE criteria met (SLE: ≥ 4 of 11).

    Source: Hochberg MC. Updating the American College of Rheumatology revised
    criteria for the classification of systemic lupus erythematosus. Arthritis Rheum
    1997;40(9):1725 (clinical.md §5). Missing items leave the count in
    ``[items known true, items known true + items missing]``, so "≥ 4" is unknown only
    when the known items cannot decide it.
    """
    na = t.na(ACR1997_ITEMS)  # (items, patients)
    true = t.flag(ACR1997_ITEMS).sum(axis=0).astype(np.float64)
    n_missing = na.sum(axis=0)
    missing = dict(zip(ACR1997_ITEMS, na, strict=True))

    def evidence(i: int) -> dict[str, Any]:
        return {
            "acr1997_items_true": int(true[i]),
            "acr1997_items_missing": int(n_missing[i]),
        }

    return Interval(true, true + n_missing, missing, evidence)


def crcl_cockcroft_gault_ml_min(t: Table) -> Interval:
    """Cockcroft–Gault creatinine clearance (mL/min) of each patient.

    See :func:`cockcroft_gault_ml_min` (Cockcroft & Gault, Nephron 1976). Age at
    screening from :func:`age_at_screening_years`; actual ``weight_kg``;
    ``creatinine_umol_l``; ×0.85 when ``sex`` is female.
    """
    age = age_at_screening_years(t)
    weight, creatinine = t.num("weight_kg"), t.num("creatinine_umol_l")
    female = t.text("sex") == "female"
    with np.errstate(invalid="ignore", divide="ignore"):
        crcl = cockcroft_gault_ml_min(age.lo, weight, creatinine, female)
    missing = {
        **age.missing,
        "weight_kg": np.isnan(weight),
        "creatinine_umol_l": np.isnan(creatinine),
    }

    def evidence(i: int) -> dict[str, Any]:
        out = {
            **age.evidence(i),
            "weight_kg": t.value("weight_kg", i),
            "creatinine_umol_l": t.value("creatinine_umol_l", i),
            "sex": t.value("sex", i),
        }
        if not np.isnan(crcl[i]):
            out["crcl_cockcroft_gault_ml_min"] = round(float(crcl[i]), 1)
        return out

    return _point(crcl, missing, evidence)


def _times_uln(value_field: str, uln_field: str) -> Callable[[Table], Interval]:
    def times_uln(t: Table) -> Interval:
        value, uln = t.num(value_field), t.num(uln_field)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = value / uln

        def evidence(i: int) -> dict[str, Any]:
            out = {
                value_field: t.value(value_field, i),
                uln_field: t.value(uln_field, i),
            }
            if not np.isnan(ratio[i]):
                out[f"{value_field}_x_uln"] = round(float(ratio[i]), 3)
            return out

        missing = {value_field: np.isnan(value), uln_field: np.isnan(uln)}
        return _point(ratio, missing, evidence)

    times_uln.__doc__ = (
        f"``{value_field} / {uln_field}``: multiples of the laboratory's own upper "
        "normal limit (dimensionless). A missing limit is unknown, never a default."
    )
    return times_uln


DERIVED: dict[str, Callable[[Table], Interval]] = {
    "age_at_screening_years": age_at_screening_years,
    "acr1997_count": acr1997_count,
    "crcl_cockcroft_gault_ml_min": crcl_cockcroft_gault_ml_min,
    "alt_x_uln": _times_uln("alt_u_l", "alt_uln_u_l"),
    "ast_x_uln": _times_uln("ast_u_l", "ast_uln_u_l"),
}
"""Derived variables a criteria file may name (``derived: <name>``); all numeric."""


# --- one patient's value --------------------------------------------------------------
class Derived(NamedTuple):
    """One patient's derived value, possibly only known to lie in ``[lo, hi]``."""

    lo: float | None
    hi: float | None
    missing: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = {}

    @property
    def exact(self) -> float | None:
        """The value when it is fully known, else ``None``."""
        if self.lo is not None and self.lo == self.hi and not self.missing:
            return self.lo
        return None


def derive(name: str, record: PatientRecord, screening_date: date) -> Derived:
    """The derived variable ``name`` of one record (a table of one row)."""
    iv = DERIVED[name](Table.from_record(record, screening_date))
    lo, hi = float(iv.lo[0]), float(iv.hi[0])
    known = not (np.isnan(lo) or np.isnan(hi))
    return Derived(
        lo if known else None,
        hi if known else None,
        tuple(field for field, rows in iv.missing.items() if rows[0]),
        iv.evidence(0),
    )
