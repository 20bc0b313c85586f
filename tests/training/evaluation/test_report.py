"""The evaluation report (training.evaluation.report) and its plots."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from data_schema import model_features
from training.evaluation import metrics as m
from training.evaluation.plots import (
    feature_label,
    plot_calibration,
    plot_decision_curve,
    plot_feature_importance,
    plot_risk_histogram,
    plot_roc,
    save_all_plots,
)
from training.evaluation.report import (
    AGE_BANDS,
    DECISION_CURVE_THRESHOLDS,
    REPORT_METRIC_KEYS,
    SECTIONS,
    age_band,
    build_report,
    gate_summary,
    report_metrics,
    report_to_json,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MLFLOW_KEY = re.compile(r"^[A-Za-z0-9_\-./ ]+$")


def _cohort(n: int, seed: int) -> dict[str, np.ndarray]:
    """y ~ Bernoulli(p) with a long right tail of p, as in the synthetic DGP."""
    rng = np.random.default_rng(seed)
    p = 1.0 / (1.0 + np.exp(-(-2.7 + rng.normal(0.0, 1.45, n))))
    y = rng.binomial(1, p)
    sex = np.where(rng.random(n) < 0.08, "male", "female")
    age = rng.normal(34.0, 11.0, n).clip(18, 75)
    age[rng.random(n) < 0.03] = np.nan
    return {"y": y, "p": p, "sex": sex, "age": age}


@pytest.fixture(scope="module")
def cohort() -> dict[str, np.ndarray]:
    return _cohort(20_000, seed=11)


@pytest.fixture(scope="module")
def report(cohort: dict[str, np.ndarray]) -> dict:
    return build_report(
        cohort["y"],
        cohort["p"],
        sex=cohort["sex"],
        age_years=cohort["age"],
        threshold=0.5,
    )


@pytest.fixture(scope="module")
def perfect(cohort: dict[str, np.ndarray]) -> dict:
    """The model is the truth: every oracle ratio is at its ideal."""
    return build_report(
        cohort["y"],
        cohort["p"],
        sex=cohort["sex"],
        age_years=cohort["age"],
        true_risk=cohort["p"],
        threshold=0.5,
    )


# ── sections and values ──────────────────────────────────────────────────────


def test_sections_are_fixed_and_optional_ones_are_none(report: dict) -> None:
    assert tuple(report) == SECTIONS
    assert report["oracle"] is None
    assert report["gate"] is None
    assert report["population"] is None
    groups = [(r["attribute"], r["group"]) for r in report["subgroups"]]
    assert groups == [("sex", "female"), ("sex", "male")] + [
        ("age_band", b) for b in AGE_BANDS
    ]


def test_values_equal_the_metric_functions(cohort: dict, report: dict) -> None:
    y, p = cohort["y"], cohort["p"]
    headline = m.classification_report(y, p, 0.5)
    assert report["summary"] == pytest.approx(headline)

    auc, low, high = m.auroc_ci(y, p)
    disc = report["discrimination"]
    assert (disc["auroc"], disc["auroc_ci_low"], disc["auroc_ci_high"]) == (
        pytest.approx(auc),
        pytest.approx(low),
        pytest.approx(high),
    )
    assert disc["auprc"] == pytest.approx(m.auprc(y, p))

    cal = report["calibration"]
    assert cal["brier"] == pytest.approx(m.brier(y, p))
    assert cal["citl"] == pytest.approx(m.calibration_in_the_large(y, p))
    assert (cal["cal_intercept"], cal["cal_slope"]) == pytest.approx(
        m.calibration_slope(y, p)
    )
    assert (cal["ici"], cal["e50"], cal["e90"]) == pytest.approx(m.ici_e50_e90(y, p))
    expected_curve = m.calibration_curve_table(y, p, n_bins=10)
    assert pd.DataFrame(cal["curve"]).to_numpy(float) == pytest.approx(
        expected_curve.to_numpy(float)
    )
    assert len(cal["curve"]) == 10


def test_threshold_table_and_decision_curve(cohort: dict, report: dict) -> None:
    y, p = cohort["y"], cohort["p"]
    table = {row["threshold"]: row for row in report["threshold_table"]}
    assert sorted(table) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    gate = m.threshold_metrics(y, p, 0.5)
    row = table[0.5]
    for key in ("sensitivity", "specificity", "ppv", "npv", "share_above"):
        assert row[key] == pytest.approx(gate[key])
    for key in ("tp", "fp", "tn", "fn", "n_above"):
        assert row[key] == int(gate[key])
    assert row["tp"] + row["fn"] == int(y.sum())

    utility = report["clinical_utility"]
    assert utility["nb_at_gate"] == pytest.approx(m.net_benefit(y, p, 0.5))
    assert utility["nb_treat_all_at_gate"] == pytest.approx(
        m.net_benefit_treat_all(y, 0.5)
    )
    curve = pd.DataFrame(utility["decision_curve"])
    expected = m.decision_curve(y, p, DECISION_CURVE_THRESHOLDS)
    assert curve["threshold"].tolist() == pytest.approx(
        [0.05 * k for k in range(1, 17)]
    )
    for col in ("net_benefit_model", "net_benefit_all", "net_benefit_none"):
        assert curve[col].to_numpy(float) == pytest.approx(expected[col].to_numpy())
    assert curve["net_benefit_oracle"].isna().all()


def test_gate_row_is_added_to_any_threshold_list(cohort: dict) -> None:
    small = {k: v[:2000] for k, v in cohort.items()}
    rep = build_report(
        small["y"], small["p"], sex=small["sex"], age_years=small["age"],
        thresholds=(0.3,), threshold=0.5,
    )  # fmt: skip
    assert [r["threshold"] for r in rep["threshold_table"]] == [0.3, 0.5]


def test_prediction_distribution(cohort: dict, report: dict) -> None:
    p = cohort["p"]
    dist = report["prediction_distribution"]
    assert dist["quantiles"]["p50"] == pytest.approx(np.median(p))
    assert dist["quantiles"]["p99"] == pytest.approx(np.quantile(p, 0.99))
    assert dist["mean"] == pytest.approx(p.mean())
    assert len(dist["histogram"]["bin_edges"]) == 21
    assert sum(dist["histogram"]["counts"]) == len(p)
    assert dist["n_above_gate"] == int(np.sum(p > 0.5))
    assert dist["share_above_gate"] == pytest.approx(np.mean(p > 0.5))


def test_subgroup_values_match_metrics_on_the_subset(cohort: dict, report: dict):
    female = cohort["sex"] == "female"
    row = report["subgroups"][0]
    assert row["group"] == "female" and not row["suppressed"]
    y, p = cohort["y"][female], cohort["p"][female]
    assert row["n"] == int(female.sum())
    assert row["events"] == int(y.sum())
    assert row["auroc"] == pytest.approx(m.auroc(y, p))
    assert row["brier"] == pytest.approx(m.brier(y, p))
    assert row["citl"] == pytest.approx(m.calibration_in_the_large(y, p))
    gate = m.threshold_metrics(y, p, 0.5)
    assert row["sensitivity_at_gate"] == pytest.approx(gate["sensitivity"])
    assert row["ppv_at_gate"] == pytest.approx(gate["ppv"])


# ── flat metrics ─────────────────────────────────────────────────────────────


def test_report_metrics_keys_are_fixed_and_valid_for_mlflow(report: dict) -> None:
    flat = report_metrics(report)
    assert tuple(flat) == REPORT_METRIC_KEYS
    assert len(set(REPORT_METRIC_KEYS)) == len(REPORT_METRIC_KEYS)
    assert all(MLFLOW_KEY.match(key) for key in REPORT_METRIC_KEYS)
    assert all(isinstance(v, float) for v in flat.values())
    for key in m.METRIC_KEYS:
        assert flat[key] == pytest.approx(report["summary"][key])
    absent = [k for k in REPORT_METRIC_KEYS if k not in m.METRIC_KEYS]
    assert all(math.isnan(flat[k]) for k in absent)


def test_perfect_model_against_its_own_truth(perfect: dict) -> None:
    oracle = perfect["oracle"]
    assert oracle["auroc_gap"] == 0.0
    assert oracle["nb_ratio"] == pytest.approx(1.0)
    assert oracle["share_true_high_above_gate"] == 1.0
    assert oracle["share_above_gate_true_high"] == 1.0
    assert oracle["mean_abs_error_vs_truth"] == 0.0
    flat = report_metrics(perfect)
    assert flat["oracle_auroc"] == pytest.approx(flat["auroc"])
    assert flat["oracle_auroc_gap"] == 0.0
    assert flat["oracle_nb_ratio"] == pytest.approx(1.0)
    assert flat["mae_vs_truth"] == 0.0
    assert math.isnan(flat["gate_review_share"])
    dc = perfect["clinical_utility"]["decision_curve"]
    assert all(r["net_benefit_oracle"] == r["net_benefit_model"] for r in dc)


# ── small cells and undefined metrics ────────────────────────────────────────


def _small_groups() -> dict[str, np.ndarray]:
    """2,000 patients: 9 men; the 45+ band has plenty of patients but 5 events."""
    rng = np.random.default_rng(3)
    n = 2000
    p = rng.uniform(0.02, 0.6, n)
    y = rng.binomial(1, p)
    sex = np.array(["female"] * n, dtype=object)
    sex[:9] = "male"
    age = np.full(n, 35.0)
    older = np.arange(100, 300)
    age[older] = 60.0
    y[older] = 0
    y[older[:5]] = 1
    age[300:320] = np.nan
    return {"y": y, "p": p, "sex": sex, "age": age}


def test_small_cells_are_suppressed() -> None:
    d = _small_groups()
    rep = build_report(d["y"], d["p"], sex=d["sex"], age_years=d["age"], threshold=0.5)
    rows = {r["group"]: r for r in rep["subgroups"]}

    men = rows["male"]
    assert men["suppressed"] is True
    assert men["n"] == "<10"
    assert all(men[k] is None for k in ("auroc", "brier", "citl", "ppv_at_gate"))

    older = rows["45+"]
    assert older["suppressed"] is True
    assert older["n"] == 200  # enough patients, shown
    assert older["events"] == "<10"
    assert older["auroc"] is None and older["mean_predicted"] is None

    assert rows["18-29"]["suppressed"] is True  # nobody in the band
    assert rows["18-29"]["n"] == "<10"
    assert rows["female"]["suppressed"] is False
    assert rows["30-44"]["suppressed"] is False


def test_events_withheld_when_non_events_are_the_small_cell() -> None:
    d = _small_groups()
    d["y"][100:300] = 1
    d["y"][100:105] = 0  # 195 events, 5 non-events among the 45+
    rep = build_report(d["y"], d["p"], sex=d["sex"], age_years=d["age"], threshold=0.5)
    older = next(r for r in rep["subgroups"] if r["group"] == "45+")
    assert older["suppressed"] is True
    assert older["n"] == 200
    assert older["events"] is None  # n − events would reveal the 5


def test_undefined_subgroup_metrics_are_none_not_errors() -> None:
    d = _small_groups()
    # min_cell=0 shows every group, including 45+ ... after removing its events.
    d["y"][100:300] = 0
    rep = build_report(
        d["y"], d["p"], sex=d["sex"], age_years=d["age"], min_cell=0, threshold=0.5
    )
    older = next(r for r in rep["subgroups"] if r["group"] == "45+")
    assert older["suppressed"] is False
    assert older["events"] == 0
    assert older["auroc"] is None  # no events: AUROC undefined
    assert older["citl"] is None
    assert older["sensitivity_at_gate"] is None
    assert older["brier"] == pytest.approx(m.brier(d["y"][100:300], d["p"][100:300]))


def test_json_round_trip_writes_nan_as_null(report: dict) -> None:
    text = report_to_json(report)
    assert json.loads(text) == report
    assert "NaN" not in text
    odd = {"a": math.nan, "b": [math.inf, np.float64(0.5)], "c": np.int64(3)}
    assert json.loads(report_to_json(odd)) == {"a": None, "b": [None, 0.5], "c": 3}
    # The report itself is already strict JSON.
    json.dumps(report, allow_nan=False)
    flat = report_metrics(json.loads(text))
    assert flat["auroc"] == pytest.approx(report["summary"]["auroc"])


def test_age_bands_and_input_checks() -> None:
    ages = [18, 29.9, 30, 44.9, 45, 80, math.nan]
    assert age_band(ages).tolist() == [
        "18-29", "18-29", "30-44", "30-44", "45+", "45+", "unknown",
    ]  # fmt: skip
    d = _small_groups()
    bad_sex = d["sex"].copy()
    bad_sex[0] = "x"
    with pytest.raises(ValueError, match="sex"):
        build_report(d["y"], d["p"], sex=bad_sex, age_years=d["age"], threshold=0.5)


# ── the three-valued gate ────────────────────────────────────────────────────


def _gate_case() -> dict:
    """Ten hand-made patients, repeated 4 times so every metric is defined."""
    state = ["above", "above", "above", "undetermined", "undetermined",
             "below", "below", "below", "below", "below"]  # fmt: skip
    truth = np.array([0.9, 0.7, 0.4, 0.6, 0.3, 0.1, 0.2, 0.55, 0.05, 0.1])
    y = np.array([1, 1, 0, 1, 0, 0, 0, 1, 0, 0])
    reps = 4
    return {
        "y": np.tile(y, reps),
        "p": np.tile(np.clip(truth, 0.01, 0.99), reps),
        "truth": np.tile(truth, reps),
        "gate": {
            "state": state * reps,
            "for_missing_data": [i % 10 == 3 for i in range(10 * reps)],
            "exclude_edge": 0.3,
            "pass_edge": 0.6,
            "method": "hand-made",
        },
        "args": {
            "sex": np.tile(["female", "male"], 5 * reps),
            "age_years": np.full(10 * reps, 40.0),
            "threshold": 0.5,
            "n_boot": 0,
        },
    }


def test_gate_groups_event_rates_and_truth() -> None:
    case = _gate_case()
    rep = build_report(
        case["y"], case["p"], true_risk=case["truth"], gate=case["gate"],
        **case["args"],
    )  # fmt: skip
    gate = rep["gate"]
    rows = {r["group"]: r for r in gate["groups"]}
    assert [r["group"] for r in gate["groups"]] == [
        "auto-passed",
        "reviewed",
        "auto-excluded",
    ]
    assert (rows["auto-passed"]["n"], rows["auto-passed"]["events"]) == (12, 8)
    assert (rows["reviewed"]["n"], rows["reviewed"]["events"]) == (8, 4)
    assert (rows["auto-excluded"]["n"], rows["auto-excluded"]["events"]) == (20, 4)
    low, high = m.wilson_interval(4, 20)
    assert rows["auto-excluded"]["event_rate"] == pytest.approx(0.2)
    assert rows["auto-excluded"]["event_rate_ci_low"] == pytest.approx(low)
    assert rows["auto-excluded"]["event_rate_ci_high"] == pytest.approx(high)
    assert gate["review_share"] == pytest.approx(0.2)
    assert gate["reviewed_for_missing_data"] == 4
    # truly above 0.5: rows 0, 1, 3, 7 -> one of four auto-excluded (row 7);
    # of the auto-passed rows 0, 1, 2, two of three truly are above
    assert gate["truth"]["excluded_true_high"] == pytest.approx(0.25)
    assert gate["truth"]["passed_true_high"] == pytest.approx(2 / 3)
    assert rows["auto-excluded"]["n_true_high"] == 4
    flat = report_metrics(rep)
    assert flat["gate_excluded_events"] == 4.0
    assert flat["gate_exclude_edge"] == 0.3 and flat["gate_pass_edge"] == 0.6
    assert flat["gate_excluded_true_high"] == pytest.approx(0.25)
    table = gate_summary(rep)
    assert table["n"].tolist() == [12, 8, 20]
    assert "n_true_high" in table.columns


def test_gate_without_truth_or_without_gate() -> None:
    case = _gate_case()
    rep = build_report(case["y"], case["p"], gate=case["gate"], **case["args"])
    assert rep["gate"]["truth"] is None
    assert math.isnan(report_metrics(rep)["gate_passed_true_high"])
    assert "n_true_high" not in gate_summary(rep).columns
    plain = build_report(case["y"], case["p"], **case["args"])
    assert plain["gate"] is None
    assert gate_summary(plain).empty
    assert all(
        math.isnan(v) for k, v in report_metrics(plain).items() if k.startswith("gate_")
    )


def test_gate_states_are_checked() -> None:
    case = _gate_case()
    wrong = dict(case["gate"], state=["above"] * 3)
    with pytest.raises(ValueError, match="gate\\['state'\\]"):
        build_report(case["y"], case["p"], gate=wrong, **case["args"])
    odd = dict(case["gate"], state=["maybe"] * len(case["y"]))
    with pytest.raises(ValueError, match="one of"):
        build_report(case["y"], case["p"], gate=odd, **case["args"])


# ── plots ────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    d = _cohort(800, seed=5)
    rng = np.random.default_rng(6)
    d["truth"] = np.clip(d["p"] + rng.normal(0, 0.03, len(d["p"])), 0, 1)
    return d


def _is_png(path) -> bool:
    return (
        path.is_file()
        and path.stat().st_size > 1000
        and (path.read_bytes()[:8] == PNG_MAGIC)
    )


def test_each_plot_writes_a_png(small: dict, tmp_path) -> None:
    y, p, truth = small["y"], small["p"], small["truth"]
    rep = build_report(
        y, p, sex=small["sex"], age_years=small["age"], true_risk=truth, threshold=0.5
    )
    importance = pd.Series(
        np.linspace(1.0, 0.0, len(model_features())), index=list(model_features())
    )
    paths = [
        plot_roc(y, p, tmp_path / "a" / "roc.png", true_risk=truth, threshold=0.5),
        plot_roc(y, p, tmp_path / "roc_plain.png", threshold=0.5),
        plot_calibration(
            y, p, tmp_path / "cal.png", true_risk=truth, n_boot=20, threshold=0.5
        ),
        plot_decision_curve(rep, tmp_path / "dc.png", threshold=0.5),
        plot_decision_curve(
            pd.DataFrame(rep["clinical_utility"]["decision_curve"]),
            tmp_path / "dc_frame.png",
            threshold=0.5,
        ),
        plot_risk_histogram(p, tmp_path / "hist.png", true_risk=truth, threshold=0.5),
        plot_feature_importance(importance, tmp_path / "imp.png", top=5),
    ]
    assert all(_is_png(path) for path in paths)


def test_calibration_plot_with_an_all_zero_bin(tmp_path) -> None:
    # Wilson bounds of an observed 0 can round past it; error bars must not fail.
    y = np.zeros(300)
    y[-40:] = 1
    p = np.linspace(0.001, 0.9, 300)
    assert _is_png(
        plot_calibration(y, p, tmp_path / "edge.png", n_boot=10, threshold=0.5)
    )


def test_save_all_plots(small: dict, tmp_path) -> None:
    y, p = small["y"], small["p"]
    rep = build_report(y, p, sex=small["sex"], age_years=small["age"], threshold=0.5)
    importance = pd.Series([0.3, 0.2], index=["c3_g_l", "male"])
    paths = save_all_plots(y, p, tmp_path / "plots", report=rep, importance=importance)
    assert [path.name for path in paths] == [
        "roc.png",
        "calibration.png",
        "decision_curve.png",
        "risk_histogram.png",
        "feature_importance.png",
    ]
    assert all(_is_png(path) for path in paths)


def test_feature_labels_come_from_the_schema() -> None:
    assert feature_label("c3_g_l") == "Complement C3 (g/L)"
    assert feature_label("male") == "Male sex (boolean)"
    assert feature_label("creatinine_umol_l") == "Serum creatinine (µmol/L)"
    assert feature_label("not_a_feature") == "not_a_feature"


# ── intervals and the gate summary ───────────────────────────────────────────


def test_intervals_section_is_computed_once_in_the_report(cohort: dict) -> None:
    small = {k: v[:2000] for k, v in cohort.items()}
    args = {"sex": small["sex"], "age_years": small["age"], "threshold": 0.5}
    rep = build_report(small["y"], small["p"], n_boot=60, seed=3, **args)
    found = rep["intervals"]
    assert (found["level"], found["n_boot"], found["seed"]) == (0.95, 60, 3)
    entries = found["metrics"]
    assert set(entries) == {s.key for s in m.METRICS if s.interval != "none"}
    auroc = entries["auroc"]
    assert auroc["method"] == "DeLong"
    assert (auroc["low"], auroc["high"]) == (
        rep["summary"]["auroc_ci_low"],
        rep["summary"]["auroc_ci_high"],
    )
    gate = m.threshold_metrics(small["y"], small["p"], 0.5)
    ppv = m.wilson_interval(gate["tp"], gate["tp"] + gate["fp"])
    assert entries["ppv_at_gate"]["method"] == "Wilson"
    assert (entries["ppv_at_gate"]["low"], entries["ppv_at_gate"]["high"]) == (
        pytest.approx(ppv)
    )
    events = int(small["y"].sum())
    assert (entries["prevalence"]["low"], entries["prevalence"]["high"]) == (
        pytest.approx(m.wilson_interval(events, 2000))
    )
    for key in ("brier", "cal_slope", "nb_at_gate"):
        entry = entries[key]
        assert entry["method"] == "bootstrap"
        assert entry["low"] <= rep["summary"][key] <= entry["high"], key
    # the same seed gives the same intervals; another seed other bootstrap ones
    again = build_report(small["y"], small["p"], n_boot=60, seed=3, **args)
    other = build_report(small["y"], small["p"], n_boot=60, seed=4, **args)
    assert again["intervals"] == found
    assert other["intervals"]["metrics"]["brier"] != entries["brier"]
    assert other["intervals"]["metrics"]["auroc"] == entries["auroc"]


def test_without_resamples_the_bootstrap_intervals_are_empty(cohort: dict) -> None:
    small = {k: v[:500] for k, v in cohort.items()}
    rep = build_report(
        small["y"], small["p"], sex=small["sex"], age_years=small["age"],
        threshold=0.5, n_boot=0,
    )  # fmt: skip
    entries = rep["intervals"]["metrics"]
    assert entries["brier"] == {"low": None, "high": None, "method": "none"}
    assert entries["sens_at_gate"]["method"] == "Wilson"
    assert entries["sens_at_gate"]["low"] is not None
