"""Fit the chained equations of :class:`riskmodel.imputation.Imputer`.

On the development patients: right-skewed non-negative predictors go to the
``log1p`` scale; missing values start at their mean; then, sweep after sweep, each
predictor with missing values is regressed on all the others (ridge least squares
for numbers, L2 logistic regression for flags) and its missing values are replaced
by the fitted values. The equations of the last sweep, refitted for every predictor
(a record may lack any of them), are what the model stores.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import skew
from sklearn.linear_model import LogisticRegression, Ridge

from data_schema import field_specs
from riskmodel.imputation import Equation, Imputer, Transform

#: Skewness above which a non-negative predictor is imputed on the log1p scale.
SKEWED = 1.0
#: Sweeps over the development data before the stored equations are fitted.
FIT_SWEEPS = 5


def _kinds(features: tuple[str, ...]) -> list[str]:
    specs = field_specs()
    return ["bool" if f == "male" else specs[f].kind for f in features]


def _transforms(X: np.ndarray, kinds: list[str]) -> tuple[Transform, ...]:
    out: list[Transform] = []
    for j, kind in enumerate(kinds):
        values = X[:, j][~np.isnan(X[:, j])]
        numeric = kind in ("float", "int") and values.size > 2
        skewed = numeric and values.min() >= 0 and skew(values) > SKEWED
        out.append("log1p" if skewed else "identity")
    return tuple(out)


def _bounds(feature: str, transform: Transform) -> tuple[float, float]:
    """The field's valid range on the imputation scale."""
    if feature == "male":
        return 0.0, 1.0
    spec = field_specs()[feature]
    low = -np.inf if spec.ge is None else spec.ge
    high = np.inf if spec.le is None else spec.le
    if transform == "log1p":
        return float(np.log1p(max(low, 0.0))), float(np.log1p(high))
    return float(low), float(high)


def _equation(
    Z: np.ndarray,
    observed: np.ndarray,
    j: int,
    feature: str,
    kind: str,
    transform: Transform,
    means: np.ndarray,
    scales: np.ndarray,
) -> Equation:
    """Predictor ``j`` regressed on the standardised others, on its observed rows."""
    others = np.delete(np.arange(Z.shape[1]), j)
    design = (Z[observed][:, others] - means[others]) / scales[others]
    target = Z[observed, j]
    low, high = _bounds(feature, transform)
    if kind == "bool":
        labels = target.round().astype(int)
        if labels.min() == labels.max():  # a constant flag: predict the constant
            logit = 20.0 if labels[0] == 1 else -20.0
            return Equation(feature, "logistic", logit, (0.0,) * len(others))
        fit = LogisticRegression(C=1.0, max_iter=2000).fit(design, labels)
        return Equation(
            feature,
            "logistic",
            float(fit.intercept_[0]),
            tuple(map(float, fit.coef_[0])),
        )
    fit = Ridge(alpha=1.0).fit(design, target)
    sigma = float(np.std(target - fit.predict(design)))
    return Equation(
        feature,
        "linear",
        float(fit.intercept_),
        tuple(map(float, fit.coef_)),
        sigma=sigma,
        low=low,
        high=high,
        integer=kind == "int",
    )


def fit_imputer(
    X: np.ndarray, features: tuple[str, ...], *, draws: int = 32, sweeps: int = 3
) -> Imputer:
    """Chained equations of every predictor, fitted on the development matrix.

    Args:
        X: development features (patients, features), NaN = missing.
        features: their names (``data_schema.model_features()``).
        draws: plausible completions per record at scoring time.
        sweeps: passes over a record's missing predictors at scoring time.
    """
    X = np.asarray(X, dtype=np.float64)
    kinds = _kinds(features)
    transforms = _transforms(X, kinds)
    logged = [j for j, t in enumerate(transforms) if t == "log1p"]
    Z = X.copy()
    Z[:, logged] = np.log1p(np.maximum(Z[:, logged], 0.0))
    missing = np.isnan(Z)
    means = np.nanmean(Z, axis=0)
    scales = np.nanstd(Z, axis=0)
    scales[scales == 0] = 1.0
    Z = np.where(missing, means, Z)

    def equation(j: int) -> Equation:
        return _equation(
            Z, ~missing[:, j], j, features[j], kinds[j], transforms[j], means, scales
        )

    for _ in range(FIT_SWEEPS):
        for j in np.flatnonzero(missing.any(axis=0)):
            eq = equation(j)
            others = np.delete(np.arange(Z.shape[1]), j)
            standard = (Z[missing[:, j]][:, others] - means[others]) / scales[others]
            fitted = eq.intercept + standard @ np.asarray(eq.coef)
            if eq.kind == "logistic":
                fitted = (fitted > 0).astype(np.float64)
            Z[missing[:, j], j] = np.clip(fitted, eq.low, eq.high)
    equations = tuple(equation(j) for j, f in enumerate(features) if f != "male")
    return Imputer(
        features=tuple(features),
        transforms=transforms,
        means=tuple(map(float, means)),
        scales=tuple(map(float, scales)),
        equations=equations,
        sweeps=sweeps,
        draws=draws,
    )
