"""Imports flow one way: the import-linter contracts of pyproject.toml hold, and a
deliberate violation breaks them (so the check can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "data_schema",
    "synthetic",
    "riskmodel",
    "eligibility",
    "training",
    "serving",
)
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", "pyproject.toml", "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _copy_of_the_packages(tmp_path: Path) -> Path:
    shutil.copy(PROJECT / "pyproject.toml", tmp_path)
    for package in PACKAGES:
        shutil.copytree(
            PROJECT / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns("*.pyc", "__pycache__"),
        )
    return tmp_path


def test_the_import_contracts_hold() -> None:
    result = _lint(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract", "chain"),
    [
        (
            "eligibility/rules.py",
            "import training.config",
            "what a site runs never imports training",
            "eligibility.rules -> training.config",
        ),
        (
            "riskmodel/maths.py",
            "import mlflow",
            "MLflow is imported only in training.registry",
            "riskmodel.maths -> mlflow",
        ),
        (
            "training/pipeline.py",
            "import synthetic",
            "the training path does not import the synthetic generator",
            "training.pipeline -> synthetic",
        ),
    ],
)
def test_a_deliberate_violation_is_caught(
    tmp_path: Path, module: str, line: str, contract: str, chain: str
) -> None:
    root = _copy_of_the_packages(tmp_path)
    with (root / module).open("a") as f:
        f.write(f"\n{line}  # a deliberate violation\n")
    result = _lint(root)
    assert result.returncode == 1, result.stdout
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
    assert chain in result.stdout
