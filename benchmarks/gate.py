"""The three-valued gate against the truth, on fresh synthetic cohorts.

Trains the default model on a fresh cohort (``--seed``), then screens the
development population (SLE without prior kidney involvement) of another fresh
cohort (``--seed + 1``) with every predictor recorded, with the values missing as
the generator leaves them, and with predictors removed for everyone:

* ``complete``          — every value recorded (the generator's complete records);
* ``as_recorded``       — the same patients with the generator's missingness;
* ``no_dsdna_c3_c4``    — anti-dsDNA, C3 and C4 removed;
* ``no_urine_protein``  — the 24-h urine protein removed;
* ``no_c1q_nucleosome`` — anti-C1q and anti-nucleosome removed;
* ``sex_age_only``      — only sex and age recorded.

Per scenario: ``excluded_true_high`` (share of true-risk > gate patients the gate
auto-excludes), ``passed_true_high`` (share of auto-passed patients whose true risk
is above the gate), ``review_share``, ``n_true_high``; plus the model's AUROC, net
benefit at the gate and calibration against the oracle's, and the training time.

    python benchmarks/gate.py --train-n 20000 --test-n 20000 --seed 11

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from data_schema import frame_to_features, model_features
from synthetic import generate_cohort
from training.config import load_config
from training.data import config_population, load_outcome_cohort
from training.evaluation.metrics import classification_report
from training.fit import fit_candidate

SCENARIOS: dict[str, tuple[str, ...] | None] = {
    "complete": (),
    "no_dsdna_c3_c4": ("anti_dsdna_iu_ml", "c3_g_l", "c4_g_l"),
    "no_urine_protein": ("urine_protein_g_24h",),
    "no_c1q_nucleosome": ("anti_c1q_positive", "anti_nucleosome_positive"),
    "sex_age_only": None,  # every predictor but sex and age
}


def population(n: int, seed: int, config, missing_values: bool = True) -> object:
    cohort = generate_cohort(n=n, seed=seed, missing_values=missing_values)
    kept, _ = config_population(config).apply(
        load_outcome_cohort(cohort), config.trial_criteria
    )
    return kept


def scenario(X: np.ndarray, removed: tuple[str, ...] | None) -> np.ndarray:
    names = model_features()
    out = X.copy()
    drop = (
        [j for j, f in enumerate(names) if f not in ("male", "age_years")]
        if removed is None
        else [names.index(f) for f in removed]
    )
    out[:, drop] = np.nan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-n", type=int, default=20_000)
    parser.add_argument("--test-n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    config = load_config()
    gate = config.gate_threshold
    train = population(args.train_n, args.seed, config)
    test = population(args.test_n, args.seed + 1, config, missing_values=False)
    recorded = generate_cohort(n=args.test_n, seed=args.seed + 1)
    recorded = recorded.set_index("patient_id").loc[test["patient_id"]].reset_index()
    started = time.perf_counter()
    model, _ = fit_candidate(
        frame_to_features(train), train["ln_within_2y"].to_numpy(int), config
    )
    train_seconds = time.perf_counter() - started
    model.set_threads(1)

    X = frame_to_features(test)
    y = test["ln_within_2y"].to_numpy(int)
    truth = test["true_risk_2y"].to_numpy(float)
    true_high = truth > gate
    out: dict[str, object] = {"gate": gate, "seed": args.seed}
    print(f"{len(test):,} test patients in the population, {true_high.sum()} true-high")
    scenarios = {name: scenario(X, removed) for name, removed in SCENARIOS.items()}
    scenarios = {
        "complete": scenarios.pop("complete"),
        "as_recorded": frame_to_features(recorded),
        **scenarios,
    }
    for name, features in scenarios.items():
        started = time.perf_counter()
        states = model.gate(features, gate)
        seconds = time.perf_counter() - started
        passed, excluded = states.state == "above", states.state == "below"
        row = {
            "excluded_true_high": float(excluded[true_high].mean()),
            "passed_true_high": float(true_high[passed].mean())
            if passed.any()
            else None,
            "review_share": float((states.state == "undetermined").mean()),
            "n_true_high": int(true_high.sum()),
            "n_passed": int(passed.sum()),
            "n_excluded": int(excluded.sum()),
            "gate_seconds": round(seconds, 2),
        }
        out[name] = row
        print(f"{name:18s} {row}")
    model_m = classification_report(y, model.predict_proba(X), gate)
    oracle_m = classification_report(y, truth, gate)
    exclude_edge, pass_edge = model.zone.edges(gate)
    out.update(
        {
            "auroc": model_m["auroc"],
            "oracle_auroc": oracle_m["auroc"],
            "nb_at_gate": model_m["nb_at_gate"],
            "oracle_nb_at_gate": oracle_m["nb_at_gate"],
            "citl": model_m["mean_predicted"] - model_m["prevalence"],
            "cal_slope": model_m["cal_slope"],
            "ici": model_m["ici"],
            "review_zone": [exclude_edge, pass_edge],
            "train_seconds": round(train_seconds, 1),
        }
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
