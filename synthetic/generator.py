"""Synthetic SLE screening cohort with a known 2-year lupus nephritis (LN) risk.

The data-generating process (DGP) follows §8 of the research notes (clinical.md)
(targets §8.1, population and exclusions §8.2, features §8.3, outcome §8.4, realism
extras §8.6), with the reference ranges and Cockcroft–Gault formula of §6 and the trial
exclusions of §0 / the NCT05585671 registry text. Every number in §8 is itself an
assumption [A] anchored to published figures [P]; the list below adds the choices this
module makes where §8 is silent or ambiguous.

How a cohort is made (:func:`generate_cohort`)
----------------------------------------------
1. *Clinical truth* (one random stream): latent serological activity
   ``Z ~ N(mu, 1)`` drives the §8.3 features; ACR 1997 items are derived; candidates
   with < 4 of the 10 non-renal items are discarded (see "ACR selection" below).
2. *Other facts* (second stream): labs that do not enter the outcome (IgG, IgA,
   ALT/AST, creatinine, …), body size, pregnancy, infection and drug history with
   ``*_last_date`` dates before ``reference_date``.
3. *Outcome* (third stream): ``logit P = beta0 + linear_predictor(true covariates)``
   (§8.4), ``ln_within_2y ~ Bernoulli(P)``. ``beta0`` comes from
   :func:`solve_intercept` for the *unshifted* population, so every seed and every
   :class:`PopulationShift` shares one truth model.
4. *Recording* (fourth and fifth streams): measurement noise and the anti-dsDNA
   assay scale act on the recorded values only; then values go missing (§8.6).
5. The trial's criteria are *not* applied: a cohort holds ineligible patients too
   (§8.2). Who meets which exclusion is read from the criteria file by
   :func:`synthetic.checks.exclusions_met` (``eligibility.screen_frame``), the same
   reading that screens patients.

Separate streams (``Generator.spawn``) make the truth, the outcome and
``true_risk_2y`` identical whether or not ``measurement_noise`` is on.

Assumptions [A] beyond §8
-------------------------
* ACR selection: "require ≥ 4 of the 10 non-renal items" is implemented by
  oversampling candidates and keeping the first ``n`` that qualify (deterministic given
  the seed). About 30 % of candidates are dropped. Selection favours active serology
  (the haematologic and immunologic items depend on Z), raising the kept patients'
  mean Z by ≈ 0.17, so candidates are drawn with Z mean ``latent_activity_mean −
  0.17`` (``ACR_SELECTION_Z_OFFSET``): the §8.3 marginals describe *classified*
  patients. Anti-dsDNA ≥ 100 IU/mL still rises from 52 % to ≈ 57 %, because the
  immunologic item selects on the titre itself. ``acr_renal_disorder`` is always False.
* ACR items: haematologic = lymphocytes < 1.5 or leukocytes < 4.0 or platelets < 100
  (10⁹/L, one measurement); immunologic = true anti-dsDNA ≥ 100 IU/mL (ELISA scale) or
  anti-Sm or aPL; ANA positive 97 %; neurologic (seizure/psychosis) 3 %; alopecia 30 %.
* Disease duration: lognormal (median 2 y, σlog 1.1) truncated so that the age at
  onset is ≥ 12 y (inverse-CDF truncation, no point mass).
* Leukocytes = lymphocytes + non-lymphocytes, non-lymphocytes lognormal (median
  4.2 × 10⁹/L, σlog 0.42, −0.05 per unit Z) ⇒ median ≈ 5.5, IQR ≈ 4.3–7.0 (§8.3).
* Platelets: N(210, 65) plus a Z-driven thrombocytopenic subgroup
  (``logistic(-2.3 + 0.6 Z)``, platelets lognormal median 70) ⇒ ≈ 14 % < 100.
* ESR ``exp(ln 20 + 0.2 Z + N(0, 0.65))``; CRP lognormal median 2 mg/L, σlog 1.1.
* IgG: N(13.4 + 1.5 Z, 4.5) truncated at 4.5 g/L, plus a 1 % hypogammaglobulinaemic
  group U(1.5, 4.0) g/L — the untruncated normal would put 2.4 % below 4 g/L, against
  the 1 % of §8.2. IgA: lognormal median 2.3 g/L (σlog 0.35) plus 0.3 % IgA-deficient
  U(0.01, 0.09) g/L.
* ALT/AST: correlated lognormals (median 22 / 24 U/L, σlog 0.35, r ≈ 0.7) plus a 3 %
  "transaminitis" group at 2.05–6 × ULN (drug-induced liver injury is common on
  MTX/AZA). ULN 40 U/L for both (§6, Chinese routine labs).
* Weight and height correlate (r ≈ 0.45) within sex; §8.3 means and SDs.
* Creatinine N(62, 14) F / N(78, 16) M µmol/L clipped 30–250, correlated with weight
  (r ≈ 0.3, muscle mass): Cockcroft–Gault CrCl < 60 mL/min then ≈ 2 % as in §8.2
  (uncorrelated it would be 3.6 %). ULN 84 F / 104 M µmol/L.
* Prior kidney involvement: besides the natural tails of §8.3 (≈ 1 %), a
  ``logistic(-2.6 + 0.5 Z)`` group (≈ 7.5 %) gets one finding: 24-h protein
  U(0.55, 2.0) g (35 %), > 5 RBC/hpf (25 %), > 5 WBC/hpf (15 %), cellular casts with
  RBC (5 %) or a prior biopsy (20 %). Total ≈ 8 % (§8.2).
* Contaminated urine: women < 50 y have a 5 % chance of a sample during menses and
  everybody 2 % during a urinary infection; these add RBC/WBC to the *recorded* count
  and set the matching ``*_with_*`` flag, so a high count is not always an exclusion.
  The outcome's (optional) RBC term uses the renal RBC count only.
* Treatment: HCQ ``logistic(a − 0.3 Z)`` with ``a`` solved so the share equals the
  population's ``hcq_use`` (0.85); dose 400 / 200 / 300 mg (60 / 35 / 5 %).
  Prednisone: taken with probability ``logistic(0.9 + 0.6 Z)``; dose
  ``exp(ln 10 + 0.3 Z + N(0, 0.5))`` rounded to 2.5 mg and clipped 2.5–40; 1 % take
  45–60 mg/d (fails the 0–40 mg inclusion). Immunosuppressant 35 % (MMF 35, AZA 20,
  MTX 15, tacrolimus 12, ciclosporin 8, leflunomide 8, other 2 %).
  ``soc_regimen_stable_since``: 90 % 31–720 days, 10 % 1–30 days before the reference.
* Severe active disease: neuropsychiatric lupus in 15 % of the neurologic-item
  patients (≈ 0.45 %), cardiac lupus 0.3 %.
* Pregnancy / lactation: 1.5 % / 1.5 % of women aged < 45 y.
* History (ever, then last date): pulse prednisone > 100 mg/d 6 %, IV cyclophosphamide
  5 %, IVIG 3 % (last dose uniform over the disease course); B-cell therapy 2 %
  (belimumab 50, rituximab 30, telitacicept 15, other 5 %; half-lives 19.4 / 22 /
  11 / 20 days; 60 % dosed within max(5 half-lives, 1 y for rituximab), the rest
  earlier); infection hospitalisation 15 % (days ago ~ Exp(700)); parenteral
  anti-infectives 25 % (Exp(900)); substance abuse 1.5 % (0.3 % current);
  investigational biologic 1 % and non-biologic 1 % (half-life 0.2–20 d); live vaccine
  90 % (95 % of them only in childhood, 5 % within the last 2 years).
* Infection and immune status: chronic suppressive anti-infective therapy 1 %, primary
  immunodeficiency 0.2 %, anaphylaxis history 0.5 %, HBV marker 6 % (HBcAb+; 40 % of
  them also HBsAg+), HIV 0.1 %.
* Measurement noise: multiplicative, median-preserving lognormal, CV 7 % on C3, C4 and
  creatinine and 25 % on anti-dsDNA. The assay scale multiplies the recorded anti-dsDNA
  (CLIA cut-off 70 vs ELISA 100 IU/mL ⇒ ×0.7).
* Missingness (§8.6): anti-C1q and anti-nucleosome measured with probability
  ``logistic(-1.0 + 1.1 * recorded anti-dsDNA positive + 0.9 * recorded C3 < 0.9)``
  (≈ 50 %; missing at random given the recorded serology, which rises with Z);
  IgG/IgA 10 % missing (one panel); weight 5 %; height 10 %; 24-h urine protein 10 %;
  aPL 10 %; ENA panel (Sm, RNP, SSA) 5 %; CRP 8 %; ESR 5 %; C4 3 %; urine sediment 3 %;
  C3, anti-dsDNA, albumin, ALT/AST, SLEDAI, HIV 2–5 %; HBV markers 3 %; blood count,
  creatinine and disease duration 1 %. ULN fields go missing with their lab value.
  ``consent_signed`` and ``contraception_agreed`` are always missing (settled at the
  visit).
* Outcome centring: continuous terms are centred as in §8.4; binary terms are not
  (centre 0); optional ESR term centred at 20 mm/h, urine RBC term at 1 cell/hpf.
* Not implemented: the time-to-event variant of §8.5 (Weibull hazards, censoring);
  the outcome is the binary 24-month event of §8.4.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from data_schema.fields import field_specs
from data_schema.table import (
    OUTCOME_COLUMN,
    PANDAS_DTYPES,
    SYNTHETIC_PREFIX,
    TRUE_RISK_COLUMN,
)
from eligibility.derived import ACR1997_ITEMS
from riskmodel.maths import expit

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

DAYS_PER_YEAR = 365.25
#: Laboratory upper normal limits written with every cohort (§6; [A] where not given).
ALT_ULN_U_L = 40.0
AST_ULN_U_L = 40.0
CREATININE_ULN_UMOL_L = {"female": 84.0, "male": 104.0}
IGG_ULN_G_L = 16.0
IGA_ULN_G_L = 4.0
LEUKOCYTES_ULN_10E9_L = 10.0

#: The screening date of a cohort unless another is given.
REFERENCE_DATE = date(2026, 12, 1)

#: Size and seed of the fixed base-population sample on which beta0 is solved.
SOLVER_SAMPLE_SIZE = 200_000
SOLVER_SEED = 20_260_101

#: Pre-selection shift of the latent activity mean that offsets the enrichment caused
#: by requiring >= 4 ACR items (measured: kept patients' mean Z rises by ~0.17).
ACR_SELECTION_Z_OFFSET = -0.17

# ACR 1997 items other than the renal one: at least four are required.
ACR_NONRENAL_ITEMS: tuple[str, ...] = tuple(
    item for item in ACR1997_ITEMS if item != "acr_renal_disorder"
)


@dataclass(frozen=True)
class PopulationShift:
    """Case-mix and assay differences of a validation population (§8.6).

    The biology (the outcome model of §8.4, its betas and beta0) never changes; a shift
    changes who is screened and how anti-dsDNA is reported, so the incidence of a
    shifted population differs from the base one.

    Attributes:
        name: short identifier.
        description: one sentence for reports.
        anti_dsdna_assay_scale: factor on the *recorded* anti-dsDNA titre, e.g. 0.7 for
            a CLIA assay with a 70 IU/mL cut-off read against the ELISA 100 IU/mL one.
        age_mean_shift_years: added to the mean (34 y) of the truncated-normal age.
        male_share: share of men (base 0.08, CSTAR).
        hcq_use: share on hydroxychloroquine (base 0.85); the activity confounding
            (fewer users when Z is high) keeps this marginal share.
        latent_activity_mean: mean of the latent serological activity Z (base 0).
        disease_duration_median_years: median time since diagnosis (base 2.0 y).
        hypertension_share: share with diagnosed hypertension (base 0.06).
    """

    name: str
    description: str = ""
    anti_dsdna_assay_scale: float = 1.0
    age_mean_shift_years: float = 0.0
    male_share: float = 0.08
    hcq_use: float = 0.85
    latent_activity_mean: float = 0.0
    disease_duration_median_years: float = 2.0
    hypertension_share: float = 0.06

    def __post_init__(self) -> None:
        if not self.anti_dsdna_assay_scale > 0:
            raise ValueError("anti_dsdna_assay_scale must be > 0")
        for share in ("male_share", "hypertension_share"):
            if not 0.0 <= getattr(self, share) <= 1.0:
                raise ValueError(f"{share} must lie in [0, 1]")
        if not 0.0 < self.hcq_use < 1.0:
            raise ValueError("hcq_use must lie in (0, 1)")
        if not self.disease_duration_median_years > 0:
            raise ValueError("disease_duration_median_years must be > 0")
        if not -30.0 <= self.age_mean_shift_years <= 30.0:
            raise ValueError("age_mean_shift_years must lie in [-30, 30]")


SHIFTS: dict[str, PopulationShift] = {
    "none": PopulationShift(
        "none", "Base population: screened LN-free Chinese adults (§8.3)."
    ),
    "external": PopulationShift(
        "external",
        "Tertiary clinic elsewhere: CLIA anti-dsDNA (x0.7), 6 y older, 10 % men, "
        "HCQ 95 %, longer disease (median 5 y), slightly lower activity.",
        anti_dsdna_assay_scale=0.7,
        age_mean_shift_years=6.0,
        male_share=0.10,
        hcq_use=0.95,
        latent_activity_mean=-0.2,
        disease_duration_median_years=5.0,
    ),
    "assay_clia": PopulationShift(
        "assay_clia",
        "Base case mix, anti-dsDNA reported on a CLIA scale (cut-off 70 => x0.7).",
        anti_dsdna_assay_scale=0.7,
    ),
    "high_activity": PopulationShift(
        "high_activity",
        "Referral centre seeing more active, more recently diagnosed patients.",
        latent_activity_mean=0.4,
        disease_duration_median_years=1.0,
    ),
}

# --- outcome model (§8.4) -------------------------------------------------------------
#: (beta, centre) of the continuous and binary terms of §8.4 (binary centre 0).
OUTCOME_TERMS: dict[str, tuple[float, float]] = {
    "male": (0.69, 0.0),
    "age_years": (-0.03, 34.0),
    "log10_anti_dsdna": (0.60, 2.0),
    "c3_g_l": (-1.5, 0.88),
    "c4_g_l": (-3.0, 0.14),
    "anti_c1q_positive": (0.70, 0.0),
    "anti_sm_positive": (0.50, 0.0),
    "antiphospholipid_positive": (-0.45, 0.0),
    "anti_ssa_positive": (-0.30, 0.0),
    "sledai2k_nonrenal": (0.04, 4.0),
    "lymphocytes_below_1": (0.40, 0.0),
    "hypertension": (0.70, 0.0),
    "acr_serositis": (0.35, 0.0),
    "acr_discoid_rash": (-0.50, 0.0),
    "acr_photosensitivity": (-0.30, 0.0),
    "hydroxychloroquine_current": (-0.55, 0.0),
    "albumin_g_l": (-0.05, 41.0),
    "urine_protein_capped": (2.0, 0.10),
}
#: Disease-duration bands (upper bound in years, beta): < 1, 1–3, 3–5, > 5 y.
DURATION_BETAS: tuple[tuple[float, float], ...] = (
    (1.0, 0.4),
    (3.0, 0.0),
    (5.0, -0.4),
    (np.inf, -0.8),
)
#: The "optional small terms" of §8.4 (beta, centre), used when small_terms=True.
SMALL_TERMS: dict[str, tuple[float, float]] = {
    "anti_nucleosome_positive": (0.30, 0.0),
    "acr_oral_ulcers": (0.20, 0.0),
    "esr_mm_h": (0.005, 20.0),
    "urine_rbc_per_hpf": (0.10, 1.0),
    "immunosuppressant_current": (-0.30, 0.0),
    "prednisone_mg_day": (0.0, 0.0),
}
#: Protein above this (g/24 h) adds no further risk: the trial excludes it anyway.
URINE_PROTEIN_CAP_G = 0.5


def linear_predictor(
    x: Mapping[str, ArrayLike] | pd.DataFrame,
    small_terms: bool = False,
    beta0: float = 0.0,
) -> FloatArray:
    """The §8.4 outcome model's logit of 2-year new-onset LN, from TRUE covariates.

    Args:
        x: true covariate values by name (a mapping of equal-length arrays or a
            DataFrame; no missing values):
            ``male`` (0/1), ``age_years`` (y), ``disease_duration_years`` (y),
            ``anti_dsdna_iu_ml`` (IU/mL, ELISA scale), ``c3_g_l`` and ``c4_g_l`` (g/L),
            ``albumin_g_l`` (g/L), ``lymphocytes_10e9_l`` (10⁹/L),
            ``sledai2k_nonrenal`` (points), ``urine_protein_g_24h`` (g/24 h), and the
            0/1 flags ``anti_c1q_positive``, ``anti_sm_positive``,
            ``antiphospholipid_positive``, ``anti_ssa_positive``, ``hypertension``,
            ``acr_serositis``, ``acr_discoid_rash``, ``acr_photosensitivity``,
            ``hydroxychloroquine_current``. With ``small_terms`` also
            ``anti_nucleosome_positive``, ``acr_oral_ulcers``, ``esr_mm_h`` (mm/h),
            ``urine_rbc_per_hpf`` (cells/hpf), ``immunosuppressant_current`` and
            ``prednisone_mg_day`` (mg/d; beta 0).
        small_terms: include the "optional small terms" row of §8.4.
        beta0: intercept added to the sum (0 gives the centred sum alone).

    Returns:
        ``beta0 + sum_j beta_j (x_j - centre_j)``, one value per patient.
    """

    def col(name: str) -> FloatArray:
        values = np.asarray(x[name], dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError(f"{name}: the truth model needs complete true values")
        return values

    derived = {
        "log10_anti_dsdna": np.log10(np.maximum(col("anti_dsdna_iu_ml"), 1.0)),
        "lymphocytes_below_1": (col("lymphocytes_10e9_l") < 1.0).astype(np.float64),
        "urine_protein_capped": np.minimum(
            col("urine_protein_g_24h"), URINE_PROTEIN_CAP_G
        ),
    }
    terms = dict(OUTCOME_TERMS)
    if small_terms:
        terms.update(SMALL_TERMS)
    lp = np.full(len(derived["log10_anti_dsdna"]), float(beta0))
    for name, (beta, centre) in terms.items():
        if beta == 0.0:
            continue
        values = derived[name] if name in derived else col(name)
        lp += beta * (values - centre)
    duration = col("disease_duration_years")
    lower = 0.0
    for upper, beta in DURATION_BETAS:
        lp += beta * ((duration >= lower) & (duration < upper))
        lower = upper
    return lp


# --- draws used by every stage --------------------------------------------------------
def _truncnorm(
    rng: np.random.Generator, mean: ArrayLike, sd: float, lo: float, hi: float, n: int
) -> FloatArray:
    """Normal draws truncated to [lo, hi] by inverse CDF (no rejection loop)."""
    mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (n,))
    a = special.ndtr((lo - mean) / sd)
    b = special.ndtr((hi - mean) / sd)
    u = a + (b - a) * rng.random(n)
    return np.clip(mean + sd * special.ndtri(u), lo, hi)


def _lognormal(
    rng: np.random.Generator,
    median: float,
    sigma_log: float,
    n: int,
    log_shift: ArrayLike = 0.0,
) -> FloatArray:
    """Lognormal draws ``exp(ln median + log_shift + N(0, sigma_log))``.

    ``log_shift`` moves the median on the log scale (e.g. a Z effect).
    """
    return np.exp(np.log(median) + log_shift + rng.normal(0.0, sigma_log, n))


def _hcq_intercept(share: float, latent_mean: float) -> float:
    """Intercept a with E[expit(a - 0.3 Z)] = share for Z ~ N(latent_mean, 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()

    def gap(a: float) -> float:
        return float(weights @ expit(a - 0.3 * (latent_mean + nodes))) - share

    return float(optimize.brentq(gap, -20.0, 20.0))


def _bern(rng: np.random.Generator, p: ArrayLike, n: int) -> BoolArray:
    return rng.random(n) < np.broadcast_to(np.asarray(p, dtype=np.float64), (n,))


# --- stage 1: clinical truth ----------------------------------------------------------
def _draw_candidates(
    rng: np.random.Generator, m: int, shift: PopulationShift
) -> dict[str, np.ndarray]:
    """Draw ``m`` candidates' latent activity, §8.3 features and ACR items.

    The steps run in a fixed order on one stream, so a seed gives the same draws.
    """
    t = _draw_demographics(rng, m, shift)
    t |= _draw_serology(rng, t)
    t |= _draw_blood_and_chemistry(rng, t)
    t |= _draw_urine_and_kidney(rng, t)
    t |= _draw_clinical_items(rng, t, shift)
    t |= _draw_treatment(rng, t, shift)
    return t


def _draw_demographics(
    rng: np.random.Generator, m: int, shift: PopulationShift
) -> dict[str, np.ndarray]:
    """Latent activity Z, sex, age (y) and disease duration (y)."""
    # The ACR selection keeps more active candidates; start lower so the kept
    # patients have mean Z ~ latent_activity_mean (the §8.3 marginals describe
    # classified SLE patients, i.e. the population after selection).
    z = shift.latent_activity_mean + ACR_SELECTION_Z_OFFSET + rng.standard_normal(m)
    male = _bern(rng, shift.male_share, m)
    age = _truncnorm(rng, 34.0 + shift.age_mean_shift_years, 11.0, 18.0, 75.0, m)
    # Truncate the lognormal so onset is at age >= 12 (§8.3) without a point mass.
    mu_d, sd_d = np.log(shift.disease_duration_median_years), 1.1
    upper = special.ndtr((np.log(age - 12.0) - mu_d) / sd_d)
    duration = np.minimum(
        np.exp(mu_d + sd_d * special.ndtri(upper * rng.random(m))), age - 12.0
    )
    return {
        "z": z,
        "male": male,
        "age_years": age,
        "disease_duration_years": duration,
    }


def _draw_serology(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Serology and non-renal SLEDAI-2K driven by Z (§8.3 table)."""
    z, m = t["z"], len(t["z"])
    s: dict[str, np.ndarray] = {}
    log_dsdna = (
        2.0 + 0.55 * z + rng.normal(0.0, 0.45, m) + 0.1 * (t["age_years"] < 30.0)
    )
    s["anti_dsdna_iu_ml"] = np.clip(10.0**log_dsdna, 1.0, 100_000.0)
    s["c3_g_l"] = np.clip(0.88 - 0.14 * z + rng.normal(0.0, 0.20, m), 0.2, 1.9)
    s["c4_g_l"] = np.clip(_lognormal(rng, 0.14, 0.40, m, -0.30 * z), 0.01, 0.6)
    s["anti_c1q_positive"] = _bern(rng, expit(-0.6 + 0.9 * z), m)
    s["anti_sm_positive"] = _bern(rng, expit(-1.7 + 0.5 * z), m)
    s["anti_nucleosome_positive"] = _bern(rng, expit(-0.3 + 0.9 * z), m)
    s["anti_rnp_positive"] = _bern(rng, 0.25, m)
    s["anti_ssa_positive"] = _bern(rng, 0.35, m)
    s["antiphospholipid_positive"] = _bern(rng, 0.20, m)
    s["sledai2k_nonrenal"] = np.clip(
        rng.poisson(np.exp(np.log(4.0) + 0.25 * z)), 0, 30
    ).astype(np.float64)
    return s


def _draw_blood_and_chemistry(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Blood count (10⁹/L, g/L), albumin (g/L), ESR (mm/h) and CRP (mg/L)."""
    z, m = t["z"], len(t["z"])
    b: dict[str, np.ndarray] = {}
    lymph = np.clip(_lognormal(rng, 1.15, 0.4, m, -0.15 * z), 0.05, 8.0)
    b["lymphocytes_10e9_l"] = lymph
    nonlymph = _lognormal(rng, 4.2, 0.42, m, -0.05 * z)
    b["leukocytes_10e9_l"] = np.clip(lymph + nonlymph, 0.5, 40.0)
    b["hemoglobin_g_l"] = np.clip(
        rng.normal(125.0 - 3.0 * z + 12.0 * t["male"], 18.0), 55.0, 190.0
    )
    # A Z-driven thrombocytopenic group lifts the share < 100 x 10⁹/L to ~15 %.
    low_plt = _bern(rng, expit(-2.3 + 0.6 * z), m)
    plt_normal = rng.normal(210.0, 65.0, m)
    plt_low = _lognormal(rng, 70.0, 0.35, m)
    b["platelets_10e9_l"] = np.clip(np.where(low_plt, plt_low, plt_normal), 5.0, 900.0)
    b["albumin_g_l"] = np.clip(rng.normal(41.0 - 1.5 * z, 3.5), 20.0, 55.0)
    b["esr_mm_h"] = np.clip(_lognormal(rng, 20.0, 0.65, m, 0.2 * z), 1.0, 150.0)
    b["crp_mg_l"] = np.clip(_lognormal(rng, 2.0, 1.1, m), 0.1, 200.0)
    return b


def _draw_urine_and_kidney(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Subclinical urine findings (§8.3) plus prior kidney involvement (§8.2, 8 %)."""
    z, m = t["z"], len(t["z"])
    protein = _lognormal(rng, 0.10, 0.6, m, 0.25 * z)
    rbc = rng.poisson(1.0 + 0.5 * (z > 1.0))
    wbc = rng.poisson(1.0 + 0.5 * (z > 1.0))
    # One finding per patient with prior kidney involvement: protein, RBC, WBC,
    # cellular casts (with RBC) or a biopsy.
    kidney = _bern(rng, expit(-2.6 + 0.5 * z), m)
    finding = rng.choice(5, size=m, p=[0.35, 0.25, 0.15, 0.05, 0.20])
    protein = np.where(kidney & (finding == 0), rng.uniform(0.55, 2.0, m), protein)
    rbc = np.where(kidney & (finding == 1), 6 + rng.poisson(6.0, m), rbc)
    wbc = np.where(kidney & (finding == 2), 6 + rng.poisson(5.0, m), wbc)
    casts = kidney & (finding == 3)
    rbc = np.where(casts, 6 + rng.poisson(4.0, m), rbc)
    return {
        "urine_protein_g_24h": np.clip(protein, 0.0, 30.0),
        "renal_rbc_per_hpf": rbc.astype(np.float64),
        "renal_wbc_per_hpf": wbc.astype(np.float64),
        "urine_cellular_casts": casts,
        "kidney_biopsy_confirmed": kidney & (finding == 4),
        "prior_kidney_involvement": kidney,
    }


def _draw_clinical_items(
    rng: np.random.Generator, t: Mapping[str, np.ndarray], shift: PopulationShift
) -> dict[str, np.ndarray]:
    """Clinical ACR items (§8.3 shares; neurologic and ANA [A]) and organ activity."""
    z, m = t["z"], len(t["z"])
    c: dict[str, np.ndarray] = {}
    c["acr_malar_rash"] = _bern(rng, 0.45, m)
    c["acr_discoid_rash"] = _bern(rng, 0.08, m)
    c["acr_photosensitivity"] = _bern(rng, 0.25, m)
    c["acr_oral_ulcers"] = _bern(rng, 0.22, m)
    c["acr_arthritis"] = _bern(rng, 0.60, m)
    c["acr_serositis"] = _bern(rng, expit(-1.6 + 0.3 * z), m)
    c["acr_neurologic_disorder"] = _bern(rng, 0.03, m)
    c["acr_antinuclear_antibody"] = _bern(rng, 0.97, m)
    c["alopecia"] = _bern(rng, 0.30, m)
    c["hypertension"] = _bern(rng, shift.hypertension_share, m)
    c["acr_hematologic_disorder"] = (
        (t["lymphocytes_10e9_l"] < 1.5)
        | (t["leukocytes_10e9_l"] < 4.0)
        | (t["platelets_10e9_l"] < 100)
    )
    c["acr_immunologic_disorder"] = (
        (t["anti_dsdna_iu_ml"] >= 100.0)
        | t["anti_sm_positive"]
        | t["antiphospholipid_positive"]
    )
    c["neuropsychiatric_lupus_active"] = c["acr_neurologic_disorder"] & _bern(
        rng, 0.15, m
    )
    c["cardiac_lupus_active"] = _bern(rng, 0.003, m)
    return c


def _draw_treatment(
    rng: np.random.Generator, t: Mapping[str, np.ndarray], shift: PopulationShift
) -> dict[str, np.ndarray]:
    """Current HCQ, prednisone dose (mg/d) and immunosuppressant use.

    Mildly confounded by activity (§8.6): HCQ down, prednisone up with Z.
    """
    z, m = t["z"], len(t["z"])
    a_hcq = _hcq_intercept(shift.hcq_use, shift.latent_activity_mean)
    hcq = _bern(rng, expit(a_hcq - 0.3 * z), m)
    on_pred = _bern(rng, expit(0.9 + 0.6 * z), m)
    dose = _lognormal(rng, 10.0, 0.5, m, 0.3 * z)
    dose = np.clip(np.round(dose / 2.5) * 2.5, 2.5, 40.0)
    high = _bern(rng, 0.01, m)
    dose = np.where(high, 5.0 * rng.integers(9, 13, m), dose)
    return {
        "hydroxychloroquine_current": hcq,
        "prednisone_mg_day": np.where(on_pred | high, dose, 0.0),
        "immunosuppressant_current": _bern(rng, 0.35, m),
    }


def _acr_count(t: Mapping[str, np.ndarray]) -> NDArray[np.int64]:
    return np.sum([t[item] for item in ACR_NONRENAL_ITEMS], axis=0)


def _draw_population(
    rng: np.random.Generator, n: int, shift: PopulationShift
) -> dict[str, np.ndarray]:
    """Draw ``n`` patients meeting >= 4 non-renal ACR 1997 items, by oversampling."""
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    while have < n:
        # ~80 % of candidates qualify; 1.5x keeps a second round rare.
        m = max(1_024, int(1.5 * (n - have)))
        cand = _draw_candidates(rng, m, shift)
        keep = _acr_count(cand) >= 4
        parts.append({k: v[keep] for k, v in cand.items()})
        have += int(keep.sum())
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def kidney_involved(t: Mapping[str, np.ndarray]) -> BoolArray:
    """Prior kidney involvement in the clinical truth: the group drawn with it, and
    the natural tails (proteinuria > 0.5 g/24 h, > 5 RBC or WBC/hpf, casts)."""
    return (
        t["prior_kidney_involvement"]
        | (t["urine_protein_g_24h"] > 0.5)
        | (t["renal_rbc_per_hpf"] > 5)
        | (t["renal_wbc_per_hpf"] > 5)
        | t["urine_cellular_casts"]
        | t["kidney_biopsy_confirmed"]
    )


@lru_cache(maxsize=4)
def _base_offsets(small_terms: bool) -> FloatArray:
    """Centred linear predictor (no beta0) of the fixed base-population sample,
    kidney-free patients only: the population a new-onset LN model is for."""
    rng = np.random.default_rng(SOLVER_SEED)
    truth = _draw_population(rng, SOLVER_SAMPLE_SIZE, SHIFTS["none"])
    offsets = linear_predictor(_truth_covariates(truth), small_terms=small_terms)
    return offsets[~kidney_involved(truth)]


@lru_cache(maxsize=64)
def solve_intercept(incidence: float, small_terms: bool = False) -> float:
    """beta0 giving the kidney-free BASE population a mean true 2-year risk of
    ``incidence`` (clinical.md §8.1 describes patients without kidney involvement:
    new-onset LN).

    Solved with Brent's method on a fixed internal sample (``SOLVER_SAMPLE_SIZE``
    patients, ``SOLVER_SEED``) and cached, so cohorts of any seed or shift share one
    truth model. The result is ≈ −2.61 for 10 %; §8.4's check run (−2.68) solved it
    on a population that included kidney involvement.

    Args:
        incidence: target mean 2-year risk, strictly between 0 and 1.
        small_terms: whether the outcome model includes the optional small terms.

    Returns:
        The intercept beta0 (logit scale).
    """
    if not 0.0 < incidence < 1.0:
        raise ValueError(f"incidence must lie in (0, 1), got {incidence}")
    offsets = _base_offsets(small_terms)

    def gap(b0: float) -> float:
        return float(expit(b0 + offsets).mean()) - incidence

    return float(optimize.brentq(gap, -30.0, 30.0, xtol=1e-10))


def _truth_covariates(t: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    cov = dict(t)
    cov["urine_rbc_per_hpf"] = t["renal_rbc_per_hpf"]
    return cov


# --- stage 2: other facts -------------------------------------------------------------
def _days_before(ref: np.datetime64, days: ArrayLike, mask: BoolArray) -> np.ndarray:
    """Dates ``days`` (rounded, >= 1) before ``ref`` where ``mask``, else NaT."""
    d = np.maximum(np.round(days), 1).astype("int64")
    out = ref - d.astype("timedelta64[D]")
    return np.where(mask, out, np.datetime64("NaT"))


def _exposure(
    stem: str, ever: BoolArray, days_ago: ArrayLike, ref: np.datetime64
) -> dict[str, np.ndarray]:
    """``{stem}_ever`` and ``{stem}_last_date`` (``days_ago`` days before ``ref``)."""
    return {
        f"{stem}_ever": ever,
        f"{stem}_last_date": _days_before(ref, days_ago, ever),
    }


def _draw_facts(
    rng: np.random.Generator,
    t: Mapping[str, np.ndarray],
    ref: np.datetime64,
) -> dict[str, np.ndarray]:
    """Labs without outcome effect, body size, pregnancy and exposure history.

    The steps run in a fixed order on one stream, so a seed gives the same draws.
    """
    f = _draw_body_and_creatinine(rng, t)
    f |= _draw_immunoglobulins(rng, t)
    f |= _draw_liver_enzymes(rng, len(t["z"]))
    f |= _draw_urine_contamination(rng, t)
    f |= _draw_pregnancy(rng, t)
    f |= _draw_standard_of_care(rng, t, ref)
    f |= _draw_treatment_history(rng, t, ref)
    f |= _draw_b_cell_therapy(rng, len(t["z"]), ref)
    f |= _draw_infection_and_immunity(rng, len(t["z"]), ref)
    f |= _draw_substance_abuse(rng, len(t["z"]), ref)
    f |= _draw_investigational_agents(rng, len(t["z"]), ref)
    f |= _draw_live_vaccines(rng, t, ref)
    return f


def _draw_body_and_creatinine(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Height (cm), weight (kg) and creatinine (µmol/L) by sex."""
    n, male = len(t["z"]), t["male"]
    # Body size, correlated within sex (r ~ 0.45) [A].
    e_h = rng.standard_normal(n)
    e_w = 0.45 * e_h + np.sqrt(1 - 0.45**2) * rng.standard_normal(n)
    height = np.clip(np.where(male, 171.0, 160.0) + 6.0 * e_h, 140.0, 200.0)
    weight = np.clip(
        np.where(male, 68.0, 57.0) + np.where(male, 10.0, 9.0) * e_w, 35.0, 140.0
    )
    # Creatinine by sex, correlated with weight (r ~ 0.3) because both follow muscle
    # mass; without it Cockcroft-Gault puts 3.6 % below 60 mL/min instead of ~2 %.
    e_c = 0.3 * e_w + np.sqrt(1 - 0.3**2) * rng.standard_normal(n)
    creatinine = np.clip(
        np.where(male, 78.0 + 16.0 * e_c, 62.0 + 14.0 * e_c), 30.0, 250.0
    )
    return {"height_cm": height, "weight_kg": weight, "creatinine_umol_l": creatinine}


def _draw_immunoglobulins(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """IgG (Z-driven, truncated) with a 1 % deficient group; IgA with 0.3 % (g/L)."""
    n = len(t["z"])
    igg = _truncnorm(rng, 13.4 + 1.5 * t["z"], 4.5, 4.5, 45.0, n)
    igg = np.where(_bern(rng, 0.01, n), rng.uniform(1.5, 4.0, n), igg)
    iga = np.clip(_lognormal(rng, 2.3, 0.35, n), 0.2, 10.0)
    iga = np.where(_bern(rng, 0.003, n), rng.uniform(0.01, 0.09, n), iga)
    return {"igg_g_l": igg, "iga_g_l": iga}


def _draw_liver_enzymes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """ALT/AST (U/L): correlated lognormals plus a 3 % group above 2 × ULN."""
    shared = rng.standard_normal(n)
    alt = np.exp(np.log(22.0) + 0.35 * (0.84 * shared + 0.54 * rng.standard_normal(n)))
    ast = np.exp(np.log(24.0) + 0.35 * (0.84 * shared + 0.54 * rng.standard_normal(n)))
    liver = _bern(rng, 0.03, n)
    alt_high = ALT_ULN_U_L * rng.uniform(2.05, 6.0, n)
    return {
        "alt_u_l": np.clip(np.where(liver, alt_high, alt), 3.0, 5000.0),
        "ast_u_l": np.clip(
            np.where(liver, alt_high * rng.uniform(0.5, 1.0, n), ast), 3.0, 5000.0
        ),
    }


def _draw_urine_contamination(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Recorded urine counts (cells/hpf): renal cells plus menses or infection."""
    n = len(t["z"])
    menses = ~t["male"] & (t["age_years"] < 50.0) & _bern(rng, 0.05, n)
    uti = _bern(rng, 0.02, n)
    rbc = (
        t["renal_rbc_per_hpf"]
        + menses * (5 + rng.poisson(10.0, n))
        + uti * rng.poisson(5.0, n)
    )
    wbc = t["renal_wbc_per_hpf"] + uti * (5 + rng.poisson(10.0, n))
    return {
        "urine_rbc_per_hpf": rbc,
        "urine_wbc_per_hpf": wbc,
        "urine_rbc_with_menses_or_infection": menses | uti,
        "urine_wbc_with_infection": uti,
    }


def _draw_pregnancy(
    rng: np.random.Generator, t: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Pregnancy and lactation, 1.5 % each of women < 45 y."""
    fertile = ~t["male"] & (t["age_years"] < 45.0)
    u = rng.random(len(t["z"]))
    return {
        "pregnant": fertile & (u < 0.015),
        "lactating": fertile & (u >= 0.015) & (u < 0.03),
    }


#: Immunosuppressants and their shares among users [A].
_IMMUNOSUPPRESSANTS: dict[str, float] = {
    "mycophenolate": 0.35,
    "azathioprine": 0.20,
    "methotrexate": 0.15,
    "tacrolimus": 0.12,
    "ciclosporin": 0.08,
    "leflunomide": 0.08,
    "other": 0.02,
}


def _draw_standard_of_care(
    rng: np.random.Generator, t: Mapping[str, np.ndarray], ref: np.datetime64
) -> dict[str, np.ndarray]:
    """HCQ dose (mg/d), immunosuppressant name and the date the regimen settled."""
    n = len(t["z"])
    hcq_dose = np.where(
        t["hydroxychloroquine_current"],
        rng.choice([400.0, 200.0, 300.0], size=n, p=[0.60, 0.35, 0.05]),
        0.0,
    )
    names = np.array(list(_IMMUNOSUPPRESSANTS), dtype=object)
    name = rng.choice(names, size=n, p=list(_IMMUNOSUPPRESSANTS.values()))
    recent = _bern(rng, 0.10, n)
    stable_days = np.where(recent, rng.integers(1, 31, n), rng.integers(31, 721, n))
    return {
        "hydroxychloroquine_mg_day": hcq_dose,
        "immunosuppressant_name": np.where(t["immunosuppressant_current"], name, None),
        "soc_regimen_stable_since": _days_before(
            ref, stable_days.astype(np.float64), np.ones(n, dtype=bool)
        ),
    }


def _draw_treatment_history(
    rng: np.random.Generator, t: Mapping[str, np.ndarray], ref: np.datetime64
) -> dict[str, np.ndarray]:
    """Pulse prednisone, IV cyclophosphamide and IVIG: ever, last date in the course."""
    n = len(t["z"])
    course_days = np.maximum(t["disease_duration_years"] * DAYS_PER_YEAR, 30.0)
    h: dict[str, np.ndarray] = {}
    for stem, share in (
        ("prednisone_over_100mg", 0.06),
        ("iv_cyclophosphamide", 0.05),
        ("ivig", 0.03),
    ):
        ever = _bern(rng, share, n)
        h |= _exposure(stem, ever, rng.random(n) * course_days, ref)
    return h


def _draw_b_cell_therapy(
    rng: np.random.Generator, n: int, ref: np.datetime64
) -> dict[str, np.ndarray]:
    """B-cell therapy: agent, half-life (d) and a date inside or beyond its wash-out."""
    bcell = _bern(rng, 0.02, n)
    agents = np.array(["belimumab", "rituximab", "telitacicept", "other"], dtype=object)
    half_lives = np.array([19.4, 22.0, 11.0, 20.0])
    k = rng.choice(4, size=n, p=[0.50, 0.30, 0.15, 0.05])
    washout = np.where(k == 1, 365.0, 5.0 * half_lives[k])
    inside = _bern(rng, 0.60, n)
    days = np.where(
        inside,
        rng.uniform(0.1, 1.0, n) * washout,
        washout * rng.uniform(1.05, 4.0, n),
    )
    return {
        "b_cell_therapy_ever": bcell,
        "b_cell_therapy_agent": np.where(bcell, agents[k], None),
        "b_cell_therapy_half_life_days": np.where(bcell, half_lives[k], np.nan),
        "b_cell_therapy_last_date": _days_before(ref, days, bcell),
    }


def _draw_infection_and_immunity(
    rng: np.random.Generator, n: int, ref: np.datetime64
) -> dict[str, np.ndarray]:
    """Infection history and status, HBV / HIV markers, immune conditions."""
    s: dict[str, np.ndarray] = {
        "chronic_infection_suppressive_therapy": _bern(rng, 0.01, n)
    }
    for stem, share, mean_days in (
        ("infection_hospitalisation", 0.15, 700.0),
        ("parenteral_antiinfective", 0.25, 900.0),
    ):
        ever = _bern(rng, share, n)
        s |= _exposure(stem, ever, rng.exponential(mean_days, n), ref)
    hbv = _bern(rng, 0.06, n)
    s["hbcab_positive"] = hbv
    s["hbsag_positive"] = hbv & _bern(rng, 0.40, n)
    s["hiv_positive"] = _bern(rng, 0.001, n)
    s["primary_immunodeficiency"] = _bern(rng, 0.002, n)
    s["anaphylaxis_history"] = _bern(rng, 0.005, n)
    return s


def _draw_substance_abuse(
    rng: np.random.Generator, n: int, ref: np.datetime64
) -> dict[str, np.ndarray]:
    """Substance abuse: current implies ever, with a date in the last month."""
    ever = _bern(rng, 0.015, n)
    current = ever & _bern(rng, 0.2, n)
    days = np.where(current, rng.uniform(1, 30, n), rng.uniform(30, 3650, n))
    return _exposure("substance_abuse", ever, days, ref) | {
        "substance_abuse_current": current
    }


def _draw_investigational_agents(
    rng: np.random.Generator, n: int, ref: np.datetime64
) -> dict[str, np.ndarray]:
    """Investigational biologic and non-biologic agents (half-life in days)."""
    bio = _bern(rng, 0.01, n)
    agents = _exposure("investigational_biologic", bio, rng.uniform(14, 1500, n), ref)
    nonbio = _bern(rng, 0.01, n)
    agents["investigational_nonbiologic_half_life_days"] = np.where(
        nonbio, np.round(rng.uniform(0.2, 20.0, n), 1), np.nan
    )
    return agents | _exposure(
        "investigational_nonbiologic", nonbio, rng.uniform(7, 730, n), ref
    )


def _draw_live_vaccines(
    rng: np.random.Generator, t: Mapping[str, np.ndarray], ref: np.datetime64
) -> dict[str, np.ndarray]:
    """Live vaccines: mostly childhood doses; 5 % had one in the last 2 years."""
    n = len(t["z"])
    vacc = _bern(rng, 0.90, n)
    adult = _bern(rng, 0.05, n)
    childhood_days = (t["age_years"] - rng.uniform(1.0, 12.0, n)) * DAYS_PER_YEAR
    return _exposure(
        "live_vaccine",
        vacc,
        np.where(adult, rng.uniform(1, 730, n), childhood_days),
        ref,
    )


# --- stage 4: recording (noise, assay, missingness) -----------------------------------
_NOISE_CV = {"c3_g_l": 0.07, "c4_g_l": 0.07, "creatinine_umol_l": 0.07}
_DSDNA_NOISE_CV = 0.25

# Fields that go missing together, with the probability of being missing [A].
_MISSING_GROUPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("igg_g_l", "igg_uln_g_l", "iga_g_l", "iga_uln_g_l"), 0.10),
    (("weight_kg",), 0.05),
    (("height_cm",), 0.10),
    (("urine_protein_g_24h",), 0.10),
    (("antiphospholipid_positive",), 0.10),
    (("anti_sm_positive", "anti_rnp_positive", "anti_ssa_positive"), 0.05),
    (("crp_mg_l",), 0.08),
    (("esr_mm_h",), 0.05),
    (("c4_g_l",), 0.03),
    (
        (
            "urine_rbc_per_hpf",
            "urine_wbc_per_hpf",
            "urine_rbc_with_menses_or_infection",
            "urine_wbc_with_infection",
            "urine_cellular_casts",
        ),
        0.03,
    ),
    (("c3_g_l",), 0.02),
    (("anti_dsdna_iu_ml",), 0.02),
    (("albumin_g_l",), 0.03),
    (("alt_u_l", "alt_uln_u_l", "ast_u_l", "ast_uln_u_l"), 0.02),
    (("sledai2k_nonrenal",), 0.02),
    (("hiv_positive",), 0.05),
    (("hbsag_positive", "hbcab_positive"), 0.03),
    (
        (
            "leukocytes_10e9_l",
            "leukocytes_uln_10e9_l",
            "lymphocytes_10e9_l",
            "hemoglobin_g_l",
            "platelets_10e9_l",
        ),
        0.01,
    ),
    (("creatinine_umol_l", "creatinine_uln_umol_l"), 0.01),
    (("disease_duration_years",), 0.01),
)


def _record(
    truth: Mapping[str, np.ndarray],
    facts: Mapping[str, np.ndarray],
    noise_rng: np.random.Generator,
    missing_rng: np.random.Generator,
    shift: PopulationShift,
    measurement_noise: bool,
    missing_values: bool = True,
) -> dict[str, np.ndarray]:
    """Recorded values: truth + facts, then noise, assay scale and missingness."""
    rec: dict[str, np.ndarray] = {}
    specs = field_specs()
    for source in (truth, facts):
        for name, values in source.items():
            if name in specs:
                rec[name] = values
    n = len(truth["z"])
    male = truth["male"]

    # Noise is drawn whether or not it is applied, so the stream never changes.
    for name, cv in _NOISE_CV.items():
        factor = np.exp(noise_rng.normal(0.0, cv, n))
        if measurement_noise:
            rec[name] = rec[name] * factor
    dsdna_factor = np.exp(noise_rng.normal(0.0, _DSDNA_NOISE_CV, n))
    dsdna = truth["anti_dsdna_iu_ml"] * shift.anti_dsdna_assay_scale
    rec["anti_dsdna_iu_ml"] = dsdna * dsdna_factor if measurement_noise else dsdna

    rec["acr_renal_disorder"] = np.zeros(n, dtype=bool)
    rec.update(_kidney_history(rec))
    rec.update(_dose_dates(rec))
    rec["sex"] = np.where(male, "male", "female").astype(object)
    rec["alt_uln_u_l"] = np.full(n, ALT_ULN_U_L)
    rec["ast_uln_u_l"] = np.full(n, AST_ULN_U_L)
    rec["creatinine_uln_umol_l"] = np.where(
        male, CREATININE_ULN_UMOL_L["male"], CREATININE_ULN_UMOL_L["female"]
    )
    rec["igg_uln_g_l"] = np.full(n, IGG_ULN_G_L)
    rec["iga_uln_g_l"] = np.full(n, IGA_ULN_G_L)
    rec["leukocytes_uln_10e9_l"] = np.full(n, LEUKOCYTES_ULN_10E9_L)

    # Keep every value inside the record's physiological range.
    for name, values in list(rec.items()):
        spec = specs[name]
        if spec.kind in ("float", "int") and spec.ge is not None:
            rec[name] = np.clip(values.astype(np.float64), spec.ge, spec.le)

    return _make_missing(rec, missing_rng) if missing_values else rec


def _kidney_history(rec: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Kidney history as a record holds it: a biopsy-confirmed LN is a diagnosis of
    LN (its date not recorded); no earlier abnormal urinalysis is simulated."""
    biopsy = rec["kidney_biopsy_confirmed"].astype(bool)
    n = len(biopsy)
    return {
        "lupus_nephritis_diagnosis_ever": biopsy,
        "lupus_nephritis_diagnosis_date": np.full(n, np.datetime64("NaT"), "M8[D]"),
        "lupus_nephritis_diagnosis_source": np.where(biopsy, "kidney_biopsy", None),
        "abnormal_urinalysis_ever": np.zeros(n, dtype=bool),
        "abnormal_urinalysis_last_date": np.full(n, np.datetime64("NaT"), "M8[D]"),
    }


def _dose_dates(rec: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each drug of the regimen at its dose since the regimen settled."""
    since = rec["soc_regimen_stable_since"]
    never = np.datetime64("NaT")
    return {
        f"{drug}_dose_unchanged_since": np.where(on.astype(bool), since, never)
        for drug, on in (
            ("prednisone", rec["prednisone_mg_day"] > 0),
            ("hydroxychloroquine", rec["hydroxychloroquine_current"]),
            ("immunosuppressant", rec["immunosuppressant_current"]),
        )
    }


def _make_missing(
    rec: dict[str, np.ndarray], missing_rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Values go missing (§8.6): None for flags, NaT for dates, NaN otherwise."""
    n = len(rec["sex"])
    missing: dict[str, BoolArray] = {}
    for fields, p in _MISSING_GROUPS:
        gone = missing_rng.random(n) < p
        for name in fields:
            missing[name] = missing.get(name, np.zeros(n, dtype=bool)) | gone
    # Anti-C1q / anti-nucleosome are ordered when the recorded serology looks active:
    # missing at random given observed values, which rise with latent activity.
    looks_active = 1.1 * (rec["anti_dsdna_iu_ml"] >= 100.0) + 0.9 * (
        rec["c3_g_l"] < 0.9
    )
    p_measured = expit(-1.0 + looks_active)
    for name in ("anti_c1q_positive", "anti_nucleosome_positive"):
        missing[name] = missing_rng.random(n) >= p_measured
    for name, gone in missing.items():
        values = rec[name]
        if values.dtype == bool:
            values = values.astype(object)
            values[gone] = None
        elif values.dtype.kind == "M":
            values = np.where(gone, np.datetime64("NaT"), values)
        else:
            values = np.where(gone, np.nan, values)
        rec[name] = values
    return rec


# --- assembly -------------------------------------------------------------------------


#: Facts no record holds before the screening visit: always missing.
_SETTLED_AT_VISIT = ("consent_signed", "contraception_agreed")


def _resolve_shift(shift: str | PopulationShift) -> PopulationShift:
    if isinstance(shift, PopulationShift):
        return shift
    try:
        return SHIFTS[shift]
    except KeyError:
        raise ValueError(
            f"unknown shift {shift!r}; choose one of {sorted(SHIFTS)} or pass a "
            "PopulationShift"
        ) from None


def _birth_dates(
    age_years: FloatArray, ref: np.datetime64
) -> tuple[np.ndarray, FloatArray]:
    """Dates of birth and the ages (y) at ``ref`` they imply, so the two agree."""
    # The day count is kept inside 18-75 y so rounding cannot make a 17.999-year-old.
    age_days = np.clip(
        np.round(age_years * DAYS_PER_YEAR),
        np.ceil(18.0 * DAYS_PER_YEAR),
        np.floor(75.0 * DAYS_PER_YEAR),
    )
    dob = ref - age_days.astype("int64").astype("timedelta64[D]")
    return dob, (ref - dob).astype(np.float64) / DAYS_PER_YEAR


def _patient_ids(seed: int, n: int) -> NDArray[np.object_]:
    """``SYN-{seed}-000001`` …, zero-padded to at least six digits."""
    width = max(6, len(str(n)))
    return np.array(
        [f"SYN-{seed}-{i:0{width}d}" for i in range(1, n + 1)], dtype=object
    )


def _record_table(rec: Mapping[str, np.ndarray], n: int) -> pd.DataFrame:
    """Every ``PatientRecord`` field as a column of its schema dtype."""
    columns: dict[str, pd.Series] = {}
    for name, spec in field_specs().items():
        dtype = PANDAS_DTYPES[spec.kind]
        if name in _SETTLED_AT_VISIT:
            columns[name] = pd.Series(pd.NA, index=range(n), dtype=dtype)
        elif spec.kind == "int":
            # Through nullable floats so that NaN becomes <NA>, not an error.
            counts = np.round(rec[name].astype(np.float64))
            columns[name] = pd.Series(counts).astype("Float64").astype(dtype)
        else:
            columns[name] = pd.Series(rec[name]).astype(dtype)
    return pd.DataFrame(columns)


def generate_cohort(
    n: int = 20_000,
    seed: int = 0,
    incidence: float = 0.10,
    shift: str | PopulationShift = "none",
    reference_date: date = REFERENCE_DATE,
    measurement_noise: bool = True,
    small_terms: bool = False,
    missing_values: bool = True,
) -> pd.DataFrame:
    """A synthetic screening cohort with known 2-year LN risk (clinical.md §8).

    Args:
        n: number of patients (rows), >= 1.
        seed: seed of ``np.random.default_rng``; same arguments give the same frame.
        incidence: mean true 2-year risk of the BASE population (beta0 is solved for
            it once and reused for every shift; §8.1 base case 0.10, range 0.08–0.15).
        shift: a name in :data:`SHIFTS` or a :class:`PopulationShift`.
        reference_date: the screening date; ages, ``date_of_birth`` and every
            ``*_last_date`` are relative to it.
        measurement_noise: add lab noise to the recorded C3, C4, creatinine and
            anti-dsDNA. The outcome always uses the true values.
        small_terms: include the "optional small terms" of §8.4 in the truth model.
        missing_values: let values go missing as §8.6 describes; False records
            every value (complete records, as the gate benchmark needs). Every other
            column is the same either way.

    Returns:
        One row per patient: every ``PatientRecord`` field (schema dtypes), then
        ``ln_within_2y`` (Int64 0/1), ``true_risk_2y`` (float, 0–1) and annotations
        ``dgp_latent_activity`` (Z), ``dgp_linear_predictor`` (logit of the true
        risk) and ``dgp_prior_kidney_involvement`` (the clinical truth of kidney
        involvement at baseline, recorded or not). ``df.attrs`` holds the seed,
        shift name, beta0, incidence, small-terms switch and reference date (ISO).
        No trial criterion is applied (see :func:`synthetic.checks.exclusions_met`).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    pop = _resolve_shift(shift)
    beta0 = solve_intercept(float(incidence), bool(small_terms))
    ref = np.datetime64(reference_date, "D")
    truth_rng, facts_rng, outcome_rng, noise_rng, missing_rng = np.random.default_rng(
        seed
    ).spawn(5)

    truth = _draw_population(truth_rng, n, pop)
    facts = _draw_facts(facts_rng, truth, ref)
    lp = linear_predictor(_truth_covariates(truth), small_terms, beta0)
    risk = expit(lp)
    outcome = outcome_rng.random(n) < risk
    rec = _record(
        truth, facts, noise_rng, missing_rng, pop, measurement_noise, missing_values
    )

    rec["date_of_birth"], rec["age_years"] = _birth_dates(truth["age_years"], ref)
    rec["patient_id"] = _patient_ids(seed, n)
    df = _record_table(rec, n)
    df[OUTCOME_COLUMN] = pd.array(outcome.astype(np.int64), dtype="Int64")
    df[TRUE_RISK_COLUMN] = risk
    df[f"{SYNTHETIC_PREFIX}latent_activity"] = truth["z"]
    df[f"{SYNTHETIC_PREFIX}linear_predictor"] = lp
    df[f"{SYNTHETIC_PREFIX}prior_kidney_involvement"] = kidney_involved(truth)
    df.attrs.update(
        {
            "dgp_seed": seed,
            "dgp_shift": pop.name,
            "dgp_beta0": beta0,
            "dgp_incidence_base": float(incidence),
            "dgp_small_terms": bool(small_terms),
            "dgp_reference_date": str(ref),
        }
    )
    return df


# --- a cohort as a data source -------------------------------------------------------
SOURCE_SCHEME = "synthetic"


def cohort_source(
    n: int, seed: int, incidence: float = 0.10, shift: str = "none"
) -> str:
    """The data source recorded for ``generate_cohort(n, seed, incidence, shift)``.

    A description of the generator call from which anyone can regenerate the same
    cohort (:func:`cohort_from_source`); runs record it instead of a file path.
    """
    return (
        f"{SOURCE_SCHEME}://clinical.md-s8?n={n}&seed={seed}"
        f"&incidence={incidence}&shift={shift}"
    )


def cohort_from_source(source: str) -> pd.DataFrame:
    """Regenerate the cohort a ``synthetic://`` source describes.

    Raises:
        ValueError: not a synthetic source, or a parameter is missing.
    """
    parsed = urlparse(source)
    if parsed.scheme != SOURCE_SCHEME:
        raise ValueError(f"not a {SOURCE_SCHEME}:// data source: {source!r}")
    query = parse_qs(parsed.query)
    try:
        return generate_cohort(
            n=int(query["n"][0]),
            seed=int(query["seed"][0]),
            incidence=float(query["incidence"][0]),
            shift=query["shift"][0],
        )
    except (KeyError, IndexError) as exc:
        raise ValueError(f"{source!r} lacks the generator argument {exc}") from None
