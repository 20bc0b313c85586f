"""The reviewers' notebooks: committed without outputs, and they run end to end.

Each notebook is executed with nbclient in a fresh kernel (the venv's ``python3``)
against its own temporary MLflow store, so a broken notebook fails the suite.
Notebook 01 runs on the default 20,000-patient cohort. Notebooks 02 and 03 train
the models they need when the store has none; here they get a fast profile
(2,000 patients, a 2-setting search) through the ``parameters``
cell, as papermill would inject it, so the suite stays short. 500 held-out patients
estimate calibration loosely, so that profile widens the registration gate. On the
default profile they take longer (see notebooks/README.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((PROJECT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
#: A hang guard per cell, not a speed target (speed lives in benchmarks/).
CELL_TIMEOUT_SECONDS = 900

FAST_PROFILE = """\
cohort: {n: 2000, seed: 11}
model: {n_estimators: 120}
search: {n_iter: 2, cv_folds: 2, n_estimators: [80, 120]}
calibration: {cv_folds: 3}
registration: {cal_slope_min: 0.5, cal_slope_max: 2.0, max_abs_citl: 0.05,
               max_ici: 0.06, min_auroc_ci_low: 0.55, min_gate_events: 0}
"""


def test_the_three_notebooks_exist() -> None:
    assert [nb.stem for nb in NOTEBOOKS] == [
        "01-cohort",
        "02-model-comparison",
        "03-calibration-and-gate",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.id
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "one cell tagged 'parameters'"
    # no pipeline code in a notebook: analyses import it from the packages
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "\ndef " not in f"\n{source}" and "\nclass " not in f"\n{source}"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory) -> dict[str, str]:
    """Environment of the notebook kernels: an empty store of their own."""
    home = tmp_path_factory.mktemp("notebook-store")
    env = os.environ.copy()
    env.update(
        LNRISK_HOME=str(home),
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        TMPDIR=str(home),
        MLFLOW_DISABLE_TELEMETRY="true",
    )
    env.pop("MLFLOW_REGISTRY_URI", None)
    (home / "fast.yaml").write_text(FAST_PROFILE)
    return env


def _with_parameters(nb, overrides: str):
    """Insert ``overrides`` after the cell tagged ``parameters`` (papermill's way)."""
    index = next(
        i
        for i, cell in enumerate(nb.cells)
        if "parameters" in cell.metadata.get("tags", [])
    )
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(overrides))
    return nb


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_error(path: Path, kernel_env, tmp_path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    if not path.stem.startswith("01"):
        profile = Path(kernel_env["LNRISK_HOME"]) / "fast.yaml"
        nb = _with_parameters(nb, f"CONFIG_PATH = {str(profile)!r}")
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.perf_counter()
    client.execute(env=kernel_env)  # raises CellExecutionError on a failing cell
    seconds = time.perf_counter() - started
    print(f"{path.name}: {seconds:.1f} s")
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    images = sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )
    assert images, "every notebook shows its plots"
