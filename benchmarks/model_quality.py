"""Model quality against the truth: default model vs oracle vs RIFLE-LN baseline.

Fresh synthetic cohorts from the seeds given (training: ``seed``, test: ``seed + 1``),
each reduced to the development population (SLE without prior kidney involvement),
the default training config (search, calibration, imputation equations and review
zone included), no MLflow. The oracle is the data-generating process's true risk.
With ``--shift NAME`` the model is also scored on an external population
(``seed + 3``) before and after a logistic recalibration fitted on another sample of
it (``seed + 2``, ``--recal-n``).

``citl`` here is mean predicted − observed risk (probability scale);
``citl_logit`` is the calibration intercept with the logit offset.

    python benchmarks/model_quality.py --train-n 20000 --test-n 20000 --seed 7 \
        [--shift external]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from data_schema import frame_to_features
from synthetic.generator import generate_cohort
from training.config import load_config
from training.data import development_population, load_outcome_cohort
from training.evaluation.evaluate import evaluate_model
from training.evaluation.metrics import classification_report
from training.fit import fit_candidate
from training.registry.validation import recalibrate_model

GATE = load_config().gate_threshold  # from the criteria file in force
ROWS = ("auroc", "brier", "citl", "cal_slope", "ici", "nb_at_gate", "share_above_gate")


def summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    m = classification_report(y, p, GATE)
    return {
        "auroc": m["auroc"],
        "brier": m["brier"],
        "citl": m["mean_predicted"] - m["prevalence"],
        "citl_logit": m["citl"],
        "cal_slope": m["cal_slope"],
        "ici": m["ici"],
        "nb_at_gate": m["nb_at_gate"],
        "share_above_gate": m["share_above_gate"],
    }


def population(n: int, seed: int, config, **kwargs):
    """A fresh synthetic cohort reduced to the development population."""
    cohort = load_outcome_cohort(generate_cohort(n=n, seed=seed, **kwargs))
    kept, _ = development_population(
        cohort, config.trial_criteria, config.population.exclude_groups
    )
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-n", type=int, default=20_000)
    parser.add_argument("--test-n", type=int, default=20_000)
    parser.add_argument("--recal-n", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shift", default=None, help="e.g. external")
    args = parser.parse_args()

    base = load_config()
    train = population(args.train_n, args.seed, base)
    test = population(args.test_n, args.seed + 1, base)
    X, y = frame_to_features(train), train["ln_within_2y"].to_numpy(int)
    X_test, y_test = frame_to_features(test), test["ln_within_2y"].to_numpy(int)
    truth = test["true_risk_2y"].to_numpy(float)

    started = time.perf_counter()
    model, _ = fit_candidate(X, y, base)
    train_seconds = time.perf_counter() - started
    rifle_cfg = base.model_copy(
        update={"model": base.model.model_copy(update={"family": "rifle_ln"})}
    )
    rifle, _ = fit_candidate(X, y, rifle_cfg)

    p = model.predict_proba(X_test)
    rows = {
        "model": summary(y_test, p),
        "oracle": summary(y_test, truth),
        "rifle_ln": summary(y_test, rifle.predict_proba(X_test)),
    }
    report = evaluate_model(model, test, GATE).report
    oracle, gate = report["oracle"], report["gate"]

    print(f"train {args.train_n:,} (seed {args.seed}), test {args.test_n:,} "
          f"(seed {args.seed + 1}); training {train_seconds:.1f} s")  # fmt: skip
    print(f"{'metric':<18}" + "".join(f"{k:>12}" for k in rows))
    for key in ROWS:
        print(f"{key:<18}" + "".join(f"{rows[k][key]:>12.4f}" for k in rows))
    m, o, r = rows["model"], rows["oracle"], rows["rifle_ln"]
    nb_ratio = m["nb_at_gate"] / o["nb_at_gate"] if o["nb_at_gate"] else float("nan")
    print(f"AUROC gap to oracle: {m['auroc'] - o['auroc']:+.4f}; "
          f"over RIFLE-LN: {m['auroc'] - r['auroc']:+.4f}")  # fmt: skip
    print(f"net benefit at 0.5, model / oracle: {nb_ratio:.2f}")
    print(
        "of patients with true risk > 0.5, above the gate: "
        f"{oracle['share_true_high_above_gate']:.1%}; of patients above the gate, "
        f"true risk > 0.5: {oracle['share_above_gate_true_high']:.1%}"
    )
    print(
        f"gate: review zone ({gate['exclude_edge']:.3f}, {gate['pass_edge']:.3f}]; "
        f"{gate['review_share']:.1%} reviewed; of true-high patients "
        f"{gate['truth']['excluded_true_high']:.1%} auto-excluded; of auto-passed "
        f"{gate['truth']['passed_true_high']:.1%} truly high"
    )

    result = {
        "auroc": m["auroc"],
        "oracle_auroc": o["auroc"],
        "rifle_auroc": r["auroc"],
        "rifle_max_risk": float(rifle.predict_proba(X_test).max()),
        "brier": m["brier"],
        "citl": m["citl"],
        "citl_logit": m["citl_logit"],
        "cal_slope": m["cal_slope"],
        "ici": m["ici"],
        "nb_at_0_5": m["nb_at_gate"],
        "oracle_nb_at_0_5": o["nb_at_gate"],
        "nb_ratio": nb_ratio,
        "share_above_gate": m["share_above_gate"],
        "oracle_share_above_gate": o["share_above_gate"],
        "share_true_high_above_gate": oracle["share_true_high_above_gate"],
        "share_above_gate_true_high": oracle["share_above_gate_true_high"],
        "gate_review_share": gate["review_share"],
        "gate_excluded_true_high": gate["truth"]["excluded_true_high"],
        "gate_passed_true_high": gate["truth"]["passed_true_high"],
        "train_seconds": train_seconds,
    }
    if args.shift:
        recal = population(args.recal_n, args.seed + 2, base, shift=args.shift)
        ext = population(args.test_n, args.seed + 3, base, shift=args.shift)
        X_ext, y_ext = frame_to_features(ext), ext["ln_within_2y"].to_numpy(int)
        adapted = recalibrate_model(
            model,
            frame_to_features(recal),
            recal["ln_within_2y"].to_numpy(int),
            "logistic",
        )
        before = summary(y_ext, model.predict_proba(X_ext))
        after = summary(y_ext, adapted.predict_proba(X_ext))
        ext_oracle = summary(y_ext, ext["true_risk_2y"].to_numpy(float))
        print(f"\nshift '{args.shift}' (test seed {args.seed + 3}; recalibrated on "
              f"{args.recal_n:,} patients, seed {args.seed + 2})")  # fmt: skip
        print(f"{'metric':<18}{'before':>12}{'after':>12}{'oracle':>12}")
        for key in ROWS:
            print(f"{key:<18}{before[key]:>12.4f}{after[key]:>12.4f}"
                  f"{ext_oracle[key]:>12.4f}")  # fmt: skip
        result.update(
            {
                "shift": args.shift,
                "shift_auroc": before["auroc"],
                "shift_ici_before": before["ici"],
                "shift_ici_after": after["ici"],
                "shift_citl_before": before["citl"],
                "shift_citl_after": after["citl"],
                "shift_cal_slope_after": after["cal_slope"],
            }
        )
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v
                      for k, v in result.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
