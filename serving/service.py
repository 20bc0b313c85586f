"""The BentoML service that serves the champion LN risk model to screening tools.

Research screening support for NCT05585671 — not a diagnostic device.

Start it with ``bentoml serve serving.service:LNRiskService`` after ``lnrisk
import-model`` has copied the champion into the BentoML model store.
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import Field

from data_schema import PatientRecord, model_features, records_to_features
from riskmodel import LNRiskModel
from serving.schemas import DISCLAIMER, RiskPrediction

BENTO_MODEL_TAG = "ln-risk:latest"
MAX_PATIENTS_PER_REQUEST = 10_000

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
        # On an instance, BentoML has already resolved the class attribute to the
        # stored model (a bentoml.Model); a missing model fails startup right here.
        stored = self.bento_model
        self.model = LNRiskModel.load(stored.path, expected_features=model_features())
        self.model.set_threads(1)
        meta = stored.info.metadata
        self.model_name = str(meta.get("mlflow_model", stored.tag.name))
        self.model_version = str(meta.get("mlflow_version", stored.tag.version))

    def __is_ready__(self) -> bool:
        return self.model is not None

    @bentoml.api
    def predict_risk(self, patients: Patients) -> list[RiskPrediction]:
        """2-year risk of new-onset lupus nephritis and the > 50 % gate, per patient.

        Research screening support, not a diagnostic device. Missing values are
        allowed (null or absent); out-of-range, wrongly typed or unknown fields are
        rejected with HTTP 400 naming the field.
        """
        return self._predict(patients)

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
