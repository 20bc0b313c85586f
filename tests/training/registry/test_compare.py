"""Two runs side by side, and the candidate families on one table (no MLflow)."""

from __future__ import annotations

import json
import math
from urllib.parse import unquote

import pytest

from training.config import load_config
from training.evaluation.report import REPORT_METRIC_KEYS
from training.registry.compare import (
    ORACLE_COLUMN,
    RunSnapshot,
    candidate_config,
    compare_page_url,
    compare_table,
    family_table,
    format_delta,
    format_value,
)
from training.registry.tracking import RUN_TAG_KEYS


def _run(run_id: str, **parts: dict) -> RunSnapshot:
    return RunSnapshot(
        run_id=run_id, run_name=f"name-{run_id}", experiment_id="1", **parts
    )


A = _run(
    "a" * 32,
    tags={"run_kind": "train", "git_commit": "1234", "data_digest": "d1", "zz": "x"},
    params={"seed": "7", "model.family": "xgboost"},
    metrics={"auroc": 0.80, "brier": 0.07, "ici": math.nan, "extra": 1.0},
)
B = _run(
    "b" * 32,
    tags={"run_kind": "train", "git_commit": "1235", "data_digest": "d1"},
    params={"seed": "8", "model.family": "xgboost"},
    metrics={"auroc": 0.83, "brier": 0.07, "ici": math.nan},
)


def _row(table, section: str, key: str) -> dict:
    rows = table[(table["section"] == section) & (table["key"] == key)]
    assert len(rows) == 1, (section, key)
    return rows.iloc[0].to_dict()


def test_rows_follow_the_fixed_key_order_then_the_rest() -> None:
    table = compare_table(A, B)
    assert list(dict.fromkeys(table["section"])) == ["tags", "params", "metrics"]
    tags = list(table.loc[table["section"] == "tags", "key"])
    assert tags == [
        k for k in RUN_TAG_KEYS if k in {"run_kind", "git_commit", "data_digest"}
    ] + ["zz"]
    metrics = list(table.loc[table["section"] == "metrics", "key"])
    known = [k for k in REPORT_METRIC_KEYS if k in {"auroc", "brier", "ici"}]
    assert metrics == [*known, "extra"]


def test_differences_are_marked_with_b_minus_a() -> None:
    table = compare_table(A, B)
    auroc = _row(table, "metrics", "auroc")
    assert auroc["differs"] and auroc["delta"] == pytest.approx(0.03)
    assert not _row(table, "metrics", "brier")["differs"]
    # NaN on both sides is the same value, not a difference
    assert not _row(table, "metrics", "ici")["differs"]
    seed = _row(table, "params", "seed")
    assert seed["differs"] and seed["delta"] == pytest.approx(1.0)
    assert not _row(table, "params", "model.family")["differs"]


def test_a_key_one_run_lacks_is_a_difference() -> None:
    table = compare_table(A, B)
    extra = _row(table, "metrics", "extra")
    assert extra["differs"] and extra["b"] is None and math.isnan(extra["delta"])
    assert _row(table, "tags", "zz")["differs"]


def test_tags_get_no_numeric_delta() -> None:
    commit = _row(compare_table(A, B), "tags", "git_commit")
    assert commit["differs"] and math.isnan(commit["delta"])


def test_only_differences_and_sections() -> None:
    table = compare_table(A, B, sections=("metrics",), only_differences=True)
    assert set(table["key"]) == {"auroc", "extra"}
    assert table["differs"].all()
    with pytest.raises(ValueError, match="unknown sections"):
        compare_table(A, B, sections=("labels",))


def test_printed_cells() -> None:
    assert format_value(None) == "—"
    assert format_value(0.123456) == "0.1235"
    assert format_value(math.nan) == "nan"
    assert format_value("0.25") == "0.25"  # params as logged
    assert format_delta(0.03) == "+0.03"
    assert format_delta(-2.0) == "-2"
    assert format_delta(None) == format_delta(0.0) == format_delta(math.nan) == ""


def _family_run(run_id: str, auroc: float, digest: str = "t1") -> RunSnapshot:
    return _run(
        run_id,
        tags={"test_digest": digest},
        metrics={"auroc": auroc, "oracle_auroc": 0.84, "brier": 0.07},
    )


def test_family_table_puts_the_oracle_beside_the_families() -> None:
    runs = {
        "logistic": _family_run("l" * 32, 0.82),
        "xgboost": _family_run("x" * 32, 0.81),
    }
    table = family_table(runs, keys=("auroc", "brier", "ici"))
    assert list(table.columns) == ["logistic", "xgboost", ORACLE_COLUMN]
    assert table.loc["auroc", "logistic"] == 0.82
    assert table.loc["auroc", ORACLE_COLUMN] == 0.84
    assert math.isnan(table.loc["ici", "xgboost"])  # not logged: NaN, not an error


def test_family_table_refuses_runs_on_different_patients() -> None:
    runs = {
        "a": _family_run("a" * 32, 0.8, "t1"),
        "b": _family_run("b" * 32, 0.8, "t2"),
    }
    with pytest.raises(ValueError, match="different test sets"):
        family_table(runs)
    with pytest.raises(ValueError, match="not headline metric keys"):
        family_table({"a": runs["a"]}, keys=("oracle_auroc",))


def test_compare_page_url_is_the_mlflow_3_route() -> None:
    url = compare_page_url("http://127.0.0.1:5000/", ["r1", "r2"], ["2", "1", "2"])
    base, query = url.split("#/compare-runs?")
    assert base == "http://127.0.0.1:5000/"
    runs, experiments = (unquote(part.split("=", 1)[1]) for part in query.split("&"))
    assert json.loads(runs) == ["r1", "r2"]
    assert json.loads(experiments) == ["1", "2"]


def test_candidate_config_changes_family_and_registry_only() -> None:
    base = load_config()
    cfg = candidate_config(base, "rifle_ln", "ln-risk-candidates")
    assert cfg.model.family == "rifle_ln"
    assert cfg.tracking.registered_model == "ln-risk-candidates"
    assert cfg.tracking.experiment == base.tracking.experiment  # one experiment
    assert cfg.cohort == base.cohort and cfg.split == base.split
