"""The BentoML service that serves the champion LN risk model to screening tools.

Research screening support for NCT05585671 — not a diagnostic device.

Start it with ``bentoml serve serving.service:LNRiskService`` after ``lnrisk
import-model`` has copied the champion into the BentoML model store.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import bentoml
import numpy as np
from pydantic import Field

from data_schema import (
    PatientRecord,
    feature_description,
    model_features,
    records_to_features,
)
from riskmodel import LNRiskModel
from serving.schemas import (
    DISCLAIMER,
    Contribution,
    Explanation,
    ModelInfo,
    RiskPrediction,
)
from serving.security import APIKeyMiddleware, AuditLog, install_log_redaction

BENTO_MODEL_TAG = "ln-risk:latest"
MAX_PATIENTS_PER_REQUEST = 10_000
HEADLINE = ("auroc", "auroc_ci_low", "auroc_ci_high", "cal_slope", "ici", "brier")

Patients = Annotated[
    list[PatientRecord],
    Field(
        min_length=1,
        max_length=MAX_PATIENTS_PER_REQUEST,
        description="One or more patient records (see the PatientRecord schema for "
        "every field's unit and valid range).",
    ),
]


@bentoml.service(
    name="ln-risk-service",
    workers=1,
    traffic={"timeout": 60},
    logging={"access": {"enabled": False}},
    description=DISCLAIMER,
)
class LNRiskService:
    """2-year new-onset lupus nephritis risk for the NCT05585671 gate."""

    # Declared unconditionally as a class attribute so `bentoml build` packages it.
    bento_model = bentoml.models.BentoModel(BENTO_MODEL_TAG)

    def __init__(self) -> None:
        self.model: LNRiskModel | None = None
        install_log_redaction()
        # On an instance, BentoML has already resolved the class attribute to the
        # stored model (a bentoml.Model); a missing model fails startup right here.
        stored = self.bento_model
        self.model = LNRiskModel.load(stored.path, expected_features=model_features())
        self.model.set_threads(1)
        self.meta = dict(stored.info.metadata)
        self.model_name = str(self.meta.get("mlflow_model", stored.tag.name))
        self.model_version = str(self.meta.get("mlflow_version", stored.tag.version))
        self.audit = AuditLog()

    def __is_ready__(self) -> bool:
        return self.model is not None

    @bentoml.api
    def predict_risk(
        self, patients: Patients, ctx: bentoml.Context
    ) -> list[RiskPrediction]:
        """2-year risk of new-onset lupus nephritis and the > 50 % gate, per patient.

        Research screening support, not a diagnostic device. Missing values are
        allowed (null or absent); out-of-range, wrongly typed or unknown fields are
        rejected with HTTP 400 naming the field. ``needs_review`` is true when the
        risk's uncertainty band straddles the gate.
        """
        results = self._predict(patients)
        self._audit(
            ctx,
            "predict_risk",
            patients,
            n_passes_gate=sum(r.passes_gate for r in results),
            n_needs_review=sum(r.needs_review for r in results),
        )
        return results

    @bentoml.api
    def explain(
        self,
        patient: PatientRecord,
        ctx: bentoml.Context,
        top: Annotated[int, Field(ge=1, le=len(model_features()))] = 8,
    ) -> Explanation:
        """The predictors that push this patient's risk up or down the most (SHAP).

        Contributions are additive on the log-odds scale; research screening
        support, not a diagnostic device.
        """
        assert self.model is not None
        features = records_to_features([patient])
        contribs = self.model.contributions(features)[0]
        order = np.argsort(-np.abs(contribs[:-1]))[:top]
        items = []
        for j in order:
            name = self.model.feature_names[j]
            description, unit = feature_description(name)
            value = features[0, j]
            items.append(
                Contribution(
                    feature=name,
                    description=description,
                    unit=unit,
                    value=None if np.isnan(value) else float(value),
                    log_odds=float(contribs[j]),
                    direction="raises" if contribs[j] > 0 else "lowers",
                )
            )
        self._audit(ctx, "explain", [patient])
        return Explanation(
            patient_id=patient.patient_id,
            risk_2y=float(self.model.predict_proba(features)[0]),
            baseline_log_odds=float(contribs[-1]),
            contributions=items,
            model_name=self.model_name,
            model_version=self.model_version,
        )

    @bentoml.api
    def model_info(self) -> ModelInfo:
        """The model being served: name, version, provenance and held-out quality."""
        assert self.model is not None
        metrics = self.meta.get("test_metrics", {})
        band = self.model.band
        return ModelInfo(
            model_name=self.model_name,
            model_version=self.model_version,
            alias=self.meta.get("mlflow_alias"),
            kind=self.model.kind,
            mlflow_run_id=self.meta.get("mlflow_run_id"),
            data_digest=self.meta.get("data_digest"),
            calibration=self.model.calibration.method,
            gate_threshold=self.model.gate_threshold,
            band_level=None if band is None else band.level,
            headline_metrics={k: float(metrics[k]) for k in HEADLINE if k in metrics},
        )

    # Shared logic lives in plain methods: one @bentoml.api must never call another.
    def _predict(self, patients: list[PatientRecord]) -> list[RiskPrediction]:
        assert self.model is not None
        features = records_to_features(patients)
        risks = self.model.predict_proba(features)
        gate = self.model.gate_threshold
        band = self.model.predict_band(features)
        lows, highs = band if band is not None else ([None] * len(risks),) * 2
        return [
            RiskPrediction(
                patient_id=p.patient_id,
                risk_2y=float(r),
                passes_gate=bool(r > gate),
                gate_threshold=gate,
                risk_band_low=None if lo is None else float(lo),
                risk_band_high=None if hi is None else float(hi),
                needs_review=lo is not None and bool(lo <= gate < hi),
                model_name=self.model_name,
                model_version=self.model_version,
            )
            for p, r, lo, hi in zip(patients, risks, lows, highs, strict=True)
        ]

    def _audit(
        self,
        ctx: bentoml.Context,
        endpoint: str,
        patients: list[PatientRecord],
        **outcome: int,
    ) -> None:
        request_id = ctx.request.headers.get("x-request-id") or uuid.uuid4().hex
        self.audit.write(
            request_id=request_id[:64],
            endpoint=endpoint,
            model_name=self.model_name,
            model_version=self.model_version,
            criteria_version=None,
            n_patients=len(patients),
            input_sha256=self.audit.input_hash(
                [p.model_dump(mode="json") for p in patients]
            ),
            **outcome,
        )


LNRiskService.add_asgi_middleware(APIKeyMiddleware)
