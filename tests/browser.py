"""Headless Chromium for the browser tests (Debian's chromium and chromium-driver,
which `make setup` installs)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: Marks of a module driving a browser: slow, integration, and skipped (naming what
#: to install) where Chromium is not installed.
BROWSER_TEST = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists() or not CHROMEDRIVER.exists(),
        reason="Debian chromium + chromium-driver not installed (make setup installs "
        "them): /usr/bin/chromium, /usr/bin/chromedriver",
    ),
]


def headless_chromium(profile: Path) -> object:
    """A headless Chromium WebDriver with a fresh profile in ``profile`` (a large
    window, no background traffic); the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1800,1400",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    return driver


def keep_screenshot(driver: object, tmp_path: Path, name: str) -> Path:
    """Save the page as ``name`` and keep a copy outside the test's temporary
    folder (``<tmp>/lnrisk-ui/``), for a person to look at after the run."""
    shot = tmp_path / name
    driver.save_screenshot(str(shot))
    kept = Path(tempfile.gettempdir()) / "lnrisk-ui" / shot.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, kept)
    return kept
