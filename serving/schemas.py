"""Request and response envelopes; patient fields come from data_schema."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from data_schema import GateState, Status, Verdict

DISCLAIMER = (
    "Research screening support for trial NCT05585671. Not a diagnostic device: "
    "a clinician decides eligibility."
)
CRITERIA_VERSION_HELP = (
    "Eligibility criteria loaded by the service: <trial>@<version>+sha256:<hash of "
    "the criteria file>."
)
GATE_HELP = (
    "Where the risk stands against the gate: above (auto-passed), below "
    "(auto-excluded) or undetermined (reviewed: the risk sits in the review zone "
    "around the gate, or the missing predictors could carry it across an edge)."
)
RANGE_HELP = (
    "Lowest / highest plausible 2-year risk given the predictors that are not "
    "recorded (both equal risk_2y when every predictor is recorded)."
)
TO_OBTAIN_HELP = (
    "The missing predictors whose measurement could settle an undetermined gate, "
    "most decisive first."
)


class RiskPrediction(BaseModel):
    """The model's 2-year risk for one patient and the trial's risk gate."""

    model_config = ConfigDict(protected_namespaces=())

    patient_id: str | None = Field(
        description="The patient_id sent in the request (null if none was sent)."
    )
    risk_2y: float = Field(
        ge=0,
        le=1,
        description="Calibrated probability of new-onset lupus nephritis within 24 "
        "months (0-1).",
    )
    gate: GateState = Field(description=GATE_HELP)
    gate_threshold: float = Field(description="The gate: risk must exceed this.")
    risk_low: float = Field(ge=0, le=1, description=RANGE_HELP)
    risk_high: float = Field(ge=0, le=1, description=RANGE_HELP)
    gate_to_obtain: list[str] = Field(description=TO_OBTAIN_HELP)
    model_name: str = Field(description="Registered model name.")
    model_version: str = Field(description="Registered model version served.")
    criteria_version: str = Field(description=CRITERIA_VERSION_HELP)


class Contribution(BaseModel):
    """One predictor's push on this patient's risk."""

    feature: str = Field(description="Model input (PatientRecord field, or 'male').")
    description: str = Field(description="What the field is, in clinical words.")
    unit: str
    value: float | None = Field(description="The patient's value (null = missing).")
    log_odds: float = Field(
        description="Additive contribution to the log-odds of 2-year LN (SHAP)."
    )
    direction: str = Field(description="'raises' or 'lowers' the risk.")


class Explanation(BaseModel):
    """The top contributors to one patient's risk."""

    model_config = ConfigDict(protected_namespaces=())

    patient_id: str | None
    risk_2y: float
    baseline_log_odds: float = Field(description="The model's average log-odds.")
    contributions: list[Contribution]
    model_name: str
    model_version: str
    criteria_version: str = Field(description=CRITERIA_VERSION_HELP)


