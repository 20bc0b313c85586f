"""Model time for one patient: the served format against the usual alternatives.

Measured in one run, on the same synthetic training data and hyperparameters:

* ``native``   — PatientRecord → float32 row → ``Booster.inplace_predict`` (margin) →
  Platt calibration (``riskmodel.LNRiskModel``).
* ``tree walk`` — what the service does: the same, with the booster's trees walked by
  numpy (``LNRiskModel.compile_trees``, ``riskmodel/trees.py``); the same numbers.
* ``sklearn``  — ``CalibratedClassifierCV(XGBClassifier, cv=3)`` ``predict_proba`` on a
  one-row DataFrame (the pickled-pipeline approach).
* ``pyfunc``   — the same native model through MLflow's pyfunc ``predict`` (schema
  enforcement + DataFrame), i.e. what ``mlflow models serve`` runs per request.

Prints medians and ratios; the last line is one JSON object.

    python benchmarks/scoring.py [--n 20000] [--repeats 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.calibration import CalibratedClassifierCV

from data_schema import frame_to_features, frame_to_records, records_to_features
from riskmodel import ARTIFACT_DIR
from synthetic.generator import generate_cohort
from training.config import load_config
from training.fit import build_xgboost, fit_calibrated_booster
from training.registry.pyfunc import model_signature, to_pyfunc_frame


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(min(50, repeats)):
        fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="training patients")
    parser.add_argument("--repeats", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    cfg = load_config()
    cohort = generate_cohort(n=args.n, seed=args.seed)
    X, y = frame_to_features(cohort), cohort["ln_within_2y"].to_numpy(int)
    model, _ = fit_calibrated_booster(X, y, cfg.model, cfg.calibration, seed=args.seed)
    model.set_threads(1)

    patient = generate_cohort(n=50, seed=args.seed + 1).head(1)
    record = frame_to_records(patient)
    row_df = to_pyfunc_frame(patient)

    # The service path, including building the feature row from the record.
    native = median_ms(
        lambda: model.predict_proba(records_to_features(record)), args.repeats
    )
    booster_only = median_ms(
        lambda: model.booster.inplace_predict(
            records_to_features(record), predict_type="margin"
        ),
        args.repeats,
    )

    before = model.predict_proba(records_to_features(record))
    assert model.compile_trees()
    assert np.array_equal(model.predict_proba(records_to_features(record)), before)
    walked = median_ms(
        lambda: model.predict_proba(records_to_features(record)), args.repeats
    )

    feature_names = list(model.feature_names)
    base = build_xgboost(cfg.model.model_copy(update={"n_jobs": 1}), args.seed)
    sk = CalibratedClassifierCV(base, method="sigmoid", cv=3).fit(
        pd.DataFrame(X, columns=feature_names), y
    )
    row_features = pd.DataFrame(frame_to_features(patient), columns=feature_names)
    sklearn_ms = median_ms(lambda: sk.predict_proba(row_features), args.repeats)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = model.save(Path(tmp) / "m")
        root = Path(__file__).resolve().parents[1]
        mlflow.pyfunc.save_model(
            Path(tmp) / "pyfunc",
            python_model=str(root / "training" / "registry" / "pyfunc_model.py"),
            artifacts={ARTIFACT_DIR: str(model_dir)},
            code_paths=[str(root / "riskmodel"), str(root / "data_schema")],
            signature=model_signature(),
            pip_requirements=["mlflow"],
        )
        pyfunc = mlflow.pyfunc.load_model(str(Path(tmp) / "pyfunc"))
        pyfunc_ms = median_ms(
            lambda: pyfunc.predict(row_df), max(200, args.repeats // 5)
        )
        # Same numbers whichever way it is scored.
        assert np.allclose(
            pyfunc.predict(row_df), model.predict_proba(records_to_features(record))
        )

    print(f"xgboost {xgb.__version__}; {args.n:,} training patients; 1 thread")
    print(f"{'path':<40}{'median ms / patient':>22}")
    for name, ms in [
        ("booster.inplace_predict (margin only)", booster_only),
        ("native: record → row → booster → Platt", native),
        ("service: record → row → tree walk → Platt", walked),
        ("sklearn CalibratedClassifierCV(cv=3)", sklearn_ms),
        ("MLflow pyfunc predict (same model)", pyfunc_ms),
    ]:
        print(f"{name:<40}{ms:>22.3f}")
    print(f"native / tree walk: {native / walked:.1f}x")
    print(f"sklearn / native: {sklearn_ms / native:.1f}x")
    print(f"pyfunc / native:  {pyfunc_ms / native:.1f}x")
    print(
        json.dumps(
            {
                "native_ms": round(native, 4),
                "booster_ms": round(booster_only, 4),
                "tree_walk_ms": round(walked, 4),
                "native_over_tree_walk": round(native / walked, 2),
                "sklearn_calibrated_ms": round(sklearn_ms, 4),
                "pyfunc_ms": round(pyfunc_ms, 4),
                "sklearn_over_native": round(sklearn_ms / native, 2),
                "pyfunc_over_native": round(pyfunc_ms / native, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
