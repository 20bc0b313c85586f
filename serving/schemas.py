"""Request and response envelopes; patient fields come from data_schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DISCLAIMER = (
    "Research screening support for trial NCT05585671. Not a diagnostic device: "
    "a clinician decides eligibility."
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
    passes_gate: bool = Field(
        description="True when risk_2y is above the gate threshold (the trial admits "
        "risk > 50 %)."
    )
    gate_threshold: float = Field(description="The gate: risk must exceed this.")
    risk_band_low: float | None = Field(
        default=None,
        description="Lower end of the model's uncertainty band for risk_2y (0-1); "
        "null if the model has no band.",
    )
    risk_band_high: float | None = Field(
        default=None, description="Upper end of the uncertainty band (0-1)."
    )
    needs_review: bool = Field(
        default=False,
        description="True when the band straddles the gate (low ≤ gate < high): the "
        "risk cannot be told apart from the threshold, so a clinician must review "
        "instead of the gate deciding.",
    )
    model_name: str = Field(description="Registered model name.")
    model_version: str = Field(description="Registered model version served.")


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
    band_level: float | None
    headline_metrics: dict[str, float] = Field(
        description="Held-out metrics of the training run (AUROC, calibration, gate)."
    )
    criteria_version: str | None = Field(
        default=None, description="Eligibility criteria version (none served yet)."
    )
    disclaimer: str = DISCLAIMER