class ModelInfo(BaseModel):
    """Which model answers, where it came from and how good it was."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    alias: str | None
    kind: str
    mlflow_run_id: str | None
    data_digest: str | None
    calibration: str
    gate_threshold: float
    review_zone: list[float] | None = Field(
        description="[exclude edge, pass edge] of the review zone on the risk scale, "
        "for the gate in force: auto-excluded at or below the first, auto-passed "
        "above the second."
    )
    gate_method: str | None = Field(description="How the three-valued gate decides.")
    headline_metrics: dict[str, float] = Field(
        description="Held-out metrics of the training run (AUROC, calibration, gate)."
    )
    criteria_trial: str = Field(description="Trial whose criteria are loaded.")
    criteria_file: str = Field(description="File name of the criteria YAML.")
    criteria_version: str = Field(description=CRITERIA_VERSION_HELP)
    n_criteria: int = Field(description="Inclusion and exclusion criteria loaded.")
    disclaimer: str = DISCLAIMER


class CriterionResult(BaseModel):
    """The verdict on one criterion for one patient, with what it rests on."""

    id: str = Field(description="Stable criterion id from the criteria file.")
    kind: Literal["inclusion", "exclusion"]
    verdict: Verdict = Field(
        description="met / not_met / unknown (a needed datum is missing) / "
        "needs_judgment (only the investigator can decide). For an exclusion, "
        "'met' means the patient HAS the excluding condition."
    )
    reason: str = Field(description="One sentence a coordinator can read.")
    missing: list[str] = Field(
        default_factory=list, description="Fields whose absence leaves it unknown."
    )
    evidence: dict[str, Any] = Field(
        default_factory=dict,
        description="Fields, values, dates and derived values the verdict used.",
    )
    reading: str | None = Field(
        default=None,
        description="The reading of an ambiguous registry sentence applied, e.g. "
        "'b-cell-history: washout (pinned)'; null when the text is clear.",
    )


class ScreeningDecision(BaseModel):
    """One patient screened for NCT05585671: the risk gate first, then every rule."""

    model_config = ConfigDict(protected_namespaces=())

    patient_id: str | None = Field(description="The patient_id sent, if any.")
    status: Status = Field(
        description="ineligible (the gate is below, or a criterion fails) / "
        "needs_review (no criterion fails but data are missing, or the gate is "
        "undetermined) / eligible (to be confirmed at the screening visit). Missing "
        "data never gives eligible, nor ineligible by the gate alone."
    )
    reasons: list[str] = Field(description="Why, most decisive first.")
    missing_fields: list[str] = Field(
        description="What to obtain before a decision (needs_review)."
    )
    to_confirm: list[str] = Field(
        description="Criterion ids only the screening visit can settle (investigator "
        "judgment; consent or contraception not yet recorded)."
    )
    risk_2y: float = Field(ge=0, le=1, description="2-year LN risk (0-1).")
    gate_threshold: float = Field(description="The gate: risk must exceed this.")
    gate: GateState = Field(description=GATE_HELP)
    risk_low: float = Field(ge=0, le=1, description=RANGE_HELP)
    risk_high: float = Field(ge=0, le=1, description=RANGE_HELP)
    gate_to_obtain: list[str] = Field(description=TO_OBTAIN_HELP)
    screening_date: date = Field(description="Day 0 for ages and wash-out windows.")
    verdicts: list[CriterionResult] = Field(description="Every criterion, in order.")
    model_name: str
    model_version: str
    criteria_version: str = Field(description=CRITERIA_VERSION_HELP)
    disclaimer: str = DISCLAIMER


class PatientScreening(BaseModel):
    """One patient's line of a batch screening (verdicts without evidence)."""

    patient_id: str | None
    status: Status
    reasons: list[str] = Field(
        description="The gate's reason, or the failing/undecided criterion ids."
    )
    missing_fields: list[str]
    to_confirm: list[str]
    risk_2y: float = Field(ge=0, le=1)
    gate: GateState = Field(description=GATE_HELP)
    risk_low: float = Field(ge=0, le=1, description=RANGE_HELP)
    risk_high: float = Field(ge=0, le=1, description=RANGE_HELP)
    gate_to_obtain: list[str] = Field(description=TO_OBTAIN_HELP)
    verdicts: dict[str, Verdict] = Field(description="Criterion id → verdict.")


class AttritionStep(BaseModel):
    """One step of the attrition table of a request.

    Counts are not suppressed here: the same response holds every patient's
    decision. Suppress small cells before sharing (``lnrisk screen`` does).
    """

    step: str = Field(
        description="'screened', the risk gate (its unknown count: undetermined "
        "gates), then criterion ids."
    )
    kind: str = Field(description="gate / inclusion / exclusion ('' for step 0).")
    remaining: int = Field(description="Not yet ruled out after this step.")
    ruled_out_here: int = Field(description="Ruled out by this step.")
    fails: int = Field(description="Fail this criterion, among everyone.")
    unknown: int = Field(description="Unknown on this criterion, among everyone.")
    needs_judgment: int


class BatchScreening(BaseModel):
    """Many patients screened at once, and the attrition of the whole request."""

    model_config = ConfigDict(protected_namespaces=())

    screening_date: date
    patients: list[PatientScreening] = Field(description="In request order.")
    attrition: list[AttritionStep]
    counts: dict[Status, int] = Field(description="Patients per decision.")
    model_name: str
    model_version: str
    criteria_version: str = Field(description=CRITERIA_VERSION_HELP)
    disclaimer: str = DISCLAIMER


class NoOp(BaseModel):
    """The framework floor: the request was parsed and validated, nothing else."""

    ok: bool = True
