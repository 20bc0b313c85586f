"""The BentoML service that serves the champion LN risk model to screening tools.

Research screening support for NCT05585671 — not a diagnostic device.

Start it with ``bentoml serve serving.service:LNRiskService`` after ``lnrisk
import-model`` has copied the champion into the BentoML model store.

Environment:

* ``LNRISK_CRITERIA`` — criteria YAML to screen with (default: NCT05585671's);
* ``LNRISK_READINGS`` — an overlay YAML pinning readings of ambiguous criteria
  (``readings: {b-cell-history: washout}``); part of the criteria version;
* ``LNRISK_MODEL`` — the BentoML model tag to serve (default ``ln-risk:latest``);
* ``LNRISK_WORKERS`` — worker processes (default 2: on a 2-core machine two workers
  with one XGBoost thread each beat one worker, and two threads each oversubscribe);
* ``LNRISK_API_KEY``, ``LNRISK_AUDIT_LOG``, ``LNRISK_AUDIT_SALT`` — see
  :mod:`serving.security`; ``LNRISK_MAX_BODY_MB`` — request body limit (default 32);
* ``LNRISK_CDS_JWKS``, ``LNRISK_CDS_ISSUERS``, ``LNRISK_CDS_BASE_URL`` — CDS Hooks
  clients' signed JWTs (:mod:`serving.cds_auth`);
* ``LNRISK_CDS_FHIR_SERVERS``, ``LNRISK_CDS_FHIR_SECONDS`` — the FHIR servers a
  ``patient-view`` call's missing prefetch may be read from, and the time budget
  (:mod:`serving.fhir_client`);
* ``LNRISK_DRAIN_SECONDS`` — on SIGTERM, not ready but serving this long before
  stopping (default 5; :mod:`serving.drain`).
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import uuid
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import bentoml
import numpy as np
import pydantic_core
from bentoml.exceptions import InvalidArgument
from pydantic import Field
from starlette.responses import Response

from data_schema import (
    GATE_STATES,
    Day,
    PatientColumns,
    PatientRecord,
    columns_to_frame,
    feature_description,
    model_features,
    records_to_features,
    records_to_frame,
)
from eligibility import (
    DEFAULT_CRITERIA_PATH,
    Decision,
    Screened,
    Table,
    attrition_table,
    load_criteria,
    screen_patients,
)
from serving import cds_hooks
from serving.connections import ConnectionRecycleMiddleware
from serving.drain import Drain
from serving.fhir import (
    FhirBundle,
    FhirScreening,
    fhir_answer,
    read_bundle,
    warm_fhir_models,
)
from serving.schemas import (
    DISCLAIMER,
    BatchScreening,
    Contribution,
    Explanation,
    ModelInfo,
    NoOp,
    RiskPrediction,
    ScreeningDecision,
)
from serving.security import (
    BODY_DIGEST_KEY,
    APIKeyMiddleware,
    AuditLog,
    BodySizeLimitMiddleware,
    ContentTypeMiddleware,
    install_log_redaction,
)

if TYPE_CHECKING:
    from riskmodel import LNRiskModel

#: The BentoML model served; pin a version (``ln-risk:<version>``) to roll back.
BENTO_MODEL_TAG = os.environ.get("LNRISK_MODEL") or "ln-risk:latest"
MAX_PATIENTS_PER_REQUEST = 10_000
WORKERS = int(os.environ.get("LNRISK_WORKERS", "2"))

Patients = Annotated[
    list[PatientRecord],
    Field(
        min_length=1,
        max_length=MAX_PATIENTS_PER_REQUEST,
        description="One or more patient records (see the PatientRecord schema for "
        "every field's unit and valid range).",
    ),
]
PatientTable = Annotated[
    PatientColumns,
    Field(
        description="The same patients as columns: each PatientRecord field a list "
        "with one entry per patient (null = not recorded); sex is required."
    ),
]
ScreeningDate = Annotated[
    Day | None,
    Field(
        description="Day 0 for ages and every wash-out window (YYYY-MM-DD, from "
        "1900-01-01 to 2999-12-31); default: the server's current date.",
        ge=date(1900, 1, 1),
        le=date(2999, 12, 31),
    ),
]


class StartupError(RuntimeError):
    """The service cannot start: says what is missing and how to provide it."""


@bentoml.service(
    name="ln-risk-service",
    workers=WORKERS,
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
        self.criteria = None
        install_log_redaction()
        self.criteria_path = Path(
            os.environ.get("LNRISK_CRITERIA") or DEFAULT_CRITERIA_PATH
        )
        try:
            readings = os.environ.get("LNRISK_READINGS") or None
            self.criteria = load_criteria(self.criteria_path, readings)
        except Exception as exc:
            raise StartupError(
                f"cannot load the eligibility criteria {self.criteria_path} "
                f"(LNRISK_CRITERIA, LNRISK_READINGS): {exc}"
            ) from exc
        self.gate = self.criteria.risk_gate.threshold
        try:
            # On an instance BentoML resolves the class attribute to the stored model.
            stored = self.bento_model
        except Exception as exc:
            raise StartupError(
                f"no model {BENTO_MODEL_TAG!r} in the BentoML store "
                f"({os.environ.get('BENTOML_HOME', '~/bentoml')}): run `lnrisk "
                "import-model` (or `make serve`, which trains one if none exists)"
            ) from exc
        # Imported here, not at module level: `bentoml serve` imports this module in
        # its supervisor process too, which never scores; XGBoost (with the
        # scikit-learn and SciPy it pulls in) is ~2 s of import.
        from riskmodel import LNRiskModel

        self.model = LNRiskModel.load(stored.path, expected_features=model_features())
        self.model.set_threads(1)
        # One patient per request: walk the trees with numpy (the same margins bit
        # for bit, ~4x cheaper than a booster call; riskmodel/trees.py). Compiling
        # the eleven boosters takes ~0.5 s, so it runs after start-up; until it
        # lands the boosters answer, with the same numbers.
        compiling = threading.Thread(target=self._compile, name="compile-trees")
        compiling.daemon = True
        compiling.start()
        self.meta = dict(stored.info.metadata)
        self.model_name = str(self.meta.get("mlflow_model", stored.tag.name))
        self.model_version = str(self.meta.get("mlflow_version", stored.tag.version))
        self.audit = AuditLog()
        self.drain = Drain()
        self.drain.install()
        # The FHIR R4B models (thousands of objects) load here rather than on the
        # first CDS Hooks call, so that they are frozen below with the rest.
        warm_fhir_models()
        # Everything loaded so far lives as long as the worker: keep it out of the
        # garbage collector's full passes, which would walk it on every collection.
        gc.freeze()

    def _compile(self) -> None:
        self.model.compile_trees()
        gc.freeze()  # the compiled trees live as long as the worker too

    def __is_ready__(self) -> bool:
        loaded = self.model is not None and self.criteria is not None
        return loaded and not self.drain.draining.is_set()

    @bentoml.api
    def predict_risk(
        self, patients: Patients, ctx: bentoml.Context
    ) -> list[RiskPrediction]:
        """2-year risk of new-onset lupus nephritis and the > 50 % gate, per patient.

        Research screening support, not a diagnostic device. Missing values are
        allowed (null or absent); out-of-range, wrongly typed or unknown fields are
        rejected with HTTP 400 naming the field. ``gate`` is above, below or
        undetermined: undetermined when the risk sits in the review zone or the
        missing predictors could carry it across an edge (``gate_to_obtain`` lists
        what to measure).
        """
        results = self._predict(patients)
        self._audit(ctx, "predict_risk", patients, len(patients), **_gates(results))
        return results

    @bentoml.api(batchable=True, max_batch_size=256, max_latency_ms=1000)
    def predict_risk_batched(
        self, patients: list[PatientRecord]
    ) -> list[RiskPrediction]:
        """``predict_risk`` with adaptive batching, for many concurrent callers.

        BentoML merges concurrent requests into one model call, so the plausible
        completions of missing predictors are scored once for the whole batch.
        Same body and answers as ``predict_risk``; an idle server adds a few
        milliseconds of waiting. Audited once per merged batch. Research screening
        support, not a diagnostic device.
        """
        results = self._predict(patients)
        # a merged batch has no single request behind it
        self._audit(
            None, "predict_risk_batched", patients, len(patients), **_gates(results)
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
        assert self.criteria is not None
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
        self._audit(ctx, "explain", patient, 1)
        return Explanation(
            patient_id=patient.patient_id,
            risk_2y=float(self.model.predict_proba(features)[0]),
            baseline_log_odds=float(contribs[-1]),
            contributions=items,
            model_name=self.model_name,
            model_version=self.model_version,
            criteria_version=self.criteria.criteria_version,
        )

    @bentoml.api
    def model_info(self) -> ModelInfo:
        """The model being served: name, version, provenance and held-out quality."""
        assert self.model is not None
        metrics = self.model.metadata.get("held_out_metrics", {})
        zone = self.model.zone
        return ModelInfo(
            model_name=self.model_name,
            model_version=self.model_version,
            alias=self.meta.get("mlflow_alias"),
            kind=self.model.kind,
            mlflow_run_id=self.meta.get("mlflow_run_id"),
            data_digest=self.meta.get("data_digest"),
            calibration=self.model.calibration.method,
            gate_threshold=self.gate,
            review_zone=None if zone is None else list(zone.edges(self.gate)),
            gate_method=self.model.metadata.get("gate_method"),
            headline_metrics={k: float(v) for k, v in metrics.items()},
            criteria_trial=self.criteria.trial_id,
            criteria_file=self.criteria_path.name,
            criteria_version=self.criteria.criteria_version,
            n_criteria=len(self.criteria.criteria),
        )

    @bentoml.api
    async def screen(
        self,
        patient: PatientRecord,
        ctx: bentoml.Context,
        screening_date: ScreeningDate = None,
    ) -> ScreeningDecision:
        """Screen one patient for NCT05585671: the risk gate, then every criterion.

        Returns the decision (eligible / ineligible / needs_review), the risk, and
        every criterion's verdict with its reason and evidence. A patient with
        missing data gets needs_review (listing what to obtain), never an error and
        never eligible. Research screening support, not a diagnostic device.
        """
        assert self.model is not None and self.criteria is not None
        day = screening_date or date.today()
        table = Table.from_record(patient, day)
        decision = screen_patients(self.model, table, self.criteria).decision(0)
        self._audit(ctx, "screen", patient, 1, **{decision.status: 1})
        return _json_response(self._decision(patient, decision, day))

    @bentoml.api
    def screen_batch(
        self,
        ctx: bentoml.Context,
        patients: Patients | None = None,
        columns: PatientTable | None = None,
        screening_date: ScreeningDate = None,
    ) -> BatchScreening:
        """Screen many patients (a site's registry) and count attrition.

        Send the patients either as ``patients`` (a list of records) or as
        ``columns`` (each field a list with one entry per patient, as
        ``DataFrame.to_dict("list")`` gives; ~5x cheaper to parse for large
        batches), not both; at most 10,000 per request. The same decisions as
        ``screen``, computed column-wise; per patient the verdicts come without
        evidence (call ``screen`` for one patient's evidence). The attrition table
        counts the request's patients step by step in criterion order. Research
        screening support, not a diagnostic device.
        """
        assert self.model is not None and self.criteria is not None
        if (patients is None) == (columns is None):
            raise InvalidArgument(
                "send the patients as either `patients` (a list of records) or "
                "`columns` (field → list of values), not both or neither"
            )
        if columns is not None:
            if columns.n_patients > MAX_PATIENTS_PER_REQUEST:
                raise InvalidArgument(
                    f"columns: {columns.n_patients} patients; at most "
                    f"{MAX_PATIENTS_PER_REQUEST:,} per request"
                )
            frame = columns_to_frame(columns)
            ids = list(columns.column("patient_id"))
        else:
            assert patients is not None
            frame = records_to_frame(patients)
            ids = [p.patient_id for p in patients]
        day = screening_date or date.today()
        screened = screen_patients(
            self.model, Table.from_frame(frame, day), self.criteria
        )
        counts = screened.counts()
        attrition = attrition_table(screened.frame(), self.criteria, min_cell=1)
        sent = patients if patients is not None else columns
        self._audit(ctx, "screen_batch", sent, len(ids), **counts)
        # Serialised once by pydantic-core from plain data: validating ~1,000
        # nested answers we built from typed arrays cost more than screening them.
        # tests/serving check the body against BatchScreening.
        return _json_response(
            {
                "screening_date": day,
                "patients": _batch_results(ids, screened),
                "attrition": attrition.to_dict("records"),
                "counts": counts,
                "model_name": self.model_name,
                "model_version": self.model_version,
                "criteria_version": self.criteria.criteria_version,
                "disclaimer": DISCLAIMER,
            }
        )

    @bentoml.api
    async def screen_fhir(
        self,
        bundle: FhirBundle,
        ctx: bentoml.Context,
        screening_date: ScreeningDate = None,
    ) -> FhirScreening:
        """Screen one patient sent as a FHIR R4 Bundle, like ``screen``.

        The Bundle's resources (one Patient; LOINC-coded Observations, SNOMED CT /
        ICD-10-CM Conditions, RxNorm / ATC medications, CVX immunizations) are
        read with the project's FHIR mapping; a resource with an unknown unit, an
        unmapped code or failing FHIR validation is reported in
        ``mapping_problems`` and the rest is used. Answers ``screen``'s decision,
        the risk as a FHIR ``RiskAssessment``, and the resource behind each field
        (``provenance``; per verdict in ``sources``). Research screening support,
        not a diagnostic device.
        """
        assert self.model is not None and self.criteria is not None
        day = screening_date or date.today()
        reading, patient = read_bundle(bundle, day)
        table = Table.from_record(patient, day)
        decision = screen_patients(self.model, table, self.criteria).decision(0)
        self._audit(ctx, "screen_fhir", patient, 1, **{decision.status: 1})
        body = self._decision(patient, decision, day)
        return _json_response(fhir_answer(body, reading, day))

    @bentoml.api
    async def noop(
        self, patient: PatientRecord, screening_date: ScreeningDate = None
    ) -> NoOp:
        """Parse and validate a patient like ``screen``, then do nothing.

        The framework's own cost per request, for the serving benchmark. Answers
        the way ``screen`` does, so the two differ only by the screening.
        """
        return _json_response(NoOp().model_dump())

    # Shared logic lives in plain methods: one @bentoml.api must never call another.
    def _decision(self, patient: PatientRecord, decision: Decision, day: date) -> dict:
        """The ScreeningDecision body as plain data (serialised once, unvalidated:
        tests/serving check it against the model)."""
        return {
            "patient_id": patient.patient_id,
            "status": decision.status,
            "reasons": decision.reasons,
            "missing_fields": decision.missing_fields,
            "to_confirm": decision.to_confirm,
            "risk_2y": decision.risk,
            "gate_threshold": self.gate,
            "gate": decision.gate,
            "risk_low": decision.risk_range[0],
            "risk_high": decision.risk_range[1],
            "gate_to_obtain": decision.gate_to_obtain,
            "screening_date": day,
            "verdicts": [
                {
                    "id": v.id,
                    "kind": v.kind,
                    "verdict": v.verdict,
                    "reason": v.reason,
                    "missing": v.missing,
                    "evidence": v.evidence,
                    "reading": v.reading,
                }
                for v in decision.verdicts
            ],
            "model_name": self.model_name,
            "model_version": self.model_version,
            "criteria_version": decision.criteria_version,
            "disclaimer": DISCLAIMER,
        }

    def _predict(self, patients: list[PatientRecord]) -> list[RiskPrediction]:
        assert self.model is not None and self.criteria is not None
        # the criteria file's cut, as /screen: an inclusive reading passes a risk
        # exactly at the threshold
        gate = self.model.gate(
            records_to_features(patients), self.criteria.risk_gate.cut
        )
        return [
            RiskPrediction(
                patient_id=p.patient_id,
                risk_2y=float(gate.risk[i]),
                gate=gate.state[i],
                gate_threshold=self.gate,
                risk_low=float(gate.low[i]),
                risk_high=float(gate.high[i]),
                gate_to_obtain=list(gate.to_obtain[i]),
                model_name=self.model_name,
                model_version=self.model_version,
                criteria_version=self.criteria.criteria_version,
            )
            for i, p in enumerate(patients)
        ]

    def _audit(
        self,
        ctx: bentoml.Context | None,
        endpoint: str,
        patients: object,
        n_patients: int,
        **outcome: int,
    ) -> None:
        """One audit line; ``ctx`` None for a merged batch (id ``batch-…``).

        ``patients`` (records or columns) are hashed only when there is no HTTP
        body to hash (a merged batch, a direct Python call).
        """
        if ctx is None:
            request_id = f"batch-{uuid.uuid4().hex}"
        else:
            request_id = ctx.request.headers.get("x-request-id") or uuid.uuid4().hex
        self.audit.write(
            request_id=request_id[:64],
            endpoint=endpoint,
            model_name=self.model_name,
            model_version=self.model_version,
            criteria_version=self.criteria.criteria_version if self.criteria else None,
            n_patients=n_patients,
            input_sha256=self.audit.hash_bytes(self._body_digest(ctx, patients)),
            **outcome,
        )

    @staticmethod
    def _body_digest(ctx: bentoml.Context | None, patients: object) -> bytes:
        """SHA-256 of the request body as received (see BodySizeLimitMiddleware);
        of the patients' JSON for a merged batch or a call without HTTP."""
        state = (ctx.request.scope.get("state") or {}) if ctx is not None else {}
        digest = state.get(BODY_DIGEST_KEY)
        return digest or hashlib.sha256(pydantic_core.to_json(patients)).digest()


def _batch_results(ids: list[str | None], screened: Screened) -> list[dict]:
    """One plain dict per patient of a batch (verdicts without evidence)."""
    criterion_ids = [c.id for c in screened.criteria.criteria]
    verdicts = screened.frame()[criterion_ids].astype(str).to_numpy().tolist()
    lows, highs = screened.low.tolist(), screened.high.tolist()
    gates = screened.gate.tolist()
    return [
        {
            "patient_id": ids[i],
            "status": status,
            "reasons": screened.brief_reasons(i),
            "missing_fields": screened.missing_fields[i],
            "to_confirm": screened.to_confirm[i],
            "risk_2y": risk,
            "gate": gates[i],
            "risk_low": lows[i],
            "risk_high": highs[i],
            "gate_to_obtain": screened.gate_to_obtain(i),
            "verdicts": dict(zip(criterion_ids, verdicts[i], strict=True)),
        }
        for i, (risk, status) in enumerate(
            zip(screened.risk.tolist(), screened.status.tolist(), strict=True)
        )
    ]


def _gates(results: list[RiskPrediction]) -> dict[str, int]:
    """Patients per gate state, for the audit line."""
    return {
        f"gate_{state}": sum(r.gate == state for r in results) for state in GATE_STATES
    }


def _json_response(payload: dict) -> Response:
    """A JSON answer serialised by pydantic-core, handed to BentoML as is.

    BentoML passes a returned ``Response`` through untouched; the endpoint's return
    annotation still documents the body in the OpenAPI spec.
    """
    return Response(pydantic_core.to_json(payload), media_type="application/json")


# All answer before the body is parsed: 401 without a key (or a CDS client's JWT),
# 415 for a body that is not JSON, 413 when too large.
LNRiskService.add_asgi_middleware(APIKeyMiddleware)
LNRiskService.add_asgi_middleware(ContentTypeMiddleware)
LNRiskService.add_asgi_middleware(BodySizeLimitMiddleware)
# CDS Hooks (GET /cds-services, POST /cds-services/{id}[/feedback]) beside the API.
LNRiskService.mount_asgi_app(cds_hooks.app, path="/")
# Every 100th answer on a connection closes it, so clients spread over the workers.
LNRiskService.add_asgi_middleware(ConnectionRecycleMiddleware)
