"""Derived clinical variables: code, pinned to their published sources.

Criteria files name these variables (``derived: crcl_cockcroft_gault_ml_min``); the
formulas live here, with the citation in each docstring and worked examples from the
literature as known-value tests in ``tests/eligibility/test_derived.py``.

Every variable returns a :class:`Derived`: the value (or an interval of values it can
still take when some inputs are missing), the record fields it is missing, and the
evidence it used. Missing inputs never become a number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType
from typing import Any, NamedTuple

from data_schema.patient import PatientRecord

DAYS_PER_YEAR = 365.25
"""Days per year for ages (the convention of ``data_schema.features.age_at``)."""

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


class Derived(NamedTuple):
    """A derived value, possibly only known to lie in ``[lo, hi]``.

    A NamedTuple, like the rule results built from it: immutable and cheap.

    Attributes:
        lo: smallest value still possible (``None``: unbounded / unknown).
        hi: largest value still possible (``None``: unbounded / unknown).
        missing: record fields whose absence leaves the value open.
        evidence: inputs and intermediate values, for the reason shown to a
            coordinator.
    """

    lo: float | None
    hi: float | None
    missing: tuple[str, ...] = ()
    evidence: Mapping[str, Any] = MappingProxyType({})

    @property
    def exact(self) -> float | None:
        """The value when it is fully known, else ``None``."""
        if self.lo is not None and self.lo == self.hi and not self.missing:
            return self.lo
        return None


def _known(value: float, evidence: Mapping[str, Any]) -> Derived:
    return Derived(lo=value, hi=value, evidence=evidence)


def _unknown(missing: tuple[str, ...], evidence: Mapping[str, Any]) -> Derived:
    return Derived(lo=None, hi=None, missing=missing, evidence=evidence)


# --- formulas on plain numbers (tested against worked examples) -----------------------
def cockcroft_gault_ml_min(
    age_years: float, weight_kg: float, creatinine_umol_l: float, female: bool
) -> float:
    """Creatinine clearance by Cockcroft–Gault, in mL/min (not BSA-normalised).

    ``CrCl = (140 − age) × weight / (72 × SCr[mg/dL]) × 0.85 if female``, with
    SCr[mg/dL] = SCr[µmol/L] / 88.4. Actual body weight is used.

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
    scr_mg_dl = creatinine_umol_l / UMOL_L_PER_MG_DL_CREATININE
    crcl = (140.0 - age_years) * weight_kg / (72.0 * scr_mg_dl)
    return crcl * 0.85 if female else crcl


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


# --- derived variables on a record ----------------------------------------------------
def calendar_age_years(date_of_birth: date, on: date) -> float:
    """Age in years at ``on``: completed calendar years plus the elapsed fraction of
    the current year of life.

    Exactly 18.0 on the 18th birthday (a 365.25-day year would give 17.998 and
    wrongly fail "aged ≥ 18"). A 29 February birthday falls on 1 March in common
    years.
    """

    def birthday(year: int) -> date:
        try:
            return date_of_birth.replace(year=year)
        except ValueError:  # 29 February in a common year
            return date(year, 3, 1)

    years = on.year - date_of_birth.year
    if on < birthday(on.year):
        years -= 1
    last, following = (
        birthday(date_of_birth.year + years),
        birthday(date_of_birth.year + years + 1),
    )
    return years + (on - last).days / (following - last).days


def age_at_screening_years(rec: PatientRecord, screening_date: date) -> Derived:
    """Age in years at the screening date.

    From ``date_of_birth`` (:func:`calendar_age_years`); when it is missing,
    ``age_years`` as recorded. Missing both → unknown (either field settles it).
    """
    if rec.date_of_birth is not None:
        age = calendar_age_years(rec.date_of_birth, screening_date)
        evidence = {"date_of_birth": rec.date_of_birth, "age_at_screening_years": age}
        return _known(age, evidence)
    if rec.age_years is not None:
        return _known(rec.age_years, {"age_years": rec.age_years})
    return _unknown(("date_of_birth", "age_years"), {})


