"""Population screening cost against raw model prediction, on the same patients.

Trains the default model once (no MLflow), then on ``--n`` synthetic patients times:

* ``predict``  — ``model.predict_proba`` on the feature matrix (the model floor);
* ``gate``     — the risk and the three-valued gate (plausible completions of the
  records with missing predictors), ``LNRiskModel.gate``;
* ``screen``   — risk, gate and every NCT05585671 criterion
  (``eligibility.screen.screen_population``, what ``lnrisk screen`` runs);
* ``rules``    — the criteria alone (``eligibility.screen_frame``), given the risks.

Prints times and ratios; the last line is one JSON object.

    python benchmarks/screening.py [--n 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date

import numpy as np

from data_schema import frame_to_features, validate_cohort
from eligibility import load_criteria, screen_frame
from eligibility.screen import screen_population
from synthetic.generator import generate_cohort
from training.config import load_config
from training.fit import fit_candidate

DAY = date(2026, 12, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    cfg = load_config()
    train = generate_cohort(n=20_000, seed=args.seed)
    X_train = frame_to_features(train)
    model, _ = fit_candidate(X_train, train["ln_within_2y"].to_numpy(int), cfg)
    model.set_threads(1)
    cohort = validate_cohort(generate_cohort(n=args.n, seed=args.seed + 1))
    criteria = load_criteria()

    start = time.perf_counter()
    X = frame_to_features(cohort, as_of=DAY)
    risk = model.predict_proba(X)
    predict_s = time.perf_counter() - start

    start = time.perf_counter()
    result = screen_population(model, cohort, DAY, criteria)
    screen_s = time.perf_counter() - start

    start = time.perf_counter()
    model.gate(X, criteria.risk_gate.threshold)
    gate_s = time.perf_counter() - start

    start = time.perf_counter()
    screen_frame(cohort, risk, DAY, criteria)
    rules_s = time.perf_counter() - start

    counts = result.per_patient["status"].value_counts().to_dict()
    incomplete = float(np.isnan(X).any(axis=1).mean())
    print(f"{args.n:,} patients ({incomplete:.0%} with a missing predictor), "
          "1 XGBoost thread")  # fmt: skip
    print(f"predict (features + model)     {predict_s:8.2f} s")
    for name, seconds in (
        ("risk + gate", gate_s),
        ("screen (risk + gate + rules)", screen_s),
        ("rules alone (given the risks)", rules_s),
    ):
        print(f"{name:<31}{seconds:8.2f} s  {seconds / predict_s:5.1f}x")
    print(f"decisions: {counts}")
    assert np.isfinite(result.per_patient["risk"]).all()
    print(
        json.dumps(
            {
                "patients": args.n,
                "screen_seconds": round(screen_s, 3),
                "predict_seconds": round(predict_s, 3),
                "rules_seconds": round(rules_s, 3),
                "gate_seconds": round(gate_s, 3),
                "ratio": round(screen_s / predict_s, 2),
                "rules_ratio": round(rules_s / predict_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
