"""Model builders (unfitted) and the one place where fitting happens.

Builders return unfitted estimators (the MLflow Recipes ``estimator_fn`` pattern);
:func:`fit_calibrated_booster` fits them and returns the pickle-free
:class:`riskmodel.LNRiskModel` that is logged, registered and served.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from data_schema import model_features
from riskmodel import Calibration, LNRiskModel
from training.config import CalibrationSettings, ModelSettings

Progress = Callable[[str], None]


def build_xgboost(settings: ModelSettings, seed: int) -> xgb.XGBClassifier:
    """An unfitted XGBoost classifier with the configured hyperparameters."""
    return xgb.XGBClassifier(
        n_estimators=settings.n_estimators,
        max_depth=settings.max_depth,
        learning_rate=settings.learning_rate,
        subsample=settings.subsample,
        colsample_bytree=settings.colsample_bytree,
        min_child_weight=settings.min_child_weight,
        reg_lambda=settings.reg_lambda,
        n_jobs=settings.n_jobs,
        objective="binary:logistic",
        tree_method="hist",
        eval_metric="logloss",
        random_state=seed,
    )


def fit_calibration(
    margin: np.ndarray, y: np.ndarray, method: str = "platt"
) -> Calibration:
    """Fit the margin → probability map on out-of-fold margins.

    Args:
        margin: booster log-odds for patients the booster was not trained on.
        y: their 0/1 outcomes.
        method: ``platt`` (unpenalised logistic regression on the margin) or
            ``isotonic`` (monotone, stored as interpolation knots).
    """
    margin = np.asarray(margin, dtype=np.float64).reshape(-1, 1)
    if method == "platt":
        lr = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000)  # unpenalised
        lr.fit(margin, y)
        return Calibration("platt", float(lr.intercept_[0]), float(lr.coef_[0, 0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6)
    iso.fit(margin[:, 0], y)
    return Calibration(
        "isotonic",
        x=tuple(map(float, iso.X_thresholds_)),
        y=tuple(map(float, iso.y_thresholds_)),
    )


def fit_calibrated_booster(
    X: np.ndarray,
    y: np.ndarray,
    model_settings: ModelSettings,
    calibration_settings: CalibrationSettings,
    *,
    seed: int,
    gate_threshold: float = 0.5,
    progress: Progress | None = None,
) -> tuple[LNRiskModel, np.ndarray]:
    """Fit XGBoost and its calibration on the development set.

    Calibration follows scikit-learn's ``CalibratedClassifierCV(ensemble=False)``:
    K fold models give out-of-fold margins for every development patient, the
    calibration map is fitted on those, and the final booster is refitted on all
    development patients.

    Returns:
        The calibrated model and the out-of-fold margins (for diagnostics).
    """
    step = progress or (lambda _msg: None)
    folds = StratifiedKFold(
        n_splits=calibration_settings.cv_folds, shuffle=True, random_state=seed
    )
    oof = np.zeros(len(y), dtype=np.float64)
    for k, (fit_idx, val_idx) in enumerate(folds.split(X, y), start=1):
        est = build_xgboost(model_settings, seed).fit(X[fit_idx], y[fit_idx])
        oof[val_idx] = est.get_booster().inplace_predict(
            X[val_idx], predict_type="margin"
        )
        step(f"fold {k}/{calibration_settings.cv_folds}")
    final = build_xgboost(model_settings, seed).fit(X, y)
    step("final booster")
    calibration = fit_calibration(oof, y, calibration_settings.method)
    booster = final.get_booster()
    booster.feature_names = list(model_features())
    model = LNRiskModel(
        booster=booster,
        calibration=calibration,
        feature_names=model_features(),
        gate_threshold=gate_threshold,
    )
    return model, oof
