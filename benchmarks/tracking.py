"""Tracking overhead of the team server, and how it takes several writers at once.

1. Wall time of one ``lnrisk train`` (the default profile unless ``--profile``) with
   the embedded SQLite store vs the team server (``mlflow server`` on PostgreSQL,
   proxied artifacts, basic auth, started here on a free port with throwaway
   databases). The runs alternate (SQLite, server, SQLite, server, …) so that load
   from other processes on the machine falls on both; ``ratio`` = median server
   time / median SQLite time (target ≤ 1.15).
2. Runs completed per minute with 1, 2 and 4 concurrent training processes against
   the team server, each process one run of the writers' profile (``--writers-profile``:
   ``small`` by default — 4,000 patients, 2 search iterations — since the runs are
   CPU-bound and the number that matters is whether the server serialises them).

    python benchmarks/tracking.py [--profile default|small] [--repeats 1]
        [--writers-profile small|default] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The databases are dropped at the end. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml

PROJECT = Path(__file__).resolve().parents[1]


def small_profile(path: Path) -> Path:
    """The test suite's fast profile (small cohort, fewer trees and folds)."""
    from training.config import load_config

    base = load_config()
    cfg = base.model_copy(
        update={
            "registration": base.registration.model_copy(
                update={"cal_slope_min": 0.6, "cal_slope_max": 1.6,
                        "max_abs_citl": 0.04, "max_ici": 0.04,
                        "min_auroc_ci_low": 0.6, "min_gate_events": 0}
            ),
            "cohort": base.cohort.model_copy(update={"n": 4000, "seed": 11}),
            "model": base.model.model_copy(update={"n_estimators": 120}),
            "search": base.search.model_copy(
                update={"n_iter": 2, "cv_folds": 2, "n_estimators": (80, 120)}
            ),
            "calibration": base.calibration.model_copy(update={"cv_folds": 3}),
        }
    )  # fmt: skip
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(postgres: str, root: Path, password: str):
    """The team server on throwaway databases; (process, settings, names)."""
    from training.registry.team_server import (
        TeamServer,
        ensure_database,
        server_command,
        server_env,
    )  # fmt: skip

    name = f"lnrisk_bench_{secrets.token_hex(4)}"
    parts = urlsplit(postgres)
    url = urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{name}"))
    settings = TeamServer(
        db_url=url, auth_db_url=url + "_auth", artifacts=str(root / "artifacts"),
        port=free_port(), workers=4,
    )  # fmt: skip
    ensure_database(settings.db_url)
    ensure_database(settings.auth_db_url)
    env = server_env(settings, root)
    env["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
    env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secrets.token_hex(16)
    proc = subprocess.Popen(
        server_command(settings), cwd=PROJECT, env=env, start_new_session=True,
        stdout=(root / "server.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(settings.url + "/health", timeout=2).status_code == 200:
                return proc, settings, (name, name + "_auth")
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(
        f"team server not up: {(root / 'server.log').read_text()[-2000:]}"
    )


def drop(postgres: str, names: tuple[str, ...]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(postgres, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip


def train(env: dict[str, str], profile: Path | None) -> subprocess.Popen:
    home = Path(tempfile.mkdtemp(prefix="lnrisk-bench-"))
    args = [sys.executable, "-m", "training", "train", "--no-progress"]
    if profile is not None:
        args += ["--config", str(profile)]
    return subprocess.Popen(
        args, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**env, "LNRISK_HOME": str(home), "BENTOML_HOME": str(home / "bentoml")},
    )  # fmt: skip


def wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({proc.returncode}): {err[-2000:]}")


def timed_runs(envs: dict[str, dict[str, str]], profile, repeats: int) -> dict:
    """Alternating single runs per store; median seconds of each."""
    times: dict[str, list[float]] = {k: [] for k in envs}
    for i in range(repeats):
        for store, env in envs.items():
            started = time.perf_counter()
            wait(train(env, profile))
            times[store].append(time.perf_counter() - started)
            print(f"  run {i + 1} {store}: {times[store][-1]:.1f} s", flush=True)
    return {k: statistics.median(v) for k, v in times.items()}


def throughput(env: dict[str, str], profile: Path, writers: int) -> float:
    started = time.perf_counter()
    procs = [train(env, profile) for _ in range(writers)]
    for proc in procs:
        wait(proc)
    minutes = (time.perf_counter() - started) / 60
    return writers / minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("default", "small"), default="default")
    parser.add_argument("--writers-profile", choices=("default", "small"),
                        default="small")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "LNRISK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()  # fmt: skip

    root = Path(tempfile.mkdtemp(prefix="lnrisk-bench-server-"))
    small = small_profile(root / "small.yaml")
    profile = small if args.profile == "small" else None
    writers_profile = small if args.writers_profile == "small" else None
    password = "bench-" + secrets.token_hex(12)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_REGISTRY"))}  # fmt: skip
    proc, settings, names = start_server(args.postgres, root, password)
    try:
        server_env = {**base, "MLFLOW_TRACKING_URI": settings.url,
                      "MLFLOW_TRACKING_USERNAME": "admin",
                      "MLFLOW_TRACKING_PASSWORD": password}  # fmt: skip
        sqlite_env = {**base}  # each run: its own SQLite under its own LNRISK_HOME
        print(f"one training run ({args.profile} profile), SQLite vs team server "
              f"{settings.url}:")  # fmt: skip
        medians = timed_runs(
            {"sqlite": sqlite_env, "server": server_env}, profile, args.repeats
        )
        rates = {}
        for writers in (1, 2, 4):
            rates[writers] = throughput(server_env, writers_profile or small, writers)
            print(f"  {writers} concurrent writers: {rates[writers]:.2f} runs/min")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        drop(args.postgres, names)
    ratio = medians["server"] / medians["sqlite"]
    print(f"SQLite {medians['sqlite']:.1f} s, team server {medians['server']:.1f} s: "
          f"ratio {ratio:.3f} (target ≤ 1.15)")  # fmt: skip
    print(json.dumps({
        "profile": args.profile, "repeats": args.repeats,
        "sqlite_seconds": round(medians["sqlite"], 2),
        "server_seconds": round(medians["server"], 2),
        "server_over_sqlite": round(ratio, 4), "target_ratio": 1.15,
        "writers_profile": args.writers_profile,
        **{f"runs_per_min_{w}_writers": round(r, 3) for w, r in rates.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
