"""Screening a FHIR Bulk Data export on one core, against screening the same table.

Writes ``--n`` synthetic patients as bulk FHIR (``synthetic.fhir.write_bulk``) and as
a parquet table, trains the default model once (no MLflow), pins the process to one
CPU with one Arrow and one XGBoost thread, then times on the same patients:

* ``fhir_read``   — the folder of ndjson → a cohort table (``read_bulk``);
* ``fhir_screen`` — read, validate and screen (what ``lnrisk screen --input DIR``
  runs);
* ``table_screen`` — the parquet table read, validated and screened;
* ``one_by_one``  — ``read_patient`` per patient on ``--n-single`` bundles (the
  one-patient path, with FHIR validation), for the ratio against the bulk reader.

Patients per second are given per CPU second (``time.process_time``) and per wall
second, each the best of three runs; the machine may be shared, so the CPU figure is
the one to compare. Prints times and ratios; the last line is one JSON object.

    python benchmarks/fhir_bulk.py [--n 20000] [--n-single 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import pyarrow as pa

from data_schema import frame_to_features, validate_cohort
from data_schema.fhir import read_patient
from data_schema.fhir.bulk import read_bulk
from data_schema.fhir.reader import ValidationCache
from eligibility import load_criteria
from eligibility.screen import screen_population
from riskmodel import LNRiskModel
from synthetic.fhir import patient_bundles, write_bulk
from synthetic.generator import generate_cohort
from training.config import load_config
from training.fit import fit_candidate

DAY = date(2026, 12, 1)


REPEATS = 3


def _timed(fn, repeats: int = REPEATS):
    """The result, and the least wall and CPU seconds over ``repeats`` runs (the run
    least disturbed by the rest of a shared machine)."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return result, min(walls), min(cpus)


def _one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def _prepare(work: Path, n: int, seed: int) -> None:
    """Train the default model (saved to ``work/model``) and write the test cohort
    as bulk FHIR (``work/bulk``) and as a table (``work/cohort.parquet``)."""
    train = generate_cohort(n=20_000, seed=seed)
    model, _ = fit_candidate(
        frame_to_features(train), train["ln_within_2y"].to_numpy(int), load_config()
    )
    model.save(work / "model")
    cohort = generate_cohort(n=n, seed=seed + 1)
    write_bulk(cohort, work / "bulk", DAY, seed=seed)
    cohort.drop(columns=["ln_within_2y", "true_risk_2y"]).to_parquet(
        work / "cohort.parquet"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--n-single", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    _one_core()

    work = Path(tempfile.mkdtemp(prefix="fhir-bulk-"))
    # Training and writing the export run in a child process: the measured process
    # starts as `lnrisk screen --input` does, with a saved model and a fresh heap
    # (after training in-process, reading measured ~30 % slower).
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        pool.submit(_prepare, work, args.n, args.seed).result()
    model = LNRiskModel.load(work / "model")
    model.set_threads(1)
    criteria = load_criteria()
    cohort = pd.read_parquet(work / "cohort.parquet")
    table = work / "cohort.parquet"
    size_mb = sum(p.stat().st_size for p in (work / "bulk").iterdir()) / 1e6

    reading, read_wall, read_cpu = _timed(lambda: read_bulk(work / "bulk", DAY))

    def fhir_screen():
        return screen_population(
            model, validate_cohort(read_bulk(work / "bulk", DAY).cohort), DAY, criteria
        )

    def table_screen():
        return screen_population(
            model, validate_cohort(pd.read_parquet(table)), DAY, criteria
        )

    from_fhir, fhir_wall, fhir_cpu = _timed(fhir_screen)
    from_table, table_wall, table_cpu = _timed(table_screen)
    # the full records decide more: FHIR does not carry every field
    moved = pd.crosstab(
        from_table.per_patient["status"], from_fhir.per_patient["status"]
    )
    bundles = list(patient_bundles(cohort.head(args.n_single), DAY, seed=args.seed))

    def one_by_one():
        cache = ValidationCache()  # every chart new, as on its first view
        for b in bundles:
            read_patient([e["resource"] for e in b["entry"]], DAY, cache=cache)

    _, single_wall, single_cpu = _timed(one_by_one)

    n = args.n
    out = {
        "benchmark": "fhir_bulk",
        "patients": n,
        "export_mb": round(size_mb, 1),
        "resources": sum(reading.resources.values()),
        "fhir_read_patients_per_cpu_s": round(n / read_cpu),
        "fhir_screen_patients_per_cpu_s": round(n / fhir_cpu),
        "fhir_screen_patients_per_wall_s": round(n / fhir_wall),
        "table_screen_patients_per_cpu_s": round(n / table_cpu),
        "fhir_over_table_cpu": round(fhir_cpu / table_cpu, 2),
        "one_by_one_patients_per_cpu_s": round(args.n_single / single_cpu),
        "bulk_over_one_by_one_speed": round(
            (n / read_cpu) / (args.n_single / single_cpu), 1
        ),
        "statuses": from_fhir.per_patient["status"].value_counts().to_dict(),
        "full_record_status_to_fhir_status": {
            f"{a}->{b}": int(moved.loc[a, b])
            for a in moved.index
            for b in moved.columns
            if moved.loc[a, b]
        },
        "target_patients_per_cpu_s": 2000,
    }
    print(
        f"{n:,} patients, {size_mb:.0f} MB of ndjson, "
        f"{out['resources']:,} resources; one core"
    )
    print(f"read bulk FHIR   {read_cpu:6.2f} s CPU  ({read_wall:6.2f} s wall)")
    print(f"screen from FHIR {fhir_cpu:6.2f} s CPU  ({fhir_wall:6.2f} s wall)")
    print(f"screen a table   {table_cpu:6.2f} s CPU  ({table_wall:6.2f} s wall)")
    print(
        f"read_patient one by one: {out['one_by_one_patients_per_cpu_s']} patients "
        f"per CPU s ({single_wall:.2f} s wall for {args.n_single})"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
