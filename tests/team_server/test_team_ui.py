"""The team server's compare page, in headless Chromium, after logging in.

Two runs are logged to the team server through its REST API (as the pipeline tags
them); without credentials the server answers 401; a reviewer logs in (HTTP basic
auth, sent by the browser on every request) and the compare-runs page shows both
runs and the metric names. The screenshot goes to ``$TMPDIR/lnrisk-ui/``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.browser import BROWSER_TEST, headless_chromium, keep_screenshot
from training.registry.compare import compare_page_url
from training.registry.tracking import RUN_TAG_KEYS

pytestmark = BROWSER_TEST

SHOWN = ("auroc", "brier", "cal_slope", "ici")
RUNS = {
    "train-team-xgboost-1a2b3c": (0.824, 0.0733, 1.07, 0.0064),
    "train-team-logistic-4d5e6f": (0.827, 0.0726, 1.06, 0.0055),
}


@pytest.fixture(scope="module")
def two_runs(team_server) -> tuple[str, list[str]]:
    """Two finished runs with the common tags; (experiment id, run ids)."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    with team_server.as_admin():
        client = MlflowClient(tracking_uri=team_server.url)
        experiment = client.get_experiment_by_name("ln-risk-2y").experiment_id
        now = int(time.time() * 1000)
        run_ids = []
        for name, (auroc, brier, slope, ici) in RUNS.items():
            run = client.create_run(experiment, run_name=name)
            tags = {key: "ui-test" for key in RUN_TAG_KEYS} | {"run_kind": "train"}
            metrics = {"auroc": auroc, "brier": brier, "cal_slope": slope, "ici": ici}
            client.log_batch(
                run.info.run_id,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            client.set_terminated(run.info.run_id)
            run_ids.append(run.info.run_id)
    return experiment, run_ids


@pytest.fixture(scope="module")
def browser(team_server, tmp_path_factory) -> Iterator[object]:
    """Headless Chromium logged in as the reviewer (basic auth on every request)."""
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-team"))
    user = "rita-reviewer"
    token = base64.b64encode(f"{user}:{team_server.passwords[user]}".encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )
    try:
        yield driver
    finally:
        driver.quit()


def test_the_ui_needs_a_login(team_server) -> None:
    response = httpx.get(
        f"{team_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    )
    assert response.status_code == 401


def test_compare_page_after_login(team_server, two_runs, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    experiment, run_ids = two_runs
    browser.get(compare_page_url(team_server.url, run_ids, [experiment]))

    def loaded(driver) -> bool:
        text = driver.find_element(By.TAG_NAME, "body").text
        return all(name in text for name in (*SHOWN, *RUNS))

    try:
        WebDriverWait(browser, 90, poll_frequency=0.5).until(loaded)
    finally:
        kept = keep_screenshot(browser, tmp_path, "team-server-compare-runs.png")
        print(f"screenshot of the team server's compare page: {kept}")
    for name in SHOWN:
        cells = browser.find_elements(
            By.XPATH, f"//*[normalize-space(text())='{name}']"
        )
        assert any(cell.is_displayed() for cell in cells), name
