"""The model card states its data truthfully and answers every TRIPOD+AI item.

Built from a real synthetic cohort: the population filter of the default config,
the split, the characteristics table and the report, so every number the card
shows can be traced back to the data here.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from data_schema import OUTCOME_COLUMN, TRUE_RISK_COLUMN, model_features
from synthetic import generate_cohort
from training.config import load_config
from training.data import config_population, load_outcome_cohort, split_by_patient
from training.evaluation.characteristics import (
    MEASUREMENTS,
    YES_NO,
    characteristics_table,
)
from training.evaluation.model_card import (
    ANTICIPATED_C_STATISTIC,
    ModelCardContext,
    card_facts,
    follow_up_statement,
    render_model_card,
    sample_size_of,
)
from training.evaluation.render import fmt_count
from training.evaluation.report import build_report
from training.evaluation.sample_size import riley_sample_size
from training.evaluation.tripod import TRIPOD_ITEMS

# Collins et al., BMJ 2024;385:e078378, Table 1: items 1 to 27c with their parts.
STATEMENT_ITEMS = (  # noqa: SIM905 - the checklist as it reads
    "1 2 3a 3b 3c 4 5a 5b 6a 6b 6c 7 8a 8b 8c 9a 9b 9c 10 11 12a 12b 12c 12d 12e "
    "12f 12g 13 14 15 16 17 18a 18b 18c 18d 18e 18f 19 20a 20b 20c 21 22 23a 23b "
    "24 25 26 27a 27b 27c"
).split()
SITE_FILE = "cohorts/site_export.parquet"


@pytest.fixture(scope="module")
def data() -> dict:
    config = load_config()
    cohort = load_outcome_cohort(generate_cohort(n=3000, seed=5))
    population, attrition = config_population(config).apply(
        cohort, config.trial_criteria
    )
    dev, test = split_by_patient(population, 0.25, seed=5)
    rng = np.random.default_rng(5)
    truth = test[TRUE_RISK_COLUMN].to_numpy(float)
    p = np.clip(truth + rng.normal(0.0, 0.02, len(truth)), 0.001, 0.999)
    report = build_report(
        test[OUTCOME_COLUMN].to_numpy(int),
        p,
        sex=test["sex"].to_numpy(str),
        age_years=test["age_years"].to_numpy(float),
        true_risk=truth,
        population=attrition,
        threshold=0.5,
    )
    return {
        "config": config,
        "cohort": cohort,
        "attrition": attrition,
        "dev": dev,
        "test": test,
        "report": report,
    }


@pytest.fixture(scope="module")
def ctx(data: dict) -> ModelCardContext:
    dev, test = data["dev"], data["test"]
    return ModelCardContext(
        model_name="ln-risk",
        model_version="3",
        run_id="abc123",
        model_family="xgboost",
        calibration_method="platt",
        config=data["config"].model_dump(mode="json"),
        config_hash="c0ffee",
        git_commit="1234567",
        data_source="synthetic://clinical.md-s8?n=3000&seed=5",
        data_digest="d1g3st",
        n_development=len(dev),
        n_test=len(test),
        events_development=int(dev[OUTCOME_COLUMN].sum()),
        events_test=int(test[OUTCOME_COLUMN].sum()),
        report=data["report"],
        gate_method=None,
        created=date(2026, 12, 1),
        characteristics=characteristics_table({"development": dev, "test": test}),
    )


def checklist(markdown: str) -> dict[str, str]:
    """Item id → answer, parsed from the card's TRIPOD+AI table."""
    section = markdown.split("## TRIPOD+AI checklist", 1)[1]
    rows = re.findall(r"^\| ([0-9]+[a-g]?) \| [^|]+ \| (.+) \|$", section, re.M)
    return dict(rows)


def test_the_checklist_table_is_the_statement(ctx: ModelCardContext) -> None:
    assert [item.id for item in TRIPOD_ITEMS] == STATEMENT_ITEMS
    assert len({item.id for item in TRIPOD_ITEMS}) == 52


def test_every_item_is_answered_by_number(ctx: ModelCardContext) -> None:
    markdown, html = render_model_card(ctx)
    answers = checklist(markdown)
    assert list(answers) == STATEMENT_ITEMS
    for item, answer in answers.items():
        assert len(answer) > 20, item
    missing = [name for name, value in card_facts(ctx).items() if value is None]
    assert not missing, f"facts the answers use are missing: {missing}"
    section = html.split("TRIPOD+AI checklist</h2>", 1)[1]
    assert re.findall(r"<tr><td>([0-9]+[a-g]?)</td>", section) == STATEMENT_ITEMS


