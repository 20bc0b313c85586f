"""A calibrated risk model stored without pickle.

Two model kinds share one format: ``xgboost`` (a booster) and ``logistic`` (a
:class:`~riskmodel.linear.LinearScorer`, plain numbers). Layout of a saved model::

    model.json     manifest: format version, kind, feature names, calibration,
                   linear terms and coefficients (logistic), the chained equations
                   of the predictors (imputation), the review zone's observed
                   event-rate curve, the monotone labs, metadata
    booster.ubj    the XGBoost booster in XGBoost's native UBJSON format (xgboost)

Scoring is ``booster.inplace_predict`` on a float32 matrix (the booster's margin)
followed by the calibration map. For one patient this is ~0.2–0.3 ms, where a
scikit-learn ``CalibratedClassifierCV`` over three boosters costs ~6–12 ms
(feasibility.md §3a, ``benchmarks/scoring.py``). After :meth:`LNRiskModel.compile_trees`
a few rows at a time are scored by walking the trees with numpy (~0.05 ms, the same
numbers; :mod:`riskmodel.trees`). :meth:`LNRiskModel.gate` gives the three-valued
gate (:mod:`riskmodel.gate`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from riskmodel.calibration import Calibration, ModelFormatError
from riskmodel.gate import GateStates, gate_states
from riskmodel.imputation import Imputer
from riskmodel.linear import LinearScorer
from riskmodel.trees import TreeArrays, booster_margin, compile_booster
from riskmodel.zone import ReviewZone

FORMAT_VERSION = 2
MANIFEST = "model.json"
BOOSTER = "booster.ubj"
ARTIFACT_DIR = "ln_risk_model"
"""The folder a saved model travels under (MLflow artifact, BentoML model files)."""


@dataclass
class LNRiskModel:
    """2-year new-onset lupus nephritis risk: scorer + calibration + feature order.

    Attributes:
        booster: the fitted XGBoost booster (binary:logistic), or None for a
            logistic model.
        calibration: the margin-to-probability map.
        feature_names: column order of the input matrix; must equal
            ``data_schema.model_features()`` of the code that serves it.
        metadata: free-form provenance (training run, data digest, config hash).
        linear: the logistic scorer when ``booster`` is None.
        imputer: chained equations giving plausible values of missing predictors.
        zone: the observed event-rate curve placing the review zone.
        monotone: feature → +1 / −1 for predictors the model is constrained to
            follow in one direction.
        trees: the booster as numpy arrays for scoring a few rows at a time (see
            :meth:`compile_trees`), or None.
    """

    booster: xgb.Booster | None
    calibration: Calibration
    feature_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    linear: LinearScorer | None = None
    imputer: Imputer | None = None
    zone: ReviewZone | None = None
    monotone: dict[str, int] = field(default_factory=dict)
    trees: TreeArrays | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.booster is None) == (self.linear is None):
            raise ModelFormatError("a model has either a booster or a linear scorer")

    @property
    def kind(self) -> str:
        return "xgboost" if self.booster is not None else "logistic"

    def set_threads(self, n_threads: int) -> None:
        """Pin XGBoost's thread count (1 per worker when serving with 2 workers)."""
        if self.booster is not None:
            self.booster.set_param({"nthread": int(n_threads)})

    def compile_trees(self) -> bool:
        """Score up to a few rows at a time by walking the trees with numpy.

        ~4x cheaper than a booster call for one patient, and the same margins bit
        for bit (see :mod:`riskmodel.trees`). For a service that scores one patient
        per request; costs ~30 ms once. Returns True when the booster compiled (a
        booster that does not keeps scoring with XGBoost).
        """
        if self.booster is None:
            return False
        self.trees = compile_booster(self.booster)
        return self.trees is not None

    def margin(self, features: np.ndarray) -> np.ndarray:
        """The booster's raw log-odds for a float32 matrix (n, n_features)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a matrix with {len(self.feature_names)} columns, "
                f"got shape {features.shape}"
            )
        if features.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        if self.linear is not None:
            return self.linear.margin(features, self.feature_names)
        assert self.booster is not None
        return booster_margin(self.booster, features, self.trees)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated 2-year risk, one probability per row."""
        return self.calibration.apply(self.margin(features))

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """Each feature's additive contribution to the margin (log-odds), per row.

        XGBoost: exact TreeSHAP values (``pred_contribs``). Logistic: coefficient ×
        standardised term, summed over the terms built on each feature. The last
        column is the bias, so each row sums to the margin.
        """
        features = np.asarray(features, dtype=np.float32)
        if self.booster is not None:
            dm = xgb.DMatrix(features, feature_names=list(self.feature_names))
            return np.asarray(self.booster.predict(dm, pred_contribs=True))
        assert self.linear is not None
        index = {name: j for j, name in enumerate(self.feature_names)}
        out = np.zeros((features.shape[0], len(self.feature_names) + 1))
        out[:, -1] = self.linear.intercept
        for term, coef in zip(self.linear.terms, self.linear.coef, strict=True):
            out[:, index[term.feature]] += coef * term.column(features, index)
        return out

    def gate(self, features: np.ndarray, threshold: float) -> GateStates:
        """The three-valued gate of each row for a gate ``threshold`` on the risk.

        Raises:
            ModelFormatError: the model has no imputation equations or review zone.
        """
        if self.imputer is None or self.zone is None:
            raise ModelFormatError("this model has no imputation equations or zone")
        return gate_states(
            self.predict_proba,
            self.imputer,
            self.zone,
            np.asarray(features, dtype=np.float32),
            threshold,
            self.monotone,
        )

    # --- persistence ---------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (and ``booster.ubj``) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "outcome": "new-onset lupus nephritis within 24 months",
            "feature_names": list(self.feature_names),
            "calibration": self.calibration.to_dict(),
            "metadata": self.metadata,
        }
        if self.booster is not None:
            self.booster.save_model(directory / BOOSTER)
            manifest["booster_file"] = BOOSTER
        if self.linear is not None:
            manifest["linear"] = self.linear.to_dict()
        if self.imputer is not None:
            manifest["imputation"] = self.imputer.to_dict()
        if self.zone is not None:
            manifest["review_zone"] = self.zone.to_dict()
        manifest["monotone"] = dict(sorted(self.monotone.items()))
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return directory

    @classmethod
    def load(
        cls,
        directory: str | Path,
        expected_features: Sequence[str] | None = None,
    ) -> LNRiskModel:
        """Read a saved model.

        Args:
            directory: a folder written by :meth:`save`.
            expected_features: if given, the feature order the caller will build; a
                mismatch (the schema changed since training) raises.

        Raises:
            ModelFormatError: the folder is not a saved model of this format.
        """
        directory = Path(directory)
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise ModelFormatError(f"no {MANIFEST} in {directory}")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"model format {manifest.get('format_version')} is not supported "
                f"(this code reads format {FORMAT_VERSION})"
            )
        features = tuple(manifest["feature_names"])
        if expected_features is not None and tuple(expected_features) != features:
            missing = sorted(set(expected_features) - set(features))
            extra = sorted(set(features) - set(expected_features))
            raise ModelFormatError(
                "the model's features do not match the patient schema "
                f"(missing from model: {missing}; unknown to schema: {extra}; "
                "or a different order) — retrain or serve a matching model"
            )
        booster: xgb.Booster | None = None
        linear: LinearScorer | None = None
        if manifest.get("kind") == "logistic":
            linear = LinearScorer.from_dict(manifest["linear"])
            unknown = {t.feature for t in linear.terms} - set(features)
            if unknown:
                raise ModelFormatError(f"linear terms use unknown features {unknown}")
        elif manifest.get("kind") == "xgboost":
            booster = xgb.Booster()
            booster.load_model(directory / manifest.get("booster_file", BOOSTER))
            if booster.num_features() != len(features):
                raise ModelFormatError("booster and manifest disagree on feature count")
        else:
            raise ModelFormatError(f"unknown model kind {manifest.get('kind')!r}")
        try:
            imputer = (
                Imputer.from_dict(manifest["imputation"])
                if "imputation" in manifest
                else None
            )
            zone = (
                ReviewZone.from_dict(manifest["review_zone"])
                if "review_zone" in manifest
                else None
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(
                f"invalid gate parameters in {directory}: {exc}"
            ) from None
        if imputer is not None and imputer.features != features:
            raise ModelFormatError("the imputation equations name other features")
        return cls(
            booster=booster,
            linear=linear,
            imputer=imputer,
            zone=zone,
            monotone={str(k): int(v) for k, v in manifest.get("monotone", {}).items()},
            calibration=Calibration.from_dict(manifest["calibration"]),
            feature_names=features,
            metadata=dict(manifest.get("metadata", {})),
        )
