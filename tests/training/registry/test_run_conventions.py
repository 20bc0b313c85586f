"""MLflow conventions that make runs comparable, and `lnrisk compare` on real runs.

Every run kind (train, external validation, recalibration, promotion) carries the
same tag keys; every run that evaluates a model logs the same metric names, the
plots, a model card and the self-contained HTML report.
"""

from __future__ import annotations

import re

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from synthetic.generator import generate_cohort
from training.cli import app
from training.config import load_config
from training.evaluation.html_report import REPORT_SECTIONS
from training.evaluation.report import REPORT_METRIC_KEYS
from training.registry import tracking
from training.registry.promote import promote
from training.registry.validation import evaluate_registered, recalibrate_registered

runner = CliRunner()
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*(?!["']?data:)|<link\b|<script\b""", re.I)
EVALUATING = ("train", "external_validation", "recalibration")
PLOTS = ("roc", "calibration", "decision_curve", "risk_histogram", "feature_importance")


def test_run_tags_fill_every_common_key() -> None:
    tags = tracking.run_tags(
        run_kind="promotion",
        model_family="xgboost",
        data_digest="abc",
        data_source="synthetic://x",
        config=load_config(),
        decision="refused",
    )
    assert set(tracking.RUN_TAG_KEYS) <= set(tags)
    assert tags["cohort_definition"] == tracking.COHORT_DEFINITION
    assert tags["gate_threshold"] == "0.5" and tags["decision"] == "refused"
    assert tags["criteria_version"].startswith("NCT05585671@")
    with pytest.raises(ValueError, match="run_kind"):
        tracking.run_tags(**{**_common(), "run_kind": "fitting"})
    with pytest.raises(ValueError, match="redefine"):
        tracking.run_tags(**_common(), git_commit="abc")


def _common() -> dict:
    return {
        "run_kind": "train",
        "model_family": "xgboost",
        "data_digest": "d",
        "data_source": "s",
        "config": load_config(),
    }


@pytest.fixture(scope="module")
def runs_by_kind(trained, small_config, tmp_path_factory) -> dict[str, str]:
    """One run of each kind, in the session's store (recalibration → challenger)."""
    path = tmp_path_factory.mktemp("conventions") / "external.parquet"
    generate_cohort(n=2_000, seed=91, shift="external").to_parquet(path)
    evaluated = evaluate_registered(small_config, "champion", path)
    recalibrated = recalibrate_registered(small_config, "champion", path, "intercept")
    decision = promote(small_config, dry_run=True)  # moves no alias
    return {
        "train": trained.run_id,
        "external_validation": evaluated.run_id,
        "recalibration": recalibrated.run_id,
        "promotion": decision.run_id,
    }


def _artifacts(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return out


@pytest.mark.slow
def test_every_run_kind_has_the_same_tag_keys(runs_by_kind, small_config) -> None:
    client = MlflowClient()
    experiments = set()
    for kind, run_id in runs_by_kind.items():
        run = client.get_run(run_id)
        experiments.add(run.info.experiment_id)
        tags = run.data.tags
        missing = [k for k in tracking.RUN_TAG_KEYS if not tags.get(k)]
        assert not missing, (kind, missing)
        assert tags["run_kind"] == kind
        assert tags["cohort_definition"] == tracking.COHORT_DEFINITION
        assert tags["config_hash"] == small_config.config_hash()
        assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", tags["git_commit"])
    assert len(experiments) == 1  # one experiment for the task


@pytest.mark.slow
def test_run_names_say_what_they_are(runs_by_kind) -> None:
    client = MlflowClient()
    names = {k: client.get_run(r).info.run_name for k, r in runs_by_kind.items()}
    assert re.fullmatch(r"train-xgboost-platt-[0-9a-f]{12}", names["train"])
    assert re.fullmatch(r"evaluate-v\d+-on-[0-9a-f]+", names["external_validation"])
    assert re.fullmatch(r"recalibrate-v\d+-intercept-on-\w+", names["recalibration"])
    assert re.fullmatch(r"promote-v\d+-over-v\d+", names["promotion"])


@pytest.mark.slow
def test_evaluating_runs_log_the_same_metrics_plots_card_and_report(
    runs_by_kind,
) -> None:
    client = MlflowClient()
    for kind in EVALUATING:
        run_id = runs_by_kind[kind]
        assert set(REPORT_METRIC_KEYS) <= set(client.get_run(run_id).data.metrics)
        artifacts = _artifacts(client, run_id)
        expected = {f"plots/{name}.png" for name in PLOTS} | {
            "evaluation/report.json",
            "evaluation/report.html",
            "model_card/model_card.md",
            "model_card/model_card.html",
        }
        assert expected <= artifacts, (kind, expected - artifacts)


@pytest.mark.slow
def test_external_validation_attaches_the_card_of_the_version_it_scored(
    runs_by_kind,
) -> None:
    card = "model_card/model_card.html"
    scored = mlflow.artifacts.load_text(
        f"runs:/{runs_by_kind['external_validation']}/{card}"
    )
    assert scored == mlflow.artifacts.load_text(f"runs:/{runs_by_kind['train']}/{card}")


@pytest.mark.slow
def test_html_report_is_complete_and_self_contained(runs_by_kind, trained) -> None:
    page = mlflow.artifacts.load_text(
        f"runs:/{runs_by_kind['train']}/evaluation/report.html"
    )
    assert re.findall(r"<h2>(.*?)</h2>", page) == list(REPORT_SECTIONS)
    assert not EXTERNAL.search(page)
    # headline metrics with their intervals
    low, high = trained.metrics["auroc_ci_low"], trained.metrics["auroc_ci_high"]
    assert f"{low:.3g} to {high:.3g}" in page
    for text in ("AUROC (C-statistic)", "Calibration slope", "PPV at 0.5", "Wilson"):
        assert text in page, text
    # the threshold table with the gate's row, the gate's groups, subgroups, the card
    assert '<tr class="gate"><td>0.5</td>' in page
    assert "The three-valued gate" in page and "auto-excluded" in page
    assert "<td>female</td>" in page and "<td>45+</td>" in page
    assert f"Model card: ln-risk version {trained.model_version}" in page
    assert "TRIPOD+AI checklist" in page
    assert trained.run_id in page  # the Run section names the run
    assert page.count('src="data:image/png;base64,') == len(PLOTS)


@pytest.mark.slow
def test_compare_prints_two_runs_side_by_side(runs_by_kind) -> None:
    a, b = runs_by_kind["train"], runs_by_kind["recalibration"]
    result = runner.invoke(app, ["compare", a, b])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"A = {a}" in out and f"B = {b}" in out
    assert "Δ (B − A)" in out
    # the data differ (a recalibration sample vs the training cohort), the code not
    assert re.search(r"\*\s*│\s*data_digest", out)
    assert re.search(r"│\s+│\s*git_commit", out)
    for key in ("auroc", "cal_slope", "nb_at_gate", "oracle_auroc"):
        assert re.search(rf"│\s*{key}\s*│", out), key
    assert "#/compare-runs?runs=" in out


@pytest.mark.slow
def test_compare_champion_and_challenger(runs_by_kind) -> None:
    result = runner.invoke(
        app,
        ["compare", "--champion", "--challenger", "--section", "metrics"],
    )
    assert result.exit_code == 0, result.output
    champion = tracking.champion_version("ln-risk", "champion")
    challenger = tracking.champion_version("ln-risk", "challenger")
    assert "A = @champion: " in result.output
    assert champion.run_id[:8] in result.output
    assert challenger.run_id[:8] in result.output
    assert "git_commit" not in result.output  # metrics only


@pytest.mark.slow
def test_compare_takes_id_prefixes_and_needs_two_runs(runs_by_kind) -> None:
    a, b = runs_by_kind["train"][:8], runs_by_kind["external_validation"][:8]
    result = runner.invoke(app, ["compare", a, b, "--only-diff"])
    assert result.exit_code == 0, result.output
    one = runner.invoke(app, ["compare", a])
    assert one.exit_code == 2 and "exactly two runs" in one.output
    unknown = runner.invoke(app, ["compare", "0123456789abcdef", a])
    assert unknown.exit_code == 2 and "0123456789abcdef" in unknown.output
