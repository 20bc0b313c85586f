"""Metric functions against hand-computed values, invariants and simulation.

The hand-computed cases share one 6-row example (``Y6``, ``P6``) that holds a tie
between an event and a non-event and two patients exactly at the 0.5 gate.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logit
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from training.evaluation import metrics as m

# events:      0.9, 0.5, 0.3      non-events: 0.5, 0.2, 0.1
Y6 = np.array([1, 1, 1, 0, 0, 0])
P6 = np.array([0.9, 0.5, 0.3, 0.5, 0.2, 0.1])
Z95 = norm.ppf(0.975)


# ── discrimination ───────────────────────────────────────────────────────────


def test_auroc_counts_a_tie_as_one_half():
    # 3 × 3 = 9 event/non-event pairs:
    #   0.9 beats 0.5, 0.2, 0.1                    -> 3
    #   0.5 ties 0.5 (½), beats 0.2, 0.1           -> 2.5
    #   0.3 loses to 0.5, beats 0.2, 0.1           -> 2
    # AUROC = 7.5 / 9 = 5/6
    assert m.auroc(Y6, P6) == pytest.approx(5 / 6, abs=1e-12)


def test_auroc_extremes_and_sklearn_agreement():
    assert m.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert m.auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert m.auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    rng = np.random.default_rng(3)
    p = rng.integers(0, 11, 500) / 10  # 11 distinct values: many ties
    y = (rng.random(500) < p).astype(int)
    assert m.auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_auprc_hand_value_and_sklearn_agreement():
    # Descending p: 0.9 (event)  P=1,   R=1/2
    #               0.8 (none)   P=1/2, R=1/2
    #               0.7 (event)  P=2/3, R=1
    # AP = Σ ΔR·P = 1/2·1 + 0 + 1/2·2/3 = 5/6
    assert m.auprc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    rng = np.random.default_rng(4)
    p = rng.random(300)
    y = (rng.random(300) < p).astype(int)
    assert m.auprc(y, p) == pytest.approx(average_precision_score(y, p))


def _delong_by_definition(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """DeLong (1988) variance from the m × n comparison matrix, no ranks."""
    x, z = p[y == 1], p[y == 0]
    psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(z)


def test_delong_interval_hand_computed():
    # Placement values (share of the other class beaten, ties ½):
    #   events     V10 = [3/3, 2.5/3, 2/3] = [1, 5/6, 2/3]; mean 5/6 = AUROC
    #   non-events V01 = [(1 + ½ + 0)/3, 3/3, 3/3] = [1/2, 1, 1]
    # S10 = ((1/6)² + 0 + (1/6)²)/2 = 1/36
    # S01 = ((1/3)² + (1/6)² + (1/6)²)/2 = 1/12
    # Var = S10/3 + S01/3 = 1/108 + 3/108 = 1/27, SE = 0.19245
    # 95 % CI = 5/6 ± 1.95996 × 0.19245 = (0.4561, 1.2105) -> high clipped to 1
    est, low, high = m.auroc_ci(Y6, P6)
    assert est == pytest.approx(5 / 6)
    assert low == pytest.approx(5 / 6 - Z95 / math.sqrt(27), abs=1e-12)
    assert low == pytest.approx(0.4561, abs=1e-4)
    assert high == 1.0


def test_fast_delong_equals_the_definition_with_heavy_ties():
    rng = np.random.default_rng(5)
    p = rng.integers(0, 6, 400) / 5  # six values: most pairs tie
    y = (rng.random(400) < 0.2 + 0.6 * p).astype(int)
    auc, var = _delong_by_definition(y, p)
    est, low, high = m.auroc_ci(y, p, level=0.9)
    half = norm.ppf(0.95) * math.sqrt(var)
    assert est == pytest.approx(auc, abs=1e-12)
    assert (low, high) == pytest.approx((auc - half, auc + half), abs=1e-12)


def test_delong_standard_error_matches_the_bootstrap():
    rng = np.random.default_rng(6)
    n = 300
    y = (rng.random(n) < 0.3).astype(int)
    p = expit(-1.0 + 1.2 * y + rng.normal(size=n))
    _, low, high = m.auroc_ci(y, p)
    se_delong = (high - low) / (2 * Z95)
    boot = np.empty(2000)
    for b in range(len(boot)):
        idx = rng.integers(0, n, n)
        boot[b] = m.auroc(y[idx], p[idx])
    # 2,000 replicates: Monte-Carlo error of the bootstrap SE is about 1.6 %.
    assert se_delong == pytest.approx(boot.std(ddof=1), rel=0.10)
    lo_b, hi_b = np.quantile(boot, [0.025, 0.975])
    assert low == pytest.approx(lo_b, abs=0.02)
    assert high == pytest.approx(hi_b, abs=0.02)


def test_delong_interval_contains_estimate_and_narrows_with_n():
    rng = np.random.default_rng(7)
    widths = []
    for n in (200, 2_000, 20_000):
        y = (rng.random(n) < 0.3).astype(int)
        p = expit(-1.0 + 1.2 * y + rng.normal(size=n))
        est, low, high = m.auroc_ci(y, p)
        assert low < est < high
        widths.append(high - low)
    # Width ∝ 1/√n: each tenfold increase shrinks it about √10 ≈ 3.2 times.
    assert widths[1] < widths[0] / 2
    assert widths[2] < widths[1] / 2


def test_delong_interval_is_nan_with_a_single_event():
    est, low, high = m.auroc_ci([1, 0, 0], [0.9, 0.2, 0.1])
    assert est == 1.0
    assert math.isnan(low) and math.isnan(high)


# ── Brier, O:E ───────────────────────────────────────────────────────────────


def test_brier_and_scaled_brier_hand_computed():
    # (p − y)² = 0.1², 0.5², 0.7², 0.5², 0.2², 0.1²
    #          = 0.01 + 0.25 + 0.49 + 0.25 + 0.04 + 0.01 = 1.05;  Brier = 1.05/6 = 0.175
    # prevalence 1/2: null Brier 0.25, scaled = 1 − 0.175/0.25 = 0.3
    assert m.brier(Y6, P6) == pytest.approx(0.175)
    assert m.brier_scaled(Y6, P6) == pytest.approx(0.3)
    assert m.brier([0, 1], [0.0, 1.0]) == 0.0
    assert m.brier_scaled([0, 1, 1, 0], [0.5] * 4) == pytest.approx(0.0)


def test_oe_ratio_hand_computed():
    # O = 3 events; E = 0.9 + 0.5 + 0.3 + 0.5 + 0.2 + 0.1 = 2.5;  O:E = 1.2
    assert m.oe_ratio(Y6, P6) == pytest.approx(1.2)
    assert m.oe_ratio([1, 0], [0.0, 0.0]) == math.inf
    assert math.isnan(m.oe_ratio([0, 0], [0.0, 0.0]))


# ── the threshold table at the 0.5 gate ──────────────────────────────────────


def test_threshold_table_at_the_gate_excludes_p_equal_to_half():
    # Above the gate is p > 0.5: only 0.9 (an event). Both 0.5s stay below.
    #   TP = 1, FP = 0, FN = 2 (0.5, 0.3), TN = 3 (0.5, 0.2, 0.1)
    #   sens 1/3, spec 3/3, PPV 1/1, NPV 3/5, 1 above the gate of 6
    t = m.threshold_metrics(Y6, P6, threshold=0.5)
    assert t == pytest.approx(
        {
            "tp": 1,
            "fp": 0,
            "tn": 3,
            "fn": 2,
            "sensitivity": 1 / 3,
            "specificity": 1.0,
            "ppv": 1.0,
            "npv": 0.6,
            "n_above": 1,
            "share_above": 1 / 6,
        }
    )
    # Just under 0.5 both 0.5s count: TP 2, FP 1.
    below = m.threshold_metrics(Y6, P6, threshold=0.4999)
    assert (below["tp"], below["fp"], below["n_above"]) == (2, 1, 3)


def test_threshold_table_undefined_rates_are_nan():
    t = m.threshold_metrics(
        [0, 0, 0], [0.1, 0.2, 0.3], threshold=0.5
    )  # no event, nobody above
    assert math.isnan(t["sensitivity"]) and math.isnan(t["ppv"])
    assert t["specificity"] == 1.0 and t["npv"] == 1.0 and t["n_above"] == 0


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.7, 1.0])
def test_threshold_table_invariants(threshold):
    rng = np.random.default_rng(8)
    p = np.round(rng.random(1_000), 1)  # ties on the threshold itself
    y = (rng.random(1_000) < p).astype(int)
    t = m.threshold_metrics(y, p, threshold)
    assert t["tp"] + t["fn"] == y.sum()
    assert t["tn"] + t["fp"] == len(y) - y.sum()
    assert t["tp"] + t["fp"] == t["n_above"] == np.sum(p > threshold)
    assert t["share_above"] == pytest.approx(t["n_above"] / len(y))
    assert all(isinstance(v, float) for v in t.values())


# ── clinical utility ─────────────────────────────────────────────────────────


def test_net_benefit_hand_computed():
    # p_t = 0.5, odds 1:  TP 1, FP 0            -> NB = 1/6 − 0 = 1/6
    # p_t = 0.25, odds 1/3: above are 0.9, 0.5, 0.3 (events) and 0.5 (non-event)
    #   TP 3, FP 1 -> NB = 3/6 − 1/6 · 1/3 = 4/9
    # treat all, prevalence 1/2: 1/2 − 1/2 · odds -> 0 at 0.5, 1/3 at 0.25
    assert m.net_benefit(Y6, P6, 0.5) == pytest.approx(1 / 6)
    assert m.net_benefit(Y6, P6, 0.25) == pytest.approx(4 / 9)
    assert m.net_benefit_treat_all(Y6, 0.5) == pytest.approx(0.0)
    assert m.net_benefit_treat_all(Y6, 0.25) == pytest.approx(1 / 3)


def test_decision_curve_matches_pointwise_net_benefit():
    rng = np.random.default_rng(9)
    p = np.round(rng.random(2_000), 2)
    y = (rng.random(2_000) < p).astype(int)
    thresholds = [0.5, 0.2, 0.3, 0.4, 0.6]  # order kept
    dc = m.decision_curve(y, p, thresholds)
    assert list(dc.columns) == [
        "threshold",
        "net_benefit_model",
        "net_benefit_all",
        "net_benefit_none",
    ]
    assert dc["threshold"].tolist() == thresholds
    for row in dc.itertuples():
        assert row.net_benefit_model == pytest.approx(
            m.net_benefit(y, p, row.threshold)
        )
        assert row.net_benefit_all == pytest.approx(
            m.net_benefit_treat_all(y, row.threshold)
        )
        assert row.net_benefit_none == 0.0


# ── calibration ──────────────────────────────────────────────────────────────


def test_citl_hand_computed_for_a_constant_prediction():
    # With p ≡ 1/2 the offset is 0, so a = logit(ȳ) = logit(1/4) = −ln 3.
    assert m.calibration_in_the_large([1, 0, 0, 0], [0.5] * 4) == pytest.approx(
        -math.log(3), abs=1e-9
    )


def test_citl_is_robust_to_probabilities_of_zero_and_one():
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.0, 1.0, 0.3, 0.6, 0.0])
    a = m.calibration_in_the_large(y, p)
    offset = logit(np.clip(p, 1e-8, 1 - 1e-8))
    assert math.isfinite(a)
    assert np.sum(y - expit(a + offset)) == pytest.approx(0.0, abs=1e-8)  # score = 0


def test_calibration_slope_matches_a_direct_likelihood_fit():
    rng = np.random.default_rng(10)
    lp = rng.normal(size=400)
    y = (rng.random(400) < expit(0.3 + 0.7 * lp)).astype(int)
    p = expit(lp)

    def negloglik(beta):
        eta = beta[0] + beta[1] * lp
        return -np.sum(y * eta - np.logaddexp(0, eta))

    ref = minimize(negloglik, [0.0, 1.0], method="BFGS", options={"gtol": 1e-10}).x
    assert m.calibration_slope(y, p) == pytest.approx(tuple(ref), abs=1e-5)


def test_calibration_slope_of_a_fitted_logistic_model_is_zero_one():
    # The MLE's own fitted values satisfy the score equations of the recalibration
    # model at (0, 1) exactly.
    rng = np.random.default_rng(11)
    x = rng.normal(size=300)
    y = (rng.random(300) < expit(-0.5 + x)).astype(int)

    def negloglik(beta):
        eta = beta[0] + beta[1] * x
        return -np.sum(y * eta - np.logaddexp(0, eta))

    beta = minimize(negloglik, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10}).x
    a, b = m.calibration_slope(y, expit(beta[0] + beta[1] * x))
    assert (a, b) == pytest.approx((0.0, 1.0), abs=1e-5)


def test_calibration_slope_is_nan_when_undefined():
    with pytest.warns(RuntimeWarning, match="constant"):
        assert all(map(math.isnan, m.calibration_slope([0, 1, 1], [0.4] * 3)))
    with pytest.warns(RuntimeWarning, match="converge"):  # perfect separation
        res = m.calibration_slope([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.8])
        assert all(map(math.isnan, res))


@pytest.fixture(scope="module")
def simulated() -> dict[str, np.ndarray]:
    """200,000 outcomes drawn from a known risk, and three scores of that risk."""
    rng = np.random.default_rng(2024)
    lp = rng.normal(-0.5, 1.5, 200_000)
    y = (rng.random(lp.size) < expit(lp)).astype(int)
    return {
        "y": y,
        "calibrated": expit(lp),
        "overconfident": expit(2 * lp),  # logit × 2: too extreme
        "shifted": expit(lp - 1),  # logit − 1: under-predicts
    }


def test_a_calibrated_score_is_calibrated(simulated):
    y, p = simulated["y"], simulated["calibrated"]
    a, b = m.calibration_slope(y, p)
    assert b == pytest.approx(1.0, abs=0.03)
    assert a == pytest.approx(0.0, abs=0.03)
    assert m.calibration_in_the_large(y, p) == pytest.approx(0.0, abs=0.03)
    assert m.oe_ratio(y, p) == pytest.approx(1.0, abs=0.02)
    ici, e50, e90 = m.ici_e50_e90(y, p)
    assert ici < 0.01
    assert e50 <= e90 < 0.02


def test_an_overconfident_score_has_slope_one_half(simulated):
    y = simulated["y"]
    _, b = m.calibration_slope(y, simulated["overconfident"])
    assert b == pytest.approx(0.5, abs=0.03)
    ici_over = m.ici_e50_e90(y, simulated["overconfident"])[0]
    ici_cal = m.ici_e50_e90(y, simulated["calibrated"])[0]
    assert ici_over > 0.05
    assert ici_over > 5 * ici_cal


def test_a_shifted_score_has_citl_plus_one(simulated):
    y, p = simulated["y"], simulated["shifted"]
    assert m.calibration_in_the_large(y, p) == pytest.approx(1.0, abs=0.03)
    assert m.calibration_slope(y, p)[1] == pytest.approx(1.0, abs=0.03)
    assert m.oe_ratio(y, p) > 1.2  # under-prediction


def _lowess_by_definition(x, y, at, frac=2 / 3):
    """Local-linear tricube fit at each point of ``at``, from the definition."""
    k = math.ceil(frac * len(x))
    out = []
    for c in at:
        d = np.abs(x - c)
        h = np.sort(d)[k - 1]
        w = np.clip(1 - (d / h) ** 3, 0, None) ** 3
        design = np.column_stack([np.ones_like(x), x - c])
        lhs = design.T @ (design * w[:, None])
        out.append(np.linalg.solve(lhs, design.T @ (w * y))[0])
    return np.clip(out, 0, 1)


def test_smoother_is_exact_lowess_for_few_distinct_values():
    rng = np.random.default_rng(12)
    p = rng.beta(2, 3, 150)  # ≤ 200 distinct values: evaluated at every p
    y = (rng.random(150) < p).astype(int)
    got = m.smoothed_calibration(y, p)
    assert got == pytest.approx(_lowess_by_definition(p, y, p), abs=1e-10)


def test_smoother_grid_approximation_is_close_for_many_values():
    rng = np.random.default_rng(13)
    p = rng.beta(2, 3, 3_000)  # > 200 distinct values: grid + interpolation
    y = (rng.random(3_000) < p).astype(int)
    got = m.smoothed_calibration(y, p)
    at = rng.choice(3_000, 60, replace=False)
    assert got[at] == pytest.approx(_lowess_by_definition(p, y, p[at]), abs=1e-3)


def test_calibration_curve_table_with_wilson_intervals():
    # Two quantile bins, edges (0.1, 0.45, 0.8):
    #   bin 0: p 0.1, 0.2, 0.3, y 0, 0, 1 -> mean_predicted 0.2, observed 1/3
    #   bin 1: p 0.6, 0.7, 0.8, y 0, 1, 1 -> mean_predicted 0.7, observed 2/3
    # Wilson 95 % for 1 of 3: centre (1/3 + z²/6)/(1 + z²/3) = 0.4269,
    #   half-width z·√(2/27 + z²/36)/(1 + z²/3) = 0.3654 -> (0.0615, 0.7923)
    y = [0, 0, 1, 0, 1, 1]
    p = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8]
    table = m.calibration_curve_table(y, p, n_bins=2)
    expected = pd.DataFrame(
        {
            "bin": [0, 1],
            "mean_predicted": [0.2, 0.7],
            "observed": [1 / 3, 2 / 3],
            "n": [3, 3],
            "ci_low": [0.0615, 1 - 0.7923],
            "ci_high": [0.7923, 1 - 0.0615],
        }
    )
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, atol=1e-4)


def test_calibration_curve_table_uniform_drops_empty_bins():
    table = m.calibration_curve_table([0, 1, 1], [0.05, 0.55, 0.58], strategy="uniform")
    assert table["bin"].tolist() == [0, 5]
    assert table["n"].tolist() == [1, 2]
    assert table["n"].sum() == 3


# ── the headline report ──────────────────────────────────────────────────────


def test_classification_report_keys_and_values():
    rng = np.random.default_rng(15)
    p = rng.beta(2, 3, 5_000)
    y = (rng.random(p.size) < p).astype(int)
    report = m.classification_report(y, p, 0.5)
    assert tuple(report) == m.METRIC_KEYS
    assert len(m.METRIC_KEYS) == 25
    assert all(isinstance(v, float) for v in report.values())
    est, low, high = m.auroc_ci(y, p)
    gate = m.threshold_metrics(y, p, 0.5)
    assert report["auroc"] == est
    assert (report["auroc_ci_low"], report["auroc_ci_high"]) == (low, high)
    assert report["citl"] == m.calibration_in_the_large(y, p)
    assert (report["cal_intercept"], report["cal_slope"]) == m.calibration_slope(y, p)
    assert report["sens_at_gate"] == gate["sensitivity"]
    assert report["n_above_gate"] == gate["n_above"]
    assert report["nb_at_gate"] == m.net_benefit(y, p, 0.5)
    assert report["n"] == 5_000 and report["events"] == y.sum()


# ── input validation ─────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], "same length"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0, 1, np.nan], [0.1, 0.2, 0.3], "only 0 and 1"),
        (["a", "b"], [0.1, 0.2], "numeric"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [-0.1, 0.2], r"\[0, 1\]"),
        ([0, 1], [0.1, np.nan], "finite"),
        ([0, 1], [0.1, np.inf], "finite"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
        ([], [], "empty"),
    ],
)
def test_invalid_inputs_raise(y, p, match):
    with pytest.raises(ValueError, match=match):
        m.classification_report(y, p, 0.5)
    with pytest.raises(ValueError, match=match):
        m.brier(y, p)


@pytest.mark.parametrize(
    "fn",
    [
        m.auroc,
        m.auroc_ci,
        m.brier_scaled,
        m.calibration_in_the_large,
        m.calibration_slope,
        lambda y, p: m.classification_report(y, p, 0.5),
    ],
    ids=[
        "auroc",
        "auroc_ci",
        "brier_scaled",
        "calibration_in_the_large",
        "calibration_slope",
        "classification_report",
    ],
)
def test_a_single_outcome_class_is_rejected(fn):
    with pytest.raises(ValueError, match="at least one event and one non-event"):
        fn([1, 1, 1], [0.2, 0.5, 0.9])


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="AUPRC needs at least one event"):
        m.auprc([0, 0], [0.1, 0.2])
    for t in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="threshold"):
            m.net_benefit(Y6, P6, t)
        with pytest.raises(ValueError, match="threshold"):
            m.decision_curve(Y6, P6, [0.5, t])
    with pytest.raises(ValueError, match="threshold"):
        m.threshold_metrics(Y6, P6, -0.1)
    with pytest.raises(ValueError, match="level"):
        m.auroc_ci(Y6, P6, level=1.0)
    with pytest.raises(ValueError, match="strategy"):
        m.calibration_curve_table(Y6, P6, strategy="kmeans")
    with pytest.raises(ValueError, match="n_bins"):
        m.calibration_curve_table(Y6, P6, n_bins=0)


def test_boolean_outcomes_are_accepted():
    assert m.auroc(np.array(Y6, dtype=bool), P6) == m.auroc(Y6, P6)


# ── the table of metric specs ────────────────────────────────────────────────


def test_metric_table_is_the_list_of_headline_keys():
    keys = [spec.key for spec in m.METRICS]
    assert tuple(keys) == m.METRIC_KEYS
    assert len(set(keys)) == len(keys)
    assert {spec.fmt for spec in m.METRICS} <= {"num", "pct", "count"}
    assert {spec.interval for spec in m.METRICS} <= {
        "DeLong",
        "Wilson",
        "bootstrap",
        "none",
    }
    # a qualifier reads in brackets after the name
    assert m.METRICS[keys.index("auroc")].label == "AUROC (C-statistic)"


@pytest.mark.parametrize("view", sorted(m.VIEWS))
def test_each_view_numbers_its_metrics_one_to_k(view: str):
    specs = m.metric_view(view)
    assert specs, view
    assert [spec.views[view] for spec in specs] == list(range(1, len(specs) + 1))
    assert set(m.view_keys(view)) <= set(m.METRIC_KEYS)


def test_views_and_sections_select_from_the_table():
    with pytest.raises(KeyError, match="unknown metric view"):
        m.metric_view("nowhere")
    # every metric the report gives an interval is a row of the report's headline
    with_interval = {s.key for s in m.METRICS if s.interval != "none"}
    assert with_interval <= set(m.view_keys("headline"))
    # the subgroup table needs a column header for each of its metrics
    assert all(spec.column for spec in m.metric_view("subgroup"))
    assert m.section_keys("discrimination") == (
        "auroc",
        "auroc_ci_low",
        "auroc_ci_high",
        "auprc",
    )
    assert "nowhere" not in {spec.section for spec in m.METRICS}
    assert m.section_keys("nowhere") == ()