def acr1997_count(rec: PatientRecord, screening_date: date) -> Derived:
    """Number of the 11 revised ACR 1997 SLE criteria met (SLE: ≥ 4 of 11).

    Source: Hochberg MC. Updating the American College of Rheumatology revised
    criteria for the classification of systemic lupus erythematosus. Arthritis Rheum
    1997;40(9):1725 (clinical.md §5). Missing items leave the count in
    ``[items known true, items known true + items missing]``, so "≥ 4" is unknown only
    when the known items cannot decide it.
    """
    values = {name: getattr(rec, name) for name in ACR1997_ITEMS}
    true = sum(1 for v in values.values() if v is True)
    missing = tuple(name for name, v in values.items() if v is None)
    evidence = {"acr1997_items_true": true, "acr1997_items_missing": len(missing)}
    return Derived(lo=true, hi=true + len(missing), missing=missing, evidence=evidence)


def crcl_cockcroft_gault_ml_min(rec: PatientRecord, screening_date: date) -> Derived:
    """Cockcroft–Gault creatinine clearance (mL/min) of the record.

    See :func:`cockcroft_gault_ml_min` (Cockcroft & Gault, Nephron 1976). Age at
    screening from :func:`age_at_screening_years`; actual ``weight_kg``;
    ``creatinine_umol_l``; ×0.85 when ``sex`` is female.
    """
    age = age_at_screening_years(rec, screening_date)
    missing = list(age.missing)
    if rec.weight_kg is None:
        missing.append("weight_kg")
    if rec.creatinine_umol_l is None:
        missing.append("creatinine_umol_l")
    evidence: dict[str, Any] = {
        **age.evidence,
        "weight_kg": rec.weight_kg,
        "creatinine_umol_l": rec.creatinine_umol_l,
        "sex": rec.sex,
    }
    if missing or age.exact is None:
        return _unknown(tuple(missing), evidence)
    assert rec.weight_kg is not None and rec.creatinine_umol_l is not None
    crcl = cockcroft_gault_ml_min(
        age.exact, rec.weight_kg, rec.creatinine_umol_l, rec.sex == "female"
    )
    evidence["crcl_cockcroft_gault_ml_min"] = round(crcl, 1)
    return _known(crcl, evidence)


def _times_uln(value_field: str, uln_field: str) -> Callable[..., Derived]:
    def times_uln(rec: PatientRecord, screening_date: date) -> Derived:
        value, uln = getattr(rec, value_field), getattr(rec, uln_field)
        evidence = {value_field: value, uln_field: uln}
        missing = tuple(
            n for n, v in ((value_field, value), (uln_field, uln)) if v is None
        )
        if missing:
            return _unknown(missing, evidence)
        ratio = value / uln
        return _known(ratio, {**evidence, f"{value_field}_x_uln": round(ratio, 3)})

    times_uln.__doc__ = (
        f"``{value_field} / {uln_field}``: multiples of the laboratory's own upper "
        "normal limit (dimensionless). A missing limit is unknown, never a default."
    )
    return times_uln


alt_x_uln = _times_uln("alt_u_l", "alt_uln_u_l")
ast_x_uln = _times_uln("ast_u_l", "ast_uln_u_l")


def days_since(rec: PatientRecord, field_name: str, screening_date: date) -> int | None:
    """Whole days from the date in ``field_name`` to the screening date (None if
    missing). A date on the screening day is 0 days ago."""
    value = getattr(rec, field_name)
    return None if value is None else (screening_date - value).days


DerivedFn = Callable[[PatientRecord, date], Derived]

DERIVED: dict[str, DerivedFn] = {
    "age_at_screening_years": age_at_screening_years,
    "acr1997_count": acr1997_count,
    "crcl_cockcroft_gault_ml_min": crcl_cockcroft_gault_ml_min,
    "alt_x_uln": alt_x_uln,
    "ast_x_uln": ast_x_uln,
}
"""Derived variables a criteria file may name (``derived: <name>``); all numeric."""
