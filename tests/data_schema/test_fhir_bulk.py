"""Bulk FHIR: cohort → ndjson → cohort, the bulk reader equals the one-patient reader,
screening from FHIR equals screening from records, every emitted resource is valid."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fhir.resources.R4B import get_fhir_model_class

from data_schema import field_specs, model_features, validate_cohort
from data_schema.fhir import load_mapping, read_patient
from data_schema.fhir.bulk import cohort_table, read_bulk
from eligibility import load_criteria
from eligibility.criteria import DEFAULT_CRITERIA_PATH
from eligibility.screen import screen_population
from synthetic.fhir import cohort_resources, patient_bundles, write_bulk
from synthetic.generator import DAYS_PER_YEAR, generate_cohort

DAY = date(2026, 12, 1)


def fhir_view(cohort: pd.DataFrame) -> pd.DataFrame:
    """What a FHIR export of these records can say: the carried fields, except the
    values the mapping has no code for (documented in docs/fhir.md)."""
    m = load_mapping()
    view = cohort[list(field_specs())].copy()
    for name in m.not_carried:
        view[name] = pd.Series([None] * len(view), dtype=view[name].dtype)
    other_is = view["immunosuppressant_name"] == "other"
    for name in ("immunosuppressant_current", "immunosuppressant_name"):
        view.loc[other_is.fillna(False), name] = None
    view.loc[other_is.fillna(False), "immunosuppressant_dose_unchanged_since"] = None
    agents = m.fields["b_cell_therapy_ever"].concepts
    uncoded = view["b_cell_therapy_agent"].notna() & ~view["b_cell_therapy_agent"].isin(
        agents
    )
    for name in (
        "b_cell_therapy_ever",
        "b_cell_therapy_agent",
        "b_cell_therapy_last_date",
        "b_cell_therapy_half_life_days",
    ):
        view.loc[uncoded, name] = None
    sinces = view[
        [
            "prednisone_dose_unchanged_since",
            "hydroxychloroquine_dose_unchanged_since",
            "immunosuppressant_dose_unchanged_since",
        ]
    ]
    view.loc[sinces.isna().all(axis=1), "soc_regimen_stable_since"] = None
    return view.reset_index(drop=True)


def differences(expected: pd.DataFrame, got: pd.DataFrame) -> dict[str, int]:
    """Cells that differ, per field (floats to 1e-9, durations to the day)."""
    out = {}
    for name, spec in field_specs().items():
        a, b = expected[name], got[name]
        if spec.kind in ("float", "int"):
            x, y = (
                a.astype("Float64").to_numpy(np.float64, na_value=np.nan),
                b.astype("Float64").to_numpy(np.float64, na_value=np.nan),
            )
            tol = 0.5 / DAYS_PER_YEAR + 1e-9 if name == "disease_duration_years" else 0
            same = np.isclose(x, y, rtol=1e-9, atol=tol) | (np.isnan(x) & np.isnan(y))
        else:
            x = a.astype(object).where(a.notna(), None).to_numpy()
            y = b.astype(object).where(b.notna(), None).to_numpy()
            same = np.array([p == q for p, q in zip(x, y, strict=True)])
        if (~same).sum():
            out[name] = int((~same).sum())
    return out


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    cohort = generate_cohort(n=300, seed=11)
    folder = tmp_path_factory.mktemp("bulk")
    write_bulk(cohort, folder, DAY, seed=11)
    return cohort, folder


def test_round_trip_300_patients_on_every_carried_field(small):
    cohort, folder = small
    reading = read_bulk(folder, DAY)
    assert differences(fhir_view(cohort), reading.cohort) == {}
    validate_cohort(reading.cohort)


@pytest.mark.slow
def test_round_trip_10000_patients_on_every_carried_field(tmp_path):
    cohort = generate_cohort(n=10_000, seed=12)
    write_bulk(cohort, tmp_path, DAY, seed=12)
    reading = read_bulk(tmp_path, DAY)
    assert len(reading.cohort) == 10_000
    assert differences(fhir_view(cohort), reading.cohort) == {}


def test_earlier_urinalyses_round_trip_true_false_and_unknown(tmp_path):
    """The generator says "no earlier abnormal urinalysis" for everyone; a site's
    table may say yes (with the date) or not know."""
    cohort = generate_cohort(n=90, seed=21)
    measured = cohort["urine_protein_g_24h"].notna().to_numpy()
    group = np.arange(len(cohort)) % 4
    ever = cohort["abnormal_urinalysis_ever"].astype(object)
    last = cohort["abnormal_urinalysis_last_date"].copy()
    long_ago = group == 0
    ever[long_ago] = True
    last[long_ago] = pd.Timestamp(DAY) - pd.Timedelta(days=200)
    # inside the window, before today's result: today's result is dated after it
    recent = (group == 1) & measured
    ever[recent] = True
    last[recent] = pd.Timestamp(DAY) - pd.Timedelta(days=20)
    ever[group == 2] = None
    cohort["abnormal_urinalysis_ever"] = ever
    cohort["abnormal_urinalysis_last_date"] = last
    write_bulk(cohort, tmp_path, DAY, seed=21)
    reading = read_bulk(tmp_path, DAY)
    assert differences(fhir_view(cohort), reading.cohort) == {}
    read = reading.cohort["abnormal_urinalysis_ever"]
    assert {True, False} <= set(read.dropna()) and read.isna().any()


def test_the_export_looks_like_an_ehrs(small):
    """Several results over time, units other than the record's, every code of a
    value set used, explicit negatives."""
    _, folder = small
    obs = pd.read_json(folder / "Observation.ndjson", lines=True)
    codes = obs["code"].map(lambda c: c["coding"][0]["code"])
    units = obs["valueQuantity"].dropna().map(lambda q: q.get("code"))
    per_patient = obs["subject"].map(lambda s: s["reference"]).value_counts()
    assert per_patient.median() > 25
    assert {"4485-9"} < set(codes)
    assert {"5130-0", "33799-8"} <= set(codes)  # anti-dsDNA members
    assert {"2160-0", "14682-9"} <= set(codes)  # creatinine by mass and by moles
    assert {"mg/dL", "g/L", "umol/L", "mmol/L", "10*3/uL"} <= set(units)
    statements = pd.read_json(folder / "MedicationStatement.ndjson", lines=True)
    assert {"active", "not-taken"} <= set(statements["status"])


def test_bulk_reader_equals_the_one_patient_reader(small):
    cohort, folder = small
    bulk = read_bulk(folder, DAY)
    for i, bundle in enumerate(patient_bundles(cohort.head(60), DAY, seed=11)):
        resources = [e["resource"] for e in bundle["entry"]]
        one = read_patient(resources, DAY, validate=False)
        row = bulk.cohort.iloc[[i]].reset_index(drop=True)
        single = cohort_table(pd.DataFrame([one.record]))
        assert differences(row, single) == {}, i
        refs = bulk.provenance.iloc[i].dropna().to_dict()
        assert refs == one.provenance


def test_screening_from_fhir_equals_screening_from_records(small, served):
    import bentoml

    from riskmodel import LNRiskModel

    cohort, folder = small
    model = LNRiskModel.load(
        Path(bentoml.models.get(served.tag).path), expected_features=model_features()
    )
    criteria = load_criteria(DEFAULT_CRITERIA_PATH)
    from_fhir = screen_population(
        model, validate_cohort(read_bulk(folder, DAY).cohort), DAY, criteria
    )
    from_records = screen_population(
        model, validate_cohort(fhir_view(cohort)), DAY, criteria
    )
    pd.testing.assert_frame_equal(from_fhir.per_patient, from_records.per_patient)
    pd.testing.assert_frame_equal(from_fhir.attrition, from_records.attrition)
    # the earlier urinalyses are read: the exclusion is decided, not a field to get
    screened = from_fhir.per_patient
    assert set(screened["EXC-01h-earlier-abnormal-urinalysis"]) == {"not_met"}
    assert not any("abnormal_urinalysis_ever" in f for f in screened["missing_fields"])


def test_a_synthetic_patient_s_earlier_urinalyses_read_as_normal(small):
    cohort, _ = small
    bundle = next(patient_bundles(cohort.head(1), DAY, seed=11))
    reading = read_patient([e["resource"] for e in bundle["entry"]], DAY)
    assert reading.record["abnormal_urinalysis_ever"] is False
    assert "abnormal_urinalysis_last_date" not in reading.record
    source = reading.provenance["abnormal_urinalysis_ever"]
    assert source.startswith("Observation/")
    assert source != reading.provenance.get("urine_protein_g_24h")  # not today's


def test_every_emitted_resource_validates_with_the_fhir_models():
    cohort = generate_cohort(n=40, seed=13)
    seen = set()
    for resource in cohort_resources(cohort, DAY, seed=13):
        model = get_fhir_model_class(resource["resourceType"])
        model.model_validate(resource)
        seen.add(resource["resourceType"])
    assert seen == {
        "Patient",
        "Observation",
        "Condition",
        "MedicationStatement",
        "MedicationAdministration",
        "Immunization",
    }


def test_bad_lines_are_reported_one_by_one_and_the_rest_read(small, tmp_path):
    _, folder = small
    for f in folder.glob("*.ndjson"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    with (tmp_path / "Observation.ndjson").open("a") as fh:
        fh.write(
            '{"resourceType":"Observation","id":"s","valueQuantity":{"value":"1"}}\n'
        )
        fh.write("not json at all\n")
        fh.write('{"resourceType":"Condition","id":"c"}\n')
        fh.write('{"resourceType":"Observation"}{"resourceType":"Observation"}\n')
    (tmp_path / "Encounter.ndjson").write_text('{"resourceType":"Encounter"}\n')
    reading = read_bulk(tmp_path, DAY)
    assert len(reading.cohort) == 300
    why = reading.problems.set_index("resource")["why"]
    n = sum(1 for _ in (folder / "Observation.ndjson").open())
    assert "not readable FHIR JSON" in why[f"Observation line {n + 1}"]
    assert "not readable FHIR JSON" in why[f"Observation line {n + 2}"]
    assert "resourceType 'Condition'" in why[f"Observation line {n + 3}"]
    assert "not one JSON object per line" in why[f"Observation line {n + 4}"]
    assert why["Encounter.ndjson"] == "Encounter is not read"
    assert differences(read_bulk(folder, DAY).cohort, reading.cohort) == {}
