"""Log an evaluation's evidence to the active MLflow run: report, tables, plots, card.

Every run that scores a model (training, external validation, recalibration) logs
the same artifacts through :func:`log_evidence`, so reviewers find the same files in
every run of the MLflow UI.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd

from training.evaluation.evaluate import Evaluation
from training.evaluation.html_report import render_evaluation_report, run_details
from training.evaluation.model_card import ModelCardContext, render_model_card
from training.evaluation.plots import save_all_plots
from training.evaluation.report import report_to_json


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

    The HTML report (``{prefix}/report.html``, see the evaluation package) is
    self-contained: headline metrics with intervals, the gate, calibration, plots,
    subgroups, the oracle and the model card, headed by the active run's tags.
    Every number it shows is in ``{prefix}/report.json``.
    """
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
        model_card_html=card[1] if card else None,
    )
    mlflow.log_text(html, f"{prefix}/report.html")