def test_sample_size_answer_is_rileys_minimum(ctx: ModelCardContext) -> None:
    size = sample_size_of(ctx)
    assert size is not None
    answer = checklist(render_model_card(ctx)[0])["10"]
    assert f"minimum {fmt_count(size.minimum)} patients" in answer
    assert f"{size.parameters} candidate predictor parameters" in answer
    meets = ctx.n_development >= size.minimum
    assert ("it meets the minimum" in answer) == meets
    assert ("does NOT meet" in answer) == (not meets)
    # A development set one patient short of the minimum does not meet it.
    short = replace(
        ctx,
        n_development=size.minimum - 1,
        events_development=round(size.prevalence * (size.minimum - 1)),
    )
    assert "does NOT meet" in checklist(render_model_card(short)[0])["10"]


def test_attrition_counts_come_from_the_population_filter(
    ctx: ModelCardContext, data: dict
) -> None:
    markdown, _ = render_model_card(ctx)
    cohort, kept = len(data["cohort"]), len(data["dev"]) + len(data["test"])
    left_out = next(
        r["patients"] for r in data["attrition"] if r["step"] == "left out (any route)"
    )
    assert cohort - left_out == kept
    flow = checklist(markdown)["20a"]
    assert f"{fmt_count(cohort)} patients in the cohort" in flow
    assert f"{fmt_count(left_out)} left out for prior kidney involvement" in flow
    assert f"{fmt_count(kept)} in the development population" in flow
    table = markdown.split("### From cohort to development population", 1)[1]
    for row in data["attrition"]:
        if row["patients"] >= 10:
            assert f"| {row['step']} | {fmt_count(row['patients'])} |" in table


def test_follow_up_is_stated_from_the_data_source(ctx: ModelCardContext) -> None:
    synthetic_md, _ = render_model_card(ctx)
    site_ctx = replace(ctx, data_source=SITE_FILE, report=dict(ctx.report, oracle=None))
    site_md, site_html = render_model_card(site_ctx)
    assert "Complete 2-year follow-up by construction" in synthetic_md
    assert "no censoring" in checklist(synthetic_md)["5b"]
    site = checklist(site_md)
    assert "not recorded in the file" in site["5b"]
    assert "censored patients" in site["5b"] and "removed beforehand" in site["5b"]
    assert "by construction" not in site_md
    assert "no censoring" not in site_md
    assert "SYNTHETIC DATA" not in site_md
    limitations = site_md.split("## Limitations", 1)[1].split("## ", 1)[0]
    assert "synthetic" not in limitations.lower()
    assert "synthetic" in synthetic_md.split("## Limitations", 1)[1].lower()
    assert "not recorded in the file" in site_html
    # The site's ethics, setting and assessors are not claimed: they are asked for.
    for item in ("6a", "8b", "8c", "9c", "17"):
        assert site[item].startswith("Not recorded"), item
        assert checklist(synthetic_md)[item].startswith("Not applicable"), item


def test_a_file_of_generated_patients_is_still_synthetic(
    ctx: ModelCardContext,
) -> None:
    """A synthetic cohort saved to a file carries the generator's true risk."""
    markdown, _ = render_model_card(replace(ctx, data_source=SITE_FILE))
    assert "Complete 2-year follow-up by construction" in markdown
    assert "SYNTHETIC DATA" in markdown


def test_characteristics_table_shows_both_sets(
    ctx: ModelCardContext, data: dict
) -> None:
    markdown, _ = render_model_card(ctx)
    table = markdown.split("### Participant characteristics", 1)[1].split("##", 1)[0]
    dev, test = data["dev"], data["test"]
    assert f"| Patients | {fmt_count(len(dev))} | {fmt_count(len(test))} |" in table
    events = next(line for line in table.splitlines() if "lupus nephritis" in line)
    assert fmt_count(int(dev[OUTCOME_COLUMN].sum())) in events
    c3 = next(line for line in table.splitlines() if line.startswith("| C3 "))
    median = np.nanmedian(dev["c3_g_l"].to_numpy(float))
    assert f"| {median:.3g} [" in c3
    assert "not recorded" in c3  # C3 is missing for some synthetic patients


