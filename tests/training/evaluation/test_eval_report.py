"""The HTML evaluation report: intervals, the gate, fixed sections, self-contained.

Every number the page shows is in the report (its ``intervals`` and
``gate`` sections included): the page is rendered from the report alone.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from training.evaluation import metrics as m
from training.evaluation.html_report import (
    REPORT_SECTIONS,
    embed_model_card,
    headline_table,
    render_evaluation_report,
    run_details,
)
from training.evaluation.intervals import BOOTSTRAP_KEYS, bootstrap_intervals
from training.evaluation.report import build_report

# Anything that would make the page fetch something: src/href not a data: URI, or
# a <link>/<script> element.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*(?!["']?data:)|<link\b|<script\b""", re.I)


def test_wilson_interval_matches_hand_computed_values() -> None:
    # 8 of 10: (0.8 + z²/20 ± z·sqrt(0.016 + z²/400)) / (1 + z²/10), z = 1.95996
    low, high = m.wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    # 0 of 10: the lower bound is 0, the upper z²/(n + z²) = 0.2775
    assert m.wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert all(math.isnan(v) for v in m.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        m.wilson_interval(11, 10)


@pytest.fixture(scope="module")
def sample() -> dict:
    rng = np.random.default_rng(3)
    n = 600
    p = np.clip(rng.beta(1.2, 6.0, n), 0.001, 0.99)
    p[:20] = np.linspace(0.52, 0.95, 20)  # some patients above the gate
    y = (rng.random(n) < p).astype(int)
    truth = np.clip(p + rng.normal(0, 0.03, n), 0.0, 1.0)
    state = np.where(p > 0.6, "above", np.where(p <= 0.3, "below", "undetermined"))
    inputs = {
        "sex": np.where(rng.random(n) < 0.1, "male", "female"),
        "age_years": rng.uniform(18, 70, n),
        "true_risk": truth,
        "gate": {
            "state": state,
            "for_missing_data": np.zeros(n, dtype=bool),
            "exclude_edge": 0.3,
            "pass_edge": 0.6,
            "method": "by hand",
        },
        "threshold": 0.5,
    }
    report = build_report(y, p, n_boot=100, **inputs)
    return {"y": y, "p": p, "inputs": inputs, "report": report}


def test_headline_table_intervals(sample) -> None:
    report, y, p = sample["report"], sample["y"], sample["p"]
    table = headline_table(report).set_index("key")
    auroc = table.loc["auroc"]
    assert auroc["ci_method"] == "DeLong"
    assert auroc["ci_low"] == pytest.approx(report["discrimination"]["auroc_ci_low"])
    gate = m.threshold_metrics(y, p, 0.5)
    sens_low, sens_high = m.wilson_interval(gate["tp"], gate["tp"] + gate["fn"])
    assert table.loc["sens_at_gate", "ci_low"] == pytest.approx(sens_low)
    assert table.loc["sens_at_gate", "ci_high"] == pytest.approx(sens_high)
    assert table.loc["sens_at_gate", "measure"] == "Sensitivity at 0.5"
    for key in ("brier", "cal_slope", "auprc"):
        row = table.loc[key]
        assert row["ci_method"] == "bootstrap (100)"
        assert row["ci_low"] <= row["value"] <= row["ci_high"], key
    assert table.loc["ici", "ci_method"] == "none"


def test_headline_table_without_resamples_has_no_bootstrap(sample) -> None:
    report = build_report(sample["y"], sample["p"], n_boot=0, **sample["inputs"])
    table = headline_table(report).set_index("key")
    assert table.loc["brier", "ci_method"] == "none"
    assert math.isnan(table.loc["brier", "ci_low"])
    assert table.loc["ppv_at_gate", "ci_method"] == "Wilson"  # from the report's counts


def test_bootstrap_is_seeded_and_skips_one_class_resamples() -> None:
    y = np.array([0, 0, 0, 0, 0, 1])
    p = np.array([0.1, 0.2, 0.1, 0.3, 0.2, 0.6])
    first = bootstrap_intervals(y, p, n_boot=40, seed=5, threshold=0.5)
    assert first == bootstrap_intervals(y, p, n_boot=40, seed=5, threshold=0.5)
    assert set(first) == set(BOOTSTRAP_KEYS)
    # with every resample single-class there is nothing to report
    none = bootstrap_intervals(np.zeros(6), p, n_boot=5, threshold=0.5)
    assert all(math.isnan(v) for pair in none.values() for v in pair)


CARD = (
    "<!DOCTYPE html><html><head><title>t</title></head><body>\n"
    "<h1>Model card: ln-risk version 3</h1><h2>Intended use</h2><h3>Sub</h3>"
    '<figure><img src="data:image/png;base64,AAAA" alt="roc"></figure>'
    "<p>TRIPOD+AI</p></body></html>"
)


def test_model_card_is_embedded_without_plots_and_below_the_report_headings() -> None:
    body = embed_model_card(CARD)
    assert "<h3>Model card: ln-risk version 3</h3>" in body
    assert "<h4>Intended use</h4>" in body and "<h5>Sub</h5>" in body
    assert "<figure>" not in body and "<title>" not in body
    assert "<h1>" not in body and "<h2>" not in body


def test_report_has_every_section_in_order_and_fetches_nothing(sample, tmp_path):
    from training.evaluation.plots import plot_decision_curve

    plot = plot_decision_curve(
        sample["report"], tmp_path / "decision_curve.png", threshold=0.5
    )
    details = run_details(
        "r" * 32,
        "train-xgboost-platt-abc",
        {"run_kind": "train", "model_family": "<script>alert(1)</script>"},
    )
    page = render_evaluation_report(
        sample["report"],
        title="Evaluation report: train-xgboost-platt-abc",
        details=details,
        plots={"decision_curve": plot, "roc": tmp_path / "absent.png"},
        model_card_html=CARD,
    )
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == list(REPORT_SECTIONS)
    assert not EXTERNAL.search(page)
    assert page.count('src="data:image/png;base64,') == 1  # the absent plot is skipped
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert '<tr class="gate"><td>0.5</td>' in page
    assert "The three-valued gate" in page and "auto-excluded" in page
    assert "Model card: ln-risk version 3" in page
    assert "True risk (oracle)" in page


def test_report_of_real_data_says_what_is_missing(sample) -> None:
    report = dict(sample["report"], oracle=None)
    page = render_evaluation_report(report, title="t")
    assert "true risk of these patients is unknown" in page
    assert "No model card is attached" in page
    assert "No plots were made" in page


def test_the_page_is_rendered_from_the_report_json_alone(sample) -> None:
    # report.json holds every number the page shows: its JSON round trip renders
    # the same page as the report itself, and rendering takes no outcomes.
    from training.evaluation.report import report_to_json

    stored = json.loads(report_to_json(sample["report"]))
    assert render_evaluation_report(stored, title="t") == render_evaluation_report(
        sample["report"], title="t"
    )
    table = headline_table(stored).set_index("key")
    found = stored["intervals"]["metrics"]
    assert table.loc["brier", "ci_low"] == found["brier"]["low"]
    assert table.loc["npv_at_gate", "ci_high"] == found["npv_at_gate"]["high"]
