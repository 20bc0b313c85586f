"""The TRIPOD+AI model card (training.evaluation.model_card)."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from data_schema import model_features
from training.evaluation.model_card import (
    SECTION_HEADINGS,
    ModelCardContext,
    render_model_card,
)
from training.evaluation.plots import plot_risk_histogram
from training.evaluation.render import fmt_count, fmt_num, fmt_pct
from training.evaluation.report import build_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = 'synthetic://clinical.md-s8?n=3000 <script>alert("x")</script> & more'


@pytest.fixture(scope="module")
def report() -> dict:
    """3,000 synthetic patients with the truth and a gate; only 9 men."""
    rng = np.random.default_rng(21)
    n = 3000
    truth = 1.0 / (1.0 + np.exp(-(-2.5 + rng.normal(0.0, 1.4, n))))
    p = np.clip(truth + rng.normal(0.0, 0.03, n), 0.001, 0.999)
    y = rng.binomial(1, truth)
    sex = np.array(["female"] * n)
    sex[:9] = "male"
    age = rng.normal(34.0, 11.0, n).clip(18, 75)
    return build_report(
        y,
        p,
        sex=sex,
        age_years=age,
        true_risk=truth,
        gate={
            "state": np.where(
                p > 0.6, "above", np.where(p <= 0.3, "below", "undetermined")
            ),
            "for_missing_data": np.zeros(n, dtype=bool),
            "exclude_edge": 0.3,
            "pass_edge": 0.6,
            "method": "by hand",
        },
        threshold=0.5,
    )


@pytest.fixture(scope="module")
def plot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = np.random.default_rng(0).beta(0.8, 7.0, 500)
    return plot_risk_histogram(
        p, tmp_path_factory.mktemp("plots") / "risk.png", threshold=0.5
    )


@pytest.fixture
def ctx(report: dict, plot_path: Path) -> ModelCardContext:
    return ModelCardContext(
        model_name="ln-risk",
        model_version="7",
        run_id="0123456789abcdef",
        model_family="xgboost",
        calibration_method="platt",
        config={
            "seed": 7,
            "gate_threshold": 0.5,
            "model": {"family": "xgboost", "max_depth": 3, "learning_rate": 0.04},
            "split": {"test_fraction": 0.25, "stratify": True},
            "tracking": {"experiment": "tracking-store-name"},
        },
        config_hash="c0ffee",
        git_commit="8fe2449",
        data_source=EVIL,
        data_digest="d1g3st",
        n_development=9000,
        n_test=3000,
        events_development=900,
        events_test=300,
        report=report,
        gate_method="Review zone (0.3, 0.6] around the gate.",
        plots={"risk_histogram": plot_path, "extra_plot": plot_path},
        created=date(2026, 11, 25),
    )


@pytest.fixture
def card(ctx: ModelCardContext) -> tuple[str, str]:
    return render_model_card(ctx)


def test_every_section_heading_is_present_in_order(card: tuple[str, str]) -> None:
    markdown, html = card
    md_headings = re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE)
    html_headings = re.findall(r"<h2>(.+?)</h2>", html)
    assert md_headings == list(SECTION_HEADINGS)
    assert [h.replace("&amp;", "&") for h in html_headings] == list(SECTION_HEADINGS)
    assert markdown.startswith("# Model card: ln-risk version 7")


def test_every_model_feature_is_listed(card: tuple[str, str]) -> None:
    markdown, html = card
    for name in model_features():
        assert f"| {name} |" in markdown
        assert f"<td>{name}</td>" in html


def test_intended_use_and_synthetic_data_are_stated(card: tuple[str, str]) -> None:
    markdown, html = card
    for text in (markdown, html):
        assert "not a diagnostic device" in text
        assert "NCT05585671" in text
        assert "synthetic" in text.lower()
        assert "SLICC" in text and "GLADEL" in text and "RIFLE-LN" in text
        assert "unpublished" in text
        assert "24 months" in text
    assert "Comparison with the true risk (oracle)" in markdown
    assert "tracking-store-name" not in markdown  # tracking is left out


def test_suppressed_subgroup_is_rendered_as_suppressed(card: tuple[str, str]) -> None:
    markdown, html = card
    male = next(
        line for line in markdown.splitlines() if line.startswith("| sex | male")
    )
    assert "suppressed (<10)" in male
    assert "| <10 |" in male
    assert "suppressed (&lt;10)" in html


def test_untrusted_text_is_escaped(card: tuple[str, str]) -> None:
    markdown, html = card
    assert "<script" not in html
    # Jinja2's autoescape writes a double quote as &#34;
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more" in html
    assert "<script" not in markdown
    assert "&lt;script>" in markdown


def test_a_pipe_or_line_break_in_a_cell_stays_in_its_cell(
    ctx: ModelCardContext,
) -> None:
    markdown, html = render_model_card(
        replace(ctx, data_source="cohort | with\nline break")
    )
    assert "| Source | cohort \\| with line break |" in markdown
    assert "<td>cohort | with\nline break</td>" in html  # HTML folds it itself


def test_html_is_self_contained_with_embedded_plots(card: tuple[str, str]) -> None:
    markdown, html = card
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == 2
    assert base64.b64decode(uris[0])[:8] == PNG_MAGIC
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "<style>" in html
    assert html.startswith("<!DOCTYPE html>")
    # The Markdown links the plot files of the MLflow run instead.
    assert "](../plots/risk.png)" in markdown
    assert "Review zone (0.3, 0.6]" in markdown and "auto-excluded" in markdown


def test_a_missing_plot_file_does_not_break_the_card(ctx: ModelCardContext) -> None:
    _, html = render_model_card(replace(ctx, plots={"roc": Path("/nonexistent.png")}))
    assert "Plot roc not available" in html


def test_real_data_without_oracle_or_gate(ctx: ModelCardContext) -> None:
    report = dict(ctx.report, oracle=None, gate=None)
    markdown, html = render_model_card(
        replace(
            ctx,
            data_source="/data/renji_cohort.parquet",
            report=report,
            gate_method=None,
            model_version=None,
            plots={},
        )
    )
    assert "SYNTHETIC DATA" not in markdown
    assert "user-supplied cohort" in markdown
    assert "Comparison with the true risk" not in markdown
    assert "No gate was evaluated on the test set." in markdown
    assert "not registered" in markdown
    assert "data:image/png" not in html
    assert re.findall(r"^## (.+)$", markdown, flags=re.MULTILINE) == list(
        SECTION_HEADINGS
    )


def test_number_formatting() -> None:
    assert fmt_num(0.123456) == "0.123"
    assert fmt_num(12345.6) == "12,346"
    assert fmt_num(20000.0) == "20,000"
    assert fmt_num(3) == "3"
    assert fmt_num(1e-19) == "0"
    assert fmt_num(None) == "—"
    assert fmt_num(float("nan")) == "—"
    assert fmt_num("<10") == "<10"
    assert fmt_pct(0.12345) == "12.3%"
    assert fmt_pct(None) == "—"
    assert fmt_count(96, 5000) == "96 (1.9%)"
    assert fmt_count("<10", 5000) == "<10"
