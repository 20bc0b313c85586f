"""The TRIPOD+AI checklist as data: every item, its topic and the card's answer.

Collins GS, Moons KGM, Dhiman P, et al. TRIPOD+AI statement: updated guidance for
reporting clinical prediction models that use regression or machine learning
methods. BMJ 2024;385:e078378 (27 items; with their parts, 1 to 27c). Items are
numbered and worded as in the statement's checklist (Table 1); the card answers
every one, by number, and "not applicable, because …" is an answer.

Each answer is a Jinja2 template rendered by the renderer of :mod:`.render` with
the run's facts (:func:`.model_card.card_facts`), so no number is written here:
the answers are plain text, escaped by the card's table like any other cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.evaluation.render import environment


@dataclass(frozen=True)
class TripodItem:
    """One checklist item: its number, topic, and the template of the answer."""

    id: str
    topic: str
    answer: str


_NOT_RECORDED = (
    "Not recorded in the cohort file or by the training run: the site supplying "
    "the data must state it before the model is used or published."
)

TRIPOD_ITEMS: tuple[TripodItem, ...] = (
    TripodItem("1", "Title", "{{ title }}."),
    TripodItem(
        "2",
        "Abstract",
        "Development and held-out validation of a {{ family_text }} model predicting "
        "new-onset lupus nephritis within 2 years in adults with SLE without prior "
        "kidney involvement, as the risk gate (p > {{ gate | gate }}) of trial "
        "{{ trial }}. Data: {{ 'a synthetic cohort' if synthetic else 'a site cohort "
        "file' }}; {{ n_dev | count }} development patients ({{ events_dev | count "
        "}} events), {{ n_test | count }} held-out patients ({{ events_test | count "
        "}} events). Held-out AUROC {{ auroc | num }} (95% CI {{ auroc_low | num }}–"
        "{{ auroc_high | num }}), calibration slope {{ cal_slope | num }}, "
        "calibration-in-the-large {{ citl | num }}. Research screening support "
        "only; external validation is needed.",
    ),
    TripodItem(
        "3a",
        "Healthcare context, rationale, existing models",
        "See Intended use and Limitations: the trial registration names an "
        "unpublished model; RIFLE-LN (10-year risk, AUROC 0.70) is the closest "
        "published model.",
    ),
    TripodItem(
        "3b",
        "Target population, place in the care pathway, intended users",
        "Adults with SLE without prior kidney involvement at a screening visit; "
        "trial investigators (see Intended use).",
    ),
    TripodItem(
        "3c",
        "Known health inequalities between sociodemographic groups",
        "Lupus nephritis is more frequent and more severe in men, in younger "
        "patients and in patients of Asian, African or Hispanic ancestry (clinical "
        "literature behind the data: GLADEL, Attikon, CSTAR). The record holds sex "
        "and age but no ethnicity or socioeconomic variable, so only sex and age "
        "band can be examined (Subgroups).",
    ),
    TripodItem(
        "4",
        "Objectives: development, evaluation or both",
        "Both: development on the development set and evaluation on a held-out "
        "test set of the same population.",
    ),
    TripodItem(
        "5a",
        "Data sources and their representativeness",
        "{{ source_text }} Source {{ source }} (see Data).",
    ),
    TripodItem(
        "5b",
        "Dates of accrual and end of follow-up",
        "{% if synthetic %}Not applicable: synthetic patients have no accrual "
        "dates. {% else %}Accrual dates are not recorded in the file. {% endif %}"
        "{{ follow_up }}",
    ),
    TripodItem(
        "6a",
        "Setting, number and location of centres",
        "{% if synthetic %}Not applicable: no real setting or centre; the synthetic "
        "patients are modelled on Chinese SLE outpatients (CSTAR distributions), "
        "one data source.{% else %}"
        + _NOT_RECORDED
        + " The file has no centre variable.{% endif %}",
    ),
    TripodItem(
        "6b",
        "Eligibility criteria",
        "{{ eligibility }}",
    ),
    TripodItem(
        "6c",
        "Treatments received and how they were handled",
        "Treatment at the screening visit is a predictor (hydroxychloroquine "
        "{{ hcq_dev | pct }} of development patients, immunosuppressant "
        "{{ is_dev | pct }}, prednisone dose). Treatment during follow-up is not "
        "recorded and not modelled: the risk is under usual care.",
    ),
    TripodItem(
        "7",
        "Data preparation and quality checks",
        "Every record is validated against the PatientRecord schema (types, units, "
        "plausible ranges); a cohort with any invalid row is refused as a whole, "
        "listing every bad row. Sex is coded male 1/0, yes/no fields 1/0; no "
        "outlier removal or rescaling. The checks are the same for every "
        "sociodemographic group.",
    ),
    TripodItem(
        "8a",
        "Outcome definition, time horizon, how and when assessed",
        "New-onset lupus nephritis within 24 months of the screening record "
        "(ACR renal criterion, or biopsy-proven class II–V), binary (see Data).",
    ),
    TripodItem(
        "8b",
        "Qualifications and demographics of outcome assessors",
        "{% if synthetic %}Not applicable: the outcome is simulated from the "
        "data-generating process; no one assessed it.{% else %}"
        + _NOT_RECORDED
        + " Biopsy class and urinary sediment need expert reading.{% endif %}",
    ),
    TripodItem(
        "8c",
        "Blinding of outcome assessment",
        "{% if synthetic %}Not applicable: the simulated outcome cannot be "
        "influenced by the predictors' assessment or by the model.{% else %}"
        + _NOT_RECORDED
        + "{% endif %}",
    ),
    TripodItem(
        "9a",
        "Choice of predictors",
        "{{ predictor_choice }}, chosen from the literature before fitting; no "
        "data-driven selection (see Predictors).",
    ),
    TripodItem(
        "9b",
        "Predictor definitions, how and when measured",
        "Definitions and units in the Predictors table; all measured at the "
        "screening visit, before the outcome window.",
    ),
    TripodItem(
        "9c",
        "Qualifications and demographics of predictor assessors",
        "{% if synthetic %}Not applicable: predictors are simulated.{% else %}"
        + _NOT_RECORDED
        + " The SLEDAI-2K and the ACR clinical criteria involve clinical "
        "judgement.{% endif %}",
    ),
    TripodItem("10", "Sample size", "{{ sample_size_text }}"),
    TripodItem(
        "11",
        "Missing data",
        "No patient is excluded for missing predictors. {{ missing_text }} See "
        "Missing data.",
    ),
    TripodItem(
        "12a",
        "How the data were used, including partitioning",
        "One split by patient{{ split_text }}: {{ n_dev | count }} development "
        "patients (fitting, hyper-parameter search and calibration by "
        "cross-validation, review zone from out-of-fold predictions) and "
        "{{ n_test | count }} held-out test patients (every figure of Performance, "
        "Subgroups and Gate).",
    ),
    TripodItem("12b", "Predictor handling", "{{ predictor_handling }}"),
    TripodItem(
        "12c",
        "Model type, building steps, hyper-parameter tuning, internal validation",
        "Model: {{ family_text }}; {{ calibration_method }} calibration on "
        "out-of-fold "
        "margins{{ '; random search of hyper-parameters by cross-validation' if "
        "search_enabled else '' }}; internal validation on the held-out test set "
        "(see Model).",
    ),
    TripodItem(
        "12d",
        "Heterogeneity across clusters (centres, countries)",
        "Not applicable: one data source without a centre variable, so there are "
        "no clusters to compare.",
    ),
    TripodItem(
        "12e",
        "Performance measures and their rationale",
        "Discrimination (AUROC, DeLong CI; AUPRC), calibration (slope, "
        "intercept, O:E, ICI, Brier, curve), clinical utility (net benefit and "
        "decision curve) and the confusion table at the {{ gate | gate }} gate, "
        "because the gate is the decision (see Performance).",
    ),
    TripodItem("12f", "Model updating", "{{ updating_text }}"),
    TripodItem(
        "12g",
        "How predictions were calculated for evaluation",
        "With the registered model file itself (booster and calibration as JSON, "
        "read by the riskmodel package the service uses), on the held-out "
        "records as recorded.",
    ),
    TripodItem(
        "13",
        "Class imbalance",
        "No resampling or class weighting: the model is fitted to the observed "
        "outcome proportion ({{ prevalence_dev | pct }} in development), so its "
        "risks need no correction for artificial balancing.",
    ),
    TripodItem(
        "14",
        "Approach to fairness",
        "No fairness constraint or reweighting; performance is reported by sex "
        "and age band with small cells suppressed (Subgroups), and a record "
        "missing predictors is reviewed rather than excluded (Gate and review "
        "zone).",
    ),
    TripodItem(
        "15",
        "Model output and risk thresholds",
        "A 2-year probability and a three-valued gate at p > {{ gate | gate }} "
        "(the trial's threshold, from the criteria file): {{ zone_text }}",
    ),
    TripodItem(
        "16",
        "Differences between development and evaluation data",
        "None by design: both come from one random{{ ' stratified' if stratified "
        "else '' }} split of the same population ({{ prevalence_dev | pct }} vs "
        "{{ prevalence_test | pct }} events); the characteristics table compares "
        "them.",
    ),
    TripodItem(
        "17",
        "Ethics approval and consent",
        "{% if synthetic %}Not applicable: no human participant or personal data; "
        "every record is synthetic.{% else %}" + _NOT_RECORDED + "{% endif %}",
    ),
    TripodItem(
        "18a",
        "Funding",
        "None recorded by the training run; an author publishing this model states it.",
    ),
    TripodItem(
        "18b",
        "Conflicts of interest",
        "None recorded by the training run; an author publishing this model states "
        "them.",
    ),
    TripodItem(
        "18c",
        "Protocol",
        "No separate protocol: the analysis is specified by the training config "
        "(hash {{ config_hash }}) and the code at commit {{ git_commit }}.",
    ),
    TripodItem(
        "18d",
        "Registration",
        "The model study is not registered; the trial it screens for is {{ trial }}.",
    ),
    TripodItem(
        "18e",
        "Data availability",
        "{% if synthetic %}Reproducible from the data source {{ source }} (dataset "
        "digest {{ digest }}).{% else %}The site's file is not shared with the "
        "model; dataset digest {{ digest }} identifies it.{% endif %}",
    ),
    TripodItem(
        "18f",
        "Code availability",
        "Open source; commit {{ git_commit }}, MLflow run {{ run_id }}.",
    ),
    TripodItem(
        "19",
        "Patient and public involvement",
        "None recorded for this model version: the training run involved no "
        "patients or members of the public.",
    ),
    TripodItem("20a", "Participant flow and follow-up", "{{ flow_text }}"),
    TripodItem(
        "20b",
        "Participant characteristics, events and missing data",
        "{{ characteristics_text }}",
    ),
    TripodItem(
        "20c",
        "Evaluation data compared with development data",
        "{{ characteristics_text }}",
    ),
    TripodItem(
        "21",
        "Participants and events in each analysis",
        "Development (fitting, tuning, calibration, review zone): {{ n_dev | count "
        "}} patients, {{ events_dev | count }} events; evaluation: {{ n_test | "
        "count }} patients, {{ events_test | count }} events.",
    ),
    TripodItem(
        "22",
        "Full model specification",
        "The registered model {{ model_name }} (run {{ run_id }}): booster, "
        "calibration, imputation and review zone as plain JSON, with the feature "
        "order of the Predictors table.",
    ),
    TripodItem(
        "23a",
        "Performance with confidence intervals, including key subgroups",
        "AUROC {{ auroc | num }} (95% CI {{ auroc_low | num }}–{{ auroc_high | num "
        "}}); 95% intervals for every headline measure and results by sex and age "
        "band (Performance, Subgroups).",
    ),
    TripodItem(
        "23b",
        "Heterogeneity in performance across clusters",
        "Not applicable: no clusters (see 12d).",
    ),
    TripodItem("24", "Results of model updating", "{{ updating_result_text }}"),
    TripodItem("25", "Interpretation, including fairness", "{{ interpretation }}"),
    TripodItem(
        "26",
        "Limitations",
        "See Limitations{{ ': synthetic data cannot validate a real model' if "
        "synthetic else '' }}.",
    ),
    TripodItem(
        "27a",
        "Handling of poor-quality or unavailable input data",
        "{{ missing_text }} Out-of-range values are refused by the schema.",
    ),
    TripodItem(
        "27b",
        "User interaction and required expertise",
        "Users enter a screening record; every reviewed or flagged patient is "
        "checked by an investigator with rheumatology expertise.",
    ),
    TripodItem(
        "27c",
        "Next steps and future research",
        "External validation on a real SLE cohort with recorded 2-year follow-up "
        "(time-to-event analysis where censoring exists), then temporal and "
        "multi-centre validation and a check of the review zone on observed "
        "outcomes.",
    ),
)
"""Every TRIPOD+AI item, in checklist order."""


def tripod_answers(facts: Mapping[str, Any]) -> list[list[str]]:
    """Item, topic and answer of every item, the answers filled with ``facts``.

    Raises:
        jinja2.UndefinedError: an answer names a fact that is not given.
    """
    env = environment(markdown=True)  # plain text; the card's table escapes it
    rows = []
    for item in TRIPOD_ITEMS:
        answer = env.from_string(item.answer).render(facts)
        rows.append([item.id, item.topic, " ".join(answer.split())])
    return rows


__all__ = ["TRIPOD_ITEMS", "TripodItem", "tripod_answers"]
