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
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import ParameterSampler, StratifiedKFold

from data_schema import model_features
from riskmodel import Calibration, LNRiskModel
from riskmodel.linear import LinearScorer, Term, design_matrix
from training.config import (
    CalibrationSettings,
    ModelSettings,
    SearchSettings,
    TrainingConfig,
)
from training.imputation import fit_imputer
from training.zone import fit_review_zone

Progress = Callable[[str], None]


def monotone_constraints(settings: ModelSettings) -> tuple[int, ...]:
    """XGBoost's per-feature monotonicity (+1, −1, 0) in model-feature order."""
    features = model_features()
    unknown = set(settings.monotone_increasing + settings.monotone_decreasing) - set(
        features
    )
    if unknown:
        raise ValueError(f"monotone constraints name unknown features: {unknown}")
    return tuple(
        1
        if name in settings.monotone_increasing
        else -1
        if name in settings.monotone_decreasing
        else 0
        for name in features
    )


def build_xgboost(settings: ModelSettings, seed: int) -> xgb.XGBClassifier:
    """An unfitted XGBoost classifier with the configured hyperparameters."""
    return xgb.XGBClassifier(
        monotone_constraints=monotone_constraints(settings),
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
    )
    return model, oof


# --- hyperparameter search -----------------------------------------------------------
def _score(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    """Lower is better for every metric (AUROC is negated)."""
    if metric == "log_loss":
        return float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    if metric == "brier":
        return float(brier_score_loss(y, p))
    return -float(roc_auc_score(y, p))


def search_xgboost(
    X: np.ndarray,
    y: np.ndarray,
    base: ModelSettings,
    search: SearchSettings,
    *,
    seed: int,
    progress: Progress | None = None,
) -> tuple[ModelSettings, list[dict[str, float]]]:
    """Random search over the configured grid, scored by K-fold cross-validation.

    Returns the best settings and one row per tried setting (parameters, CV score).
    """
    step = progress or (lambda _msg: None)
    grid = {
        "max_depth": list(search.max_depth),
        "learning_rate": list(search.learning_rate),
        "n_estimators": list(search.n_estimators),
        "min_child_weight": list(search.min_child_weight),
        "subsample": list(search.subsample),
    }
    folds = list(
        StratifiedKFold(search.cv_folds, shuffle=True, random_state=seed).split(X, y)
    )
    results: list[dict[str, float]] = []
    best: tuple[float, ModelSettings] | None = None
    sampler = ParameterSampler(grid, search.n_iter, random_state=seed)
    for i, params in enumerate(sampler):
        settings = base.model_copy(update=params)
        oof = np.zeros(len(y))
        for fit_idx, val_idx in folds:
            est = build_xgboost(settings, seed).fit(X[fit_idx], y[fit_idx])
            oof[val_idx] = est.predict_proba(X[val_idx])[:, 1]
        score = _score(search.metric, y, oof)
        results.append({**params, f"cv_{search.metric}": score})
        if best is None or score < best[0]:
            best = (score, settings)
        step(f"search {i + 1}/{search.n_iter}: cv {search.metric} {score:.4f}")
    assert best is not None
    return best[1], results


# --- logistic candidates --------------------------------------------------------------
#: Right-skewed titres modelled on the log10 scale (the DGP is linear in log10).
LOG_FEATURES = ("anti_dsdna_iu_ml", "crp_mg_l", "esr_mm_h")
#: RIFLE-LN's anti-dsDNA positivity cut-off on the ELISA scale (IU/mL).
ANTI_DSDNA_POSITIVE_IU_ML = 100.0


def logistic_terms(family: str, X: np.ndarray) -> list[Term]:
    """Design terms of a logistic candidate.

    ``logistic``: every model feature (log10 for titres), plus a missing indicator for
    each feature missing in ≥ 1 % of the development set. ``rifle_ln``: male sex, age
    at SLE onset (age − disease duration) and anti-dsDNA ≥ 100 IU/mL.
    """
    names = model_features()
    if family == "rifle_ln":
        return [
            Term("male", "value", "male"),
            Term(
                "age_at_onset_years",
                "minus",
                "age_years",
                other="disease_duration_years",
            ),
            Term(
                "anti_dsdna_positive",
                "ge",
                "anti_dsdna_iu_ml",
                cut=ANTI_DSDNA_POSITIVE_IU_ML,
            ),
        ]
    terms = [
        Term(name, "log10" if name in LOG_FEATURES else "value", name) for name in names
    ]
    missing_share = np.isnan(X).mean(axis=0)
    terms += [
        Term(f"{name}_missing", "missing", name)
        for name, share in zip(names, missing_share, strict=True)
        if share >= 0.01
    ]
    return terms


def _fit_linear(
    X: np.ndarray, y: np.ndarray, family: str, terms: list[Term]
) -> LinearScorer:
    fitted, design = design_matrix(terms, X, model_features())
    # RIFLE-LN is a published 3-predictor model: fit it unpenalised. The full model
    # has ~50 terms: a mild L2 penalty keeps it stable.
    C = np.inf if family == "rifle_ln" else 1.0
    lr = LogisticRegression(C=C, max_iter=2000).fit(design, y)
    return LinearScorer(
        tuple(fitted), tuple(map(float, lr.coef_[0])), float(lr.intercept_[0])
    )


def fit_calibrated_logistic(
    X: np.ndarray,
    y: np.ndarray,
    family: str,
    calibration_settings: CalibrationSettings,
    *,
    seed: int,
    progress: Progress | None = None,
) -> tuple[LNRiskModel, np.ndarray]:
    """Fit a logistic candidate and calibrate it on out-of-fold margins."""
    step = progress or (lambda _msg: None)
    features = model_features()
    terms = logistic_terms(family, X)
    folds = StratifiedKFold(
        n_splits=calibration_settings.cv_folds, shuffle=True, random_state=seed
    )
    oof = np.zeros(len(y), dtype=np.float64)
    for k, (fit_idx, val_idx) in enumerate(folds.split(X, y), start=1):
        scorer = _fit_linear(X[fit_idx], y[fit_idx], family, terms)
        oof[val_idx] = scorer.margin(X[val_idx], features)
        step(f"fold {k}/{calibration_settings.cv_folds}")
    scorer = _fit_linear(X, y, family, terms)
    step("final model")
    model = LNRiskModel(
        booster=None,
        linear=scorer,
        calibration=fit_calibration(oof, y, calibration_settings.method),
        feature_names=features,
    )
    return model, oof


def fit_candidate(
    X: np.ndarray,
    y: np.ndarray,
    config: TrainingConfig,
    *,
    progress: Progress | None = None,
) -> tuple[LNRiskModel, list[dict[str, float]]]:
    """Fit the candidate the config names; the one place where fitting happens.

    The model, its calibration, the chained equations of its predictors and its
    review zone all rest on the development patients' observed outcomes (never on a
    synthetic true risk).

    Returns:
        The servable model and the search table (empty without a search).
    """
    step = progress or (lambda _msg: None)
    family = config.model.family
    results: list[dict[str, float]] = []
    if family == "xgboost":
        settings = config.model
        if config.search.enabled:
            settings, results = search_xgboost(
                X, y, config.model, config.search, seed=config.seed, progress=step
            )
        model, oof = fit_calibrated_booster(
            X, y, settings, config.calibration, seed=config.seed, progress=step
        )
        model.metadata["hyperparameters"] = settings.model_dump(mode="json")
        model.monotone = {
            **dict.fromkeys(settings.monotone_increasing, 1),
            **dict.fromkeys(settings.monotone_decreasing, -1),
        }
    else:
        model, oof = fit_calibrated_logistic(
            X, y, family, config.calibration, seed=config.seed, progress=step
        )
    model.imputer = fit_imputer(
        X, model_features(), draws=config.gate.draws, sweeps=config.gate.sweeps
    )
    model.zone = fit_review_zone(
        model.calibration.apply(oof),
        y,
        exclude_margin=config.gate.exclude_margin,
        pass_margin=config.gate.pass_margin,
    )
    step("gate: imputation equations and review zone")
    return model, results


def progress_steps(config: TrainingConfig) -> int:
    """How many progress steps :func:`fit_candidate` reports."""
    steps = config.calibration.cv_folds + 2
    if config.model.family == "xgboost" and config.search.enabled:
        steps += config.search.n_iter
    return steps
