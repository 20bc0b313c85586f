"""Evaluate a fitted model on held-out patients: predictions, report, metrics.

Shared by ``lnrisk train``, ``lnrisk evaluate`` and ``lnrisk recalibrate`` (the
registry logs what this returns), so every run carries the same report sections,
metric names, plots and model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from data_schema import OUTCOME_COLUMN, TRUE_RISK_COLUMN, frame_to_features
from riskmodel import GateStates, LNRiskModel
from training.evaluation.report import build_report, report_metrics

#: Rows used for SHAP feature importance (enough for stable means, fast on 2 cores).
IMPORTANCE_ROWS = 2_000


@dataclass(frozen=True)
class Evaluation:
    """Predictions, report and flat metrics of one model on one set of patients."""

    y: np.ndarray
    p: np.ndarray
    true_risk: np.ndarray | None
    gate: GateStates | None
    report: dict[str, Any]
    metrics: dict[str, float]
    importance: pd.Series


def feature_importance(model: LNRiskModel, X: np.ndarray) -> pd.Series:
    """Mean |contribution| to the margin per model feature.

    XGBoost: mean absolute SHAP value (``pred_contribs``) on up to 2,000 rows.
    Logistic: |standardised coefficient| summed over the terms built on a feature.
    """
    names = list(model.feature_names)
    if model.booster is not None:
        rows = X[:IMPORTANCE_ROWS]
        contribs = model.booster.predict(
            xgb.DMatrix(rows, feature_names=names), pred_contribs=True
        )
        values = np.abs(contribs[:, :-1]).mean(axis=0)  # last column is the bias
        return pd.Series(values, index=names).sort_values(ascending=False)
    assert model.linear is not None
    totals = dict.fromkeys(names, 0.0)
    for term, coef in zip(model.linear.terms, model.linear.coef, strict=True):
        totals[term.feature] += abs(coef)
    return pd.Series(totals).sort_values(ascending=False)


GATE_METHOD = (
    "plausible values of missing predictors by chained equations; review zone placed "
    "on the observed 2-year event rate of held-out (out-of-fold) development patients"
)


def evaluate_model(
    model: LNRiskModel,
    cohort: pd.DataFrame,
    threshold: float,
    *,
    population: list[dict[str, Any]] | None = None,
) -> Evaluation:
    """Score a validated cohort with an outcome column and build the full report.

    Args:
        model: the model to evaluate.
        cohort: held-out patients with the observed outcome.
        threshold: the gate of the criteria file in force.
        population: the attrition to these patients' population, for the report.
    """
    X = frame_to_features(cohort)
    y = cohort[OUTCOME_COLUMN].to_numpy(int)
    true_risk = (
        cohort[TRUE_RISK_COLUMN].to_numpy(float) if TRUE_RISK_COLUMN in cohort else None
    )
    gate = None
    if model.imputer is not None and model.zone is not None:
        gate = model.gate(X, threshold)
        p = gate.risk
    else:
        p = model.predict_proba(X)
    age = cohort["age_years"].to_numpy(float) if "age_years" in cohort else None
    report = build_report(
        y,
        p,
        sex=cohort["sex"].to_numpy(str),
        age_years=age if age is not None else np.full(len(y), np.nan),
        true_risk=true_risk,
        gate=None if gate is None else _gate_input(gate),
        population=population,
        threshold=threshold,
    )
    return Evaluation(
        y=y,
        p=p,
        true_risk=true_risk,
        gate=gate,
        report=report,
        metrics=report_metrics(report),
        importance=feature_importance(model, X),
    )


def _gate_input(gate: GateStates) -> dict[str, Any]:
    """What the report reads of the gate."""
    return {
        "state": gate.state,
        "for_missing_data": np.array([bool(t) for t in gate.to_obtain]),
        "exclude_edge": gate.exclude_edge,
        "pass_edge": gate.pass_edge,
        "method": GATE_METHOD,
    }


__all__ = ["Evaluation", "evaluate_model", "feature_importance"]
