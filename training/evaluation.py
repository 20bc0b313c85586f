"""Evaluate a fitted model on held-out patients and log the evidence to MLflow.

Shared by ``lnrisk train``, ``lnrisk evaluate`` and ``lnrisk recalibrate`` so every run
carries the same report sections, metric names, plots and model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb

from data_schema import OUTCOME_COLUMN, TRUE_RISK_COLUMN, frame_to_features
from riskmodel import LNRiskModel, RiskBand
from training.config import TrainingConfig
from training.model_card import ModelCardContext, render_model_card
from training.plots import save_all_plots
from training.report import build_report, report_metrics, report_to_json
from training.uncertainty import fit_band_inflation, fit_band_members

Progress = Callable[[str], None]
#: Rows used for SHAP feature importance (enough for stable means, fast on 2 cores).
IMPORTANCE_ROWS = 2_000


@dataclass(frozen=True)
class Evaluation:
    """Predictions, report and flat metrics of one model on one set of patients."""

    y: np.ndarray
    p: np.ndarray
    true_risk: np.ndarray | None
    band: tuple[np.ndarray, np.ndarray] | None
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


def evaluate_model(
    model: LNRiskModel, cohort: pd.DataFrame, threshold: float
) -> Evaluation:
    """Score a validated cohort with an outcome column and build the full report."""
    X = frame_to_features(cohort)
    y = cohort[OUTCOME_COLUMN].to_numpy(int)
    p = model.predict_proba(X)
    true_risk = (
        cohort[TRUE_RISK_COLUMN].to_numpy(float) if TRUE_RISK_COLUMN in cohort else None
    )
    band = model.predict_band(X)
    age = cohort["age_years"].to_numpy(float) if "age_years" in cohort else None
    report = build_report(
        y,
        p,
        sex=cohort["sex"].to_numpy(str),
        age_years=age if age is not None else np.full(len(y), np.nan),
        true_risk=true_risk,
        band_low=band[0] if band else None,
        band_high=band[1] if band else None,
        threshold=threshold,
    )
    return Evaluation(
        y=y,
        p=p,
        true_risk=true_risk,
        band=band,
        report=report,
        metrics=report_metrics(report),
        importance=feature_importance(model, X),
    )


def band_steps(config: TrainingConfig) -> int:
    """Progress steps of :func:`attach_band`."""
    return 1 if config.uncertainty.n_members else 0


def attach_band(
    model: LNRiskModel,
    X: np.ndarray,
    y: np.ndarray,
    config: TrainingConfig,
    *,
    true_risk: np.ndarray | None = None,
    progress: Progress | None = None,
) -> None:
    """Fit the bootstrap members of the uncertainty band and attach them to ``model``.

    Only XGBoost models get a band. With the true risk known (synthetic data), 20 %
    of the development patients are held back from the members and used to fit the
    split-conformal inflation that makes the band cover the true risk at its level;
    otherwise the raw bootstrap band is used (inflation 1.0) and its coverage is
    unknown.
    """
    settings = config.uncertainty
    if not settings.n_members or model.booster is None:
        return
    hyper = config.model.model_copy(update=model.metadata.get("hyperparameters", {}))
    fit_idx = np.arange(len(y))
    cal_idx = np.empty(0, dtype=int)
    if true_risk is not None:
        rng = np.random.default_rng(config.seed)
        order = rng.permutation(len(y))
        cut = int(0.8 * len(y))
        fit_idx, cal_idx = order[:cut], order[cut:]
    members = fit_band_members(
        X[fit_idx], y[fit_idx], hyper, n_members=settings.n_members, seed=config.seed
    )
    inflation = 1.0
    if cal_idx.size:
        inflation = fit_band_inflation(
            members, X[cal_idx], true_risk[cal_idx], settings.level
        )
    model.band = RiskBand(
        tuple(m.booster for m in members),
        tuple(m.calibration for m in members),
        level=settings.level,
        inflation=float(inflation),
    )
    model.metadata["band"] = {
        "method": "bootstrap ensemble, out-of-bag calibrated members",
        "n_members": settings.n_members,
        "level": settings.level,
        "inflation": float(inflation),
        "inflation_source": "split-conformal on the true risk of 20% of development"
        if cal_idx.size
        else "none (no true risk): raw bootstrap band",
    }
    if progress:
        progress(f"uncertainty band: {settings.n_members} bootstrap members")


def band_description(model: LNRiskModel) -> str | None:
    """One sentence on how the model's uncertainty band was made (model card)."""
    meta = model.metadata.get("band")
    if not meta:
        return None
    return (
        f"{meta['level']:.0%} band from a bootstrap ensemble of {meta['n_members']} "
        f"XGBoost models, each calibrated on its out-of-bag patients; logit-scale "
        f"inflation {meta['inflation']:.2f} ({meta['inflation_source']})."
    )


def log_evidence(
    evaluation: Evaluation,
    folder: Path,
    *,
    context: ModelCardContext | None,
    prefix: str = "evaluation",
    model_card: tuple[str, str] | None = None,
) -> None:
    """Log the report (JSON and HTML), its tables, the plots and the model card.

    Args:
        evaluation: what :func:`evaluate_model` returned.
        folder: scratch folder for the plot files.
        context: what the model card shows; None when this run builds no card.
        prefix: artifact folder of the report.
        model_card: (Markdown, HTML) of a card made by another run, logged as this
            run's card when ``context`` is None (an external validation attaches
            the card of the version it scored).

    The HTML report (``{prefix}/report.html``, :mod:`training.eval_report`) is
    self-contained: headline metrics with intervals, the gate, calibration, plots,
    subgroups, the oracle and the model card, headed by the active run's tags.
    """
    from training.eval_report import render_evaluation_report, run_details

    plots_dir = folder / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = save_all_plots(
        evaluation.y,
        evaluation.p,
        plots_dir,
        report=evaluation.report,
        importance=evaluation.importance,
        true_risk=evaluation.true_risk,
    )
    mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
    mlflow.log_text(report_to_json(evaluation.report), f"{prefix}/report.json")
    for section in ("threshold_table", "subgroups"):
        rows = evaluation.report.get(section)
        if rows:
            mlflow.log_table(pd.DataFrame(rows), f"{prefix}/{section}.json")
    plots = {p.stem: p for p in paths}
    card = model_card
    if context is not None:
        card = render_model_card(replace(context, plots=plots))
    if card is not None:
        mlflow.log_text(card[0], "model_card/model_card.md")
        mlflow.log_text(card[1], "model_card/model_card.html")
    # The logging above started a run if none was active; its tags head the report.
    run = mlflow.get_run(mlflow.active_run().info.run_id)
    html = render_evaluation_report(
        evaluation.report,
        title=f"Evaluation report: {run.info.run_name}",
        details=run_details(run.info.run_id, run.info.run_name, run.data.tags),
        plots=plots,
        y=evaluation.y,
        p=evaluation.p,
        band=evaluation.band,
        true_risk=evaluation.true_risk,
        model_card_html=card[1] if card else None,
    )
    mlflow.log_text(html, f"{prefix}/report.html")


__all__ = [
    "Evaluation",
    "attach_band",
    "band_description",
    "band_steps",
    "evaluate_model",
    "feature_importance",
    "log_evidence",
]
