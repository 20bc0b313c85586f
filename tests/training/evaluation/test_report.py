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
    assert report["uncertainty"] is None
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
    assert math.isnan(flat["n_in_band"])
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
    with pytest.raises(ValueError, match="both"):
        build_report(
            d["y"],
            d["p"],
            sex=d["sex"],
            age_years=d["age"],
            band_low=d["p"],
            threshold=0.5,
        )


# ── uncertainty band ─────────────────────────────────────────────────────────


def test_band_straddle_count_and_coverage() -> None:
    # Ten hand-made patients, repeated 4 times so every metric is defined.
    low = np.array([0.40, 0.50, 0.45, 0.10, 0.60, 0.30, 0.49, 0.00, 0.51, 0.20])
    high = np.array([0.60, 0.70, 0.50, 0.20, 0.80, 0.90, 0.51, 0.05, 0.90, 0.40])
    # straddles (low <= 0.5 < high): rows 0, 1, 5, 6 -> 4 of 10
    truth = np.array([0.55, 0.45, 0.47, 0.15, 0.70, 0.95, 0.50, 0.01, 0.40, 0.30])
    # covered (low <= truth <= high): all but rows 1, 5, 8 -> 7 of 10;
    # among straddlers rows 0 and 6 -> 2 of 4
    p = (low + high) / 2.0
    y = np.array([1, 0, 1, 0, 1, 1, 0, 0, 1, 0])
    reps = 4
    rep = build_report(
        np.tile(y, reps),
        np.tile(p, reps),
        sex=np.tile(["female", "male"], 5 * reps),
        age_years=np.full(10 * reps, 40.0),
        true_risk=np.tile(truth, reps),
        band_low=np.tile(low, reps),
        band_high=np.tile(high, reps),
        threshold=0.5,
    )
    band = rep["uncertainty"]
    assert band["n_in_band"] == 4 * reps
    assert band["share_in_band"] == pytest.approx(0.4)
    assert band["band_width_mean"] == pytest.approx(np.mean(high - low))
    assert band["band_coverage"] == pytest.approx(0.7)
    assert band["band_coverage_in_band"] == pytest.approx(0.5)
    flat = report_metrics(rep)
    assert flat["n_in_band"] == 16.0
    assert flat["band_coverage_in_band"] == pytest.approx(0.5)

    no_truth = build_report(
        np.tile(y, reps),
        np.tile(p, reps),
        sex=np.tile(["female", "male"], 5 * reps),
        age_years=np.full(10 * reps, 40.0),
        band_low=np.tile(low, reps),
        band_high=np.tile(high, reps),
        threshold=0.5,
    )
    assert no_truth["uncertainty"]["band_coverage"] is None
    assert no_truth["oracle"] is None
    assert math.isnan(report_metrics(no_truth)["band_coverage"])

    with pytest.raises(ValueError, match="band_low"):
        build_report(
            y, p, sex=["female"] * 10, age_years=np.full(10, 40.0),
            band_low=high, band_high=low, threshold=0.5,
        )  # fmt: skip


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


def test_gate_summary_section_holds_the_gate_table() -> None:
    rng = np.random.default_rng(8)
    n = 400
    p = rng.beta(1.5, 5.0, n)
    y = rng.binomial(1, p)
    low, high = np.clip(p - 0.15, 0, 1), np.clip(p + 0.15, 0, 1)
    args = {"sex": np.full(n, "female"), "age_years": np.full(n, 40.0)}
    rep = build_report(
        y, p, true_risk=p, band_low=low, band_high=high, threshold=0.5, n_boot=0,
        **args,
    )  # fmt: skip
    expected = gate_summary(p, low, high, true_risk=p, threshold=0.5)
    assert rep["gate_summary"] == expected.to_dict("records")
    plain = build_report(y, p, threshold=0.5, n_boot=0, **args)["gate_summary"]
    assert [r["group"] for r in plain] == [
        "above the gate",
        "at or below the gate",
        "total",
    ]
    assert all(r["n_true_above"] is None for r in plain)
    assert plain[-1]["n"] == n and plain[0]["n"] == int(np.sum(p > 0.5))
