"""The vectorised path agrees with the single-patient path; attrition counts add up."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from data_schema import frame_to_records
from eligibility import attrition_table, screen, screen_frame
from synthetic.generator import generate_cohort

SCREENING = date(2026, 12, 1)


def _scenario(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A synthetic cohort: risks around the gate, some undetermined, consent mixed."""
    df = generate_cohort(n=n, seed=seed, reference_date=SCREENING)
    rng = np.random.default_rng(seed)
    df["consent_signed"] = pd.array(
        rng.choice([True, False, None], size=n, p=[0.45, 0.05, 0.5]), dtype="boolean"
    )
    df["contraception_agreed"] = pd.array(
        rng.choice([True, None], size=n, p=[0.5, 0.5]), dtype="boolean"
    )
    risks = rng.uniform(0.3, 1.0, size=n)
    risks[:20] = 0.5  # exactly at the gate
    gates = np.where(risks > 0.5, "above", "below").astype(object)
    gates[rng.random(n) < 0.2] = "undetermined"
    return df, risks, gates


@pytest.mark.slow
def test_screen_frame_agrees_with_screen_on_10000_patients(criteria) -> None:
    df, risks, gates = _scenario(10_000, seed=5)
    batch = screen_frame(df, risks, SCREENING, criteria, gates)
    records = frame_to_records(df)
    rows = batch.to_dict("records")
    statuses = set()
    for i, rec in enumerate(records):
        d = screen(
            rec,
            risk=float(risks[i]),
            gate=gates[i],
            screening_date=SCREENING,
            criteria=criteria,
        )
        row = rows[i]
        statuses.add(d.status)
        assert row["status"] == d.status, (i, d.reasons)
        assert row["missing_fields"] == d.missing_fields, i
        assert row["to_confirm"] == d.to_confirm, i
        for v in d.verdicts:
            assert row[v.id] == v.verdict, (i, v.id, v.reason)
    assert statuses == {"eligible", "ineligible", "needs_review"}


def test_screen_frame_handles_absent_columns_as_missing(criteria, record) -> None:
    rec = record()
    df = pd.DataFrame([rec.model_dump()]).drop(columns=["igg_g_l"])
    out = screen_frame(df, [0.8], SCREENING, criteria)
    assert out.loc[0, "status"] == "needs_review"
    assert out.loc[0, "missing_fields"] == ("igg_g_l",)
    assert out.loc[0, "EXC-07-igg-below-400mg-dl"] == "unknown"


def test_attrition_is_sequential_and_suppresses_small_cells(criteria) -> None:
    df, risks, gates = _scenario(2000, seed=9)
    batch = screen_frame(df, risks, SCREENING, criteria, gates)
    raw = attrition_table(batch, criteria, min_cell=0)
    assert list(raw["step"][3:]) == [c.id for c in criteria.criteria]
    undetermined = int((batch["gate"] == "undetermined").sum())
    assert undetermined > 0
    assert raw.loc[2, "step"].startswith("gate undetermined")
    assert raw.loc[2, "unknown"] == undetermined
    assert raw.loc[2, "remaining"] == raw.loc[1, "remaining"]
    # remaining(k) = remaining(k-1) − ruled_out_here(k)
    rem, out = raw["remaining"].to_numpy(), raw["ruled_out_here"].to_numpy()
    assert rem[0] == 2000
    assert np.array_equal(rem[1:], rem[:-1] - out[1:])
    assert rem[-1] == int((batch["status"] != "ineligible").sum())
    shared = attrition_table(batch, criteria)
    values = shared[["remaining", "ruled_out_here", "fails", "unknown"]].to_numpy()
    numeric = [v for v in values.ravel() if not isinstance(v, str)]
    assert all(v == 0 or v >= 10 for v in numeric)
    assert "<10" in values.ravel().tolist()


def test_bad_risks_are_rejected(criteria, record) -> None:
    df = pd.DataFrame([record().model_dump()])
    with pytest.raises(ValueError, match="risks"):
        screen_frame(df, [1.5], SCREENING, criteria)
