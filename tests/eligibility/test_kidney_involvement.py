"""Prior kidney involvement: every route excludes, and the training population
leaves out exactly the patients the screening excludes by it."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from data_schema import validate_cohort
from eligibility import screen_frame
from eligibility.population import KIDNEY_INVOLVEMENT
from training.data import development_population

SCREENING = date(2026, 12, 1)  # = conftest.SCREENING

#: route → (criterion it meets, changes to the eligible patient)
ROUTES = {
    "biopsy": ("EXC-01a-kidney-biopsy", {"kidney_biopsy_confirmed": True}),
    "acr-renal": ("EXC-01f-acr-renal-disorder", {"acr_renal_disorder": True}),
    "prior-diagnosis": (
        "EXC-01g-lupus-nephritis-diagnosis",
        {
            "lupus_nephritis_diagnosis_ever": True,
            "lupus_nephritis_diagnosis_source": "clinical",
            "lupus_nephritis_diagnosis_date": date(2019, 3, 14),
        },
    ),
    "prior-urinalysis": (
        "EXC-01h-earlier-abnormal-urinalysis",
        {
            "abnormal_urinalysis_ever": True,
            "abnormal_urinalysis_last_date": date(2024, 5, 2),
        },
    ),
    "sediment-rbc": ("EXC-01b-urine-rbc", {"urine_rbc_per_hpf": 12}),
    "sediment-wbc": ("EXC-01c-urine-wbc", {"urine_wbc_per_hpf": 9}),
    "sediment-casts": ("EXC-01d-urine-casts", {"urine_cellular_casts": True}),
    "proteinuria": ("EXC-01e-urine-protein", {"urine_protein_g_24h": 0.8}),
}


@pytest.fixture(scope="module")
def cohort(record) -> pd.DataFrame:
    rows = [record(patient_id="none").model_dump()]
    rows.append(record(patient_id="open", urine_protein_g_24h=None).model_dump())
    for route, (_, changes) in ROUTES.items():
        rows.append(record(patient_id=route, **changes).model_dump())
    frame = validate_cohort(pd.DataFrame(rows))
    frame["ln_within_2y"] = 0
    return frame


def test_the_group_is_every_route(criteria) -> None:
    ids = {c.id for c in criteria.group(KIDNEY_INVOLVEMENT)}
    assert ids == {criterion for criterion, _ in ROUTES.values()}


@pytest.mark.parametrize("route", list(ROUTES))
def test_each_route_excludes(cohort, criteria, route) -> None:
    out = screen_frame(cohort, [0.8] * len(cohort), SCREENING, criteria)
    out.index = cohort["patient_id"]
    criterion = ROUTES[route][0]
    assert out.loc[route, criterion] == "met"
    assert out.loc[route, "status"] == "ineligible"
    assert out.loc["none", criterion] == "not_met"


def test_training_population_drops_the_patients_the_screening_excludes(
    cohort, criteria
) -> None:
    out = screen_frame(cohort, [0.8] * len(cohort), SCREENING, criteria)
    members = [c.id for c in criteria.group(KIDNEY_INVOLVEMENT)]
    excluded = set(cohort["patient_id"][(out[members] == "met").any(axis=1)])
    kept, attrition = development_population(
        cohort, criteria, [KIDNEY_INVOLVEMENT], SCREENING
    )
    assert excluded == set(ROUTES)
    assert set(kept["patient_id"]) == {"none", "open"}  # "open": not ruled out
    steps = {row["step"]: row["patients"] for row in attrition}
    assert steps["left out (any route)"] == len(ROUTES)
    assert steps["kept, not ruled out (data missing)"] == 1
