"""The MLflow UI compares two runs: checked in a real (headless) Chromium.

A temporary store gets two runs logged the way the pipeline logs them (the common
tags, the fixed metric names, a few params); ``mlflow ui`` serves it on a free
loopback port, as ``make ui`` does; Selenium drives Debian's Chromium to the
compare-runs page and waits until the metric names are on it. The screenshot is
kept under the test's tmp dir and copied to ``$TMPDIR/lnrisk-ui/`` (path printed)
so a reviewer can look at it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import pytest

from tests.browser import BROWSER_TEST, headless_chromium, keep_screenshot
from tests.servers import free_port, running
from training.registry.compare import (
    REPORT_ARTIFACT,
    compare_page_url,
    run_artifact_url,
)
from training.registry.tracking import COHORT_DEFINITION, RUN_TAG_KEYS

pytestmark = BROWSER_TEST

# Metric names the compare page must show (a selection of REPORT_METRIC_KEYS).
SHOWN = ("auroc", "brier", "cal_slope", "ici", "nb_at_gate", "oracle_auroc")
RUNS = {
    "train-xgboost-platt-0a1b2c3d4e5f": ("xgboost", 0.824, 0.0733, 1.07, 0.0064),
    "train-logistic-platt-6a7b8c9d0e1f": ("logistic", 0.827, 0.0726, 1.06, 0.0055),
}


def _report(run_name: str) -> str:
    """A real evaluation report page, of 400 synthetic predictions."""
    import numpy as np

    from training.evaluation.html_report import render_evaluation_report
    from training.evaluation.report import build_report

    rng = np.random.default_rng(1)
    p = rng.beta(1.2, 8.0, 400)
    y = (rng.random(400) < p).astype(int)
    report = build_report(
        y,
        p,
        sex=np.full(400, "female"),
        age_years=rng.uniform(18, 70, 400),
        threshold=0.5,
        n_boot=20,
    )
    return render_evaluation_report(report, title=f"Evaluation report: {run_name}")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, str, list[str]]:
    """A SQLite store with two comparable runs: (uri, experiment id, run ids)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    root = tmp_path_factory.mktemp("ui-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)  # never the session's global store
    experiment = client.create_experiment(
        "ln-risk-2y", artifact_location=(root / "mlartifacts").as_uri()
    )
    run_ids = []
    now = int(time.time() * 1000)
    for name, (family, auroc, brier, slope, ici) in RUNS.items():
        run = client.create_run(experiment, run_name=name)
        tags = {
            "run_kind": "train",
            "model_family": family,
            "data_digest": "0315517d",
            "data_source": "synthetic://clinical.md-s8?n=20000&seed=7&incidence=0.1"
            "&shift=none",
            "git_commit": "c435670e1cea895a955fdbc02734d87ce062ee49",
            "config_hash": name.rsplit("-", 1)[1],
            "cohort_definition": COHORT_DEFINITION,
            "gate_threshold": "0.5",
            "criteria_version": "NCT05585671@1.0.0+sha256:105db854db4a",
        }
        assert set(tags) == set(RUN_TAG_KEYS)
        metrics = {
            "auroc": auroc,
            "brier": brier,
            "cal_slope": slope,
            "ici": ici,
            "nb_at_gate": 0.004,
            "oracle_auroc": 0.838,
        }
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param("model.family", family), Param("seed", "7")],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.log_text(run.info.run_id, _report(name), REPORT_ARTIFACT)
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    return uri, experiment, run_ids


@pytest.fixture(scope="module")
def ui(store) -> Iterator[str]:
    """``mlflow ui`` on the store, as ``make ui`` starts it; yields its base URL."""
    uri = store[0]
    port = free_port()
    env = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        # No GenAI job runners (seven huey consumer processes): not needed to browse.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with running(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
         "--host", "127.0.0.1", "--port", str(port)],
        port=port, ready_path="/health", env=env,
    ) as url:  # fmt: skip
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    """Headless Chromium with a fresh profile, shared by this module's tests."""
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def test_compare_page_shows_both_runs_and_the_metric_names(
    ui, store, browser, tmp_path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, experiment, run_ids = store
    browser.get(compare_page_url(ui, run_ids, [experiment]))

    def loaded(driver) -> bool:
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(name in text for name in (*SHOWN, *RUNS))

    try:
        WebDriverWait(browser, 60, poll_frequency=0.5).until(loaded)
        # Bring the metrics table into view for the screenshot.
        heading = browser.find_element(
            By.XPATH, "//*[normalize-space(text())='Metrics']"
        )
        browser.execute_script("arguments[0].scrollIntoView(true);", heading)
        time.sleep(0.5)
    finally:
        kept = keep_screenshot(browser, tmp_path, "mlflow-compare-runs.png")
        print(f"screenshot of the compare page: {kept}")
    text = browser.find_element(By.TAG_NAME, "body").text
    for name in (*SHOWN, *RUNS):
        assert name in text, name
    # each metric name is a visible cell of the page, not only hidden text
    for name in SHOWN:
        cells = browser.find_elements(
            By.XPATH, f"//*[normalize-space(text())='{name}']"
        )
        assert any(cell.is_displayed() for cell in cells), name
    assert kept.stat().st_size > 10_000  # a rendered page, not a blank one


def test_run_page_shows_the_html_evaluation_report(ui, store, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _, experiment, run_ids = store
    browser.get(run_artifact_url(ui, experiment, run_ids[0]))
    try:
        # MLflow shows an HTML artifact in an iframe of the run's artifact tab.
        WebDriverWait(browser, 60, poll_frequency=0.5).until(
            ec.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe"))
        )
        WebDriverWait(browser, 30, poll_frequency=0.5).until(
            lambda d: "Headline metrics" in d.find_element(By.TAG_NAME, "body").text
        )
        text = browser.find_element(By.TAG_NAME, "body").text
    finally:
        browser.switch_to.default_content()
        kept = keep_screenshot(browser, tmp_path, "mlflow-run-report.png")
        print(f"screenshot of the report in the run page: {kept}")
    for heading in ("Headline metrics", "At the gate", "Subgroups", "Model card"):
        assert heading in text, heading