def test_characteristics_by_hand() -> None:
    """Six patients: counts, median [IQR] and missing shares by hand."""
    frame = pd.DataFrame(
        {
            OUTCOME_COLUMN: [1, 0, 0, 1, 0, 0],
            "sex": ["female", "male", "female", "female", "female", "male"],
            "anti_c1q_positive": [True, None, False, True, None, None],
            "c3_g_l": [0.5, 0.7, np.nan, 0.9, 1.1, 1.3],
        }
    )
    for column in set(MEASUREMENTS) - {"c3_g_l"}:
        frame[column] = np.nan
    for column in set(YES_NO) - {"anti_c1q_positive"}:
        frame[column] = None
    rows = {
        r["label"]: r["set"] for r in characteristics_table({"set": frame}, min_cell=1)
    }
    assert rows["Patients"] == {"count": 6}
    assert rows["Female sex"]["count"] == 4
    assert rows["Female sex"]["share"] == pytest.approx(4 / 6)
    # anti-C1q recorded for 3 of 6 (True, False, True): 2 positive of 3
    assert rows["Anti-C1q positive"] == pytest.approx(
        {"count": 2, "share": 2 / 3, "missing": 0.5}
    )
    # C3 recorded 0.5, 0.7, 0.9, 1.1, 1.3: median 0.9, quartiles 0.7 and 1.1
    assert rows["C3"] == pytest.approx(
        {"median": 0.9, "q1": 0.7, "q3": 1.1, "missing": 1 / 6}
    )
    suppressed = {
        r["label"]: r["set"] for r in characteristics_table({"set": frame}, min_cell=3)
    }
    assert suppressed["New-onset lupus nephritis within 2 years"]["count"] == "<3"


def test_follow_up_statements_differ() -> None:
    assert follow_up_statement(True) != follow_up_statement(False)
    assert "censor" in follow_up_statement(False)


@pytest.mark.slow
def test_a_trained_runs_card_answers_with_its_own_numbers(trained) -> None:
    """The card a real training run logs: every item, its development numbers,
    Riley's minimum for them, the characteristics and how the zone was placed."""
    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.get_run(trained.run_id)
    path = client.download_artifacts(trained.run_id, "model_card/model_card.md")
    with open(path, encoding="utf-8") as handle:
        markdown = handle.read()
    answers = checklist(markdown)
    assert list(answers) == STATEMENT_ITEMS
    n_dev = int(run.data.params["n_development"])
    events_dev = int(run.data.params["events_development"])
    size = riley_sample_size(
        len(model_features()), events_dev / n_dev, c_statistic=ANTICIPATED_C_STATISTIC
    )
    assert f"minimum {fmt_count(size.minimum)} patients" in answers["10"]
    assert f"{fmt_count(n_dev)} patients: it" in answers["10"]
    assert f"| Patients | {fmt_count(n_dev)} |" in markdown
    population = int(run.data.metrics["population_development"])
    assert f"{fmt_count(population)} in the development population" in answers["20a"]
    assert (
        "out-of-fold" in answers["15"]
        and "observed 2-year event rate" in (answers["15"])
    )


def test_sample_size_counts_the_models_own_parameters(ctx: ModelCardContext) -> None:
    """RIFLE-LN's three terms need far fewer patients than 41 features."""
    rifle = replace(ctx, model_family="rifle_ln", parameters=3)
    answer = checklist(render_model_card(rifle)[0])["10"]
    expected = riley_sample_size(
        3,
        ctx.events_development / ctx.n_development,
        c_statistic=ANTICIPATED_C_STATISTIC,
    )
    assert "for 3 candidate predictor parameters (the model's terms)" in answer
    assert f"minimum {fmt_count(expected.minimum)} patients" in answer
    assert expected.minimum < sample_size_of(ctx).minimum


def test_a_small_gate_group_is_suppressed(ctx: ModelCardContext, data: dict) -> None:
    test = data["test"]
    y = test[OUTCOME_COLUMN].to_numpy(int)
    p = test[TRUE_RISK_COLUMN].to_numpy(float)
    pass_edge = float(np.sort(p)[-4])  # three patients above it
    state = np.where(
        p > pass_edge, "above", np.where(p <= 0.3, "below", "undetermined")
    )
    report = build_report(
        y,
        p,
        sex=test["sex"].to_numpy(str),
        age_years=test["age_years"].to_numpy(float),
        gate={
            "state": state,
            "for_missing_data": np.zeros(len(y), dtype=bool),
            "exclude_edge": 0.3,
            "pass_edge": pass_edge,
            "method": "edges by hand",
        },
        threshold=0.5,
    )
    markdown, _ = render_model_card(replace(ctx, report=report))
    zone = markdown.split("## Gate and review zone", 1)[1].split("## ", 1)[0]
    passed = next(
        line for line in zone.splitlines() if line.startswith("| auto-passed")
    )
    assert passed.startswith("| auto-passed | <10 | <10 | suppressed")
    excluded = int((state == "below").sum())
    assert f"| auto-excluded | {fmt_count(excluded, len(y))} |" in zone
