"""A calibrated risk model stored without pickle.

Two model kinds share one format: ``xgboost`` (a booster) and ``logistic`` (a
:class:`~riskmodel.linear.LinearScorer`, plain numbers). Layout of a saved model::

    model.json     manifest: format version, kind, feature names, calibration,
                   linear terms and coefficients (logistic), metadata
    booster.ubj    the XGBoost booster in XGBoost's native UBJSON format (xgboost)

Scoring is ``booster.inplace_predict`` on a float32 matrix (the booster's margin)
followed by the calibration map. For one patient this is ~0.2–0.3 ms, where a
scikit-learn ``CalibratedClassifierCV`` over three boosters costs ~6–12 ms
(feasibility.md §3a, ``benchmarks/scoring.py``). After :meth:`LNRiskModel.compile_trees`
a few rows at a time are scored by walking the trees with numpy (~0.05 ms, the same
numbers; :mod:`riskmodel.trees`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from riskmodel.band import RiskBand
from riskmodel.calibration import Calibration, ModelFormatError
from riskmodel.linear import LinearScorer
from riskmodel.trees import TreeArrays, booster_margin, compile_booster

FORMAT_VERSION = 1
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
        band: bootstrap members giving a per-patient uncertainty band, or None.
        trees: the booster as numpy arrays for scoring a few rows at a time (see
            :meth:`compile_trees`), or None.
    """

    booster: xgb.Booster | None
    calibration: Calibration
    feature_names: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    linear: LinearScorer | None = None
    band: RiskBand | None = None
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
        if self.band is not None:
            self.band.set_threads(n_threads)

    def compile_trees(self) -> bool:
        """Score up to a few rows at a time by walking the trees with numpy.

        ~4x cheaper than a booster call for one patient, and the same margins bit
        for bit (see :mod:`riskmodel.trees`). For a service that scores one patient
        per request; costs ~30 ms per booster once. Returns True when the booster
        and every band member compiled (a booster that does not keeps scoring
        with XGBoost).
        """
        if self.booster is None:
            return False
        self.trees = compile_booster(self.booster)
        compiled = self.trees is not None
        if self.band is not None:
            self.band = self.band.with_compiled_trees()
            compiled = compiled and all(t is not None for t in self.band.trees)
        return compiled

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

    def predict_band(
        self, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-patient (low, high) uncertainty band, or None without band members."""
        if self.band is None:
            return None
        return self.band.interval(np.asarray(features, dtype=np.float32))

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
        if self.band is not None:
            files = []
            for k, booster in enumerate(self.band.boosters):
                name = f"band_member_{k:02d}.ubj"
                booster.save_model(directory / name)
                files.append(name)
            manifest["band"] = {
                "level": self.band.level,
                "inflation": self.band.inflation,
                "member_files": files,
                "calibrations": [c.to_dict() for c in self.band.calibrations],
            }
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
        band: RiskBand | None = None
        if "band" in manifest:
            spec = manifest["band"]
            boosters = []
            for name in spec["member_files"]:
                member = xgb.Booster()
                member.load_model(directory / name)
                boosters.append(member)
            band = RiskBand(
                tuple(boosters),
                tuple(Calibration.from_dict(c) for c in spec["calibrations"]),
                level=float(spec["level"]),
                inflation=float(spec["inflation"]),
            )
        return cls(
            booster=booster,
            linear=linear,
            band=band,
            calibration=Calibration.from_dict(manifest["calibration"]),
            feature_names=features,
            metadata=dict(manifest.get("metadata", {})),
        )
