"""The screening service under load, against its own floor and the peer, in one run.

Real servers on 127.0.0.1, load from ``wrk`` (Debian package; keep-alive, one client
thread, sharing the 2 cores with the server, as a site's screening tool would):

* cold start — ``bentoml serve`` launched → ``/readyz`` 200;
* ``screen`` — one patient per request at concurrency 1, 8 and 32 (p50/p99, req/s);
* ``noop`` — the same service's endpoint that parses the same patient and does
  nothing else: the framework's floor;
* ``screen_batch`` — 1,000 patients per request, four clients (two per worker),
  sent as records and as columns (``batch_patients_per_s`` is the columns form);
* ``predict_risk`` vs ``predict_risk_batched`` (adaptive batching) — one patient per
  request at concurrency 8 and 32: where batching pays;
* ``cds_patient_view`` — a CDS Hooks ``patient-view`` call with a realistic prefetch
  (a synthetic chart as FHIR: ~60 resources, several results per lab over time)
  against ``screen`` of the record read from the same chart, at concurrency 8:
  p99 and server CPU per call, for charts the server has not seen (first view)
  and for charts opened again (``--only cds`` runs just these);
* ``mlflow models serve`` — the same registered model's pyfunc predict, one patient
  per request at concurrency 8: the peer a user would pick;
* in-process — record → risk → every criterion without HTTP: the model floor;
* server CPU per request — CPU time of the server's process tree over a scenario;
* RSS — peak resident memory of a one-worker server after load.

The model is trained on the default synthetic cohort in a temporary store unless
``--home`` points at an existing ``LNRISK_HOME`` with a champion. Prints a table
and ratios; the last line is one JSON object.

    python benchmarks/serving.py [--duration 8] [--home .lnrisk] [--only cds]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder heads sys.path, and the file's name would
# shadow the `serving` package it benchmarks.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
DAY = date(2026, 12, 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(
    cmd: list[str], env: dict, ready_path: str
) -> Iterator[tuple[str, float, int]]:
    """Start a server; yield (url, seconds to ready, pid of its process group)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [c.replace("{port}", str(port)) for c in cmd]
    start = time.perf_counter()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - a pipe nobody drains would block
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        while True:
            if proc.poll() is not None:
                log.seek(0)
                err = log.read().decode(errors="replace")
                raise SystemExit(f"{cmd[:4]} exited:\n{err[-2000:]}")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - start > 120:
                raise SystemExit(f"{cmd[:4]} not ready after 120 s")
            time.sleep(0.05)
        yield url, time.perf_counter() - start, proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def peak_rss_mb(pid: int) -> float:
    """Sum over the process tree of each process's peak resident set (VmHWM)."""
    total = 0
    for p in tree(pid):
        with contextlib.suppress(OSError, psutil.Error):
            status = Path(f"/proc/{p.pid}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
    return total / 1024


LUA = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, "%(path)s", nil, bodies[i])
end
"""


def wrk(url: str, path: str, bodies: Path, concurrency: int, seconds: float) -> dict:
    """Requests/s, p50/p99 latency (ms) and errors of one wrk run."""
    script = bodies.with_suffix("." + path.strip("/").replace("/", "_") + ".lua")
    script.write_text(LUA % {"bodies": bodies, "path": path})
    out = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "--latency",
         "--timeout", "30s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip

    def ms(label: str) -> float:
        value, unit = re.search(
            rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M
        ).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    # wrk prints these lines only when something went wrong
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: (.*)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket:
        errors += sum(int(n) for n in re.findall(r"\d+", socket.group(1)))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "errors": errors,
    }


def measured(pid: int, fn) -> tuple[dict, float]:
    """Run a load; return its result and the server's CPU ms per request."""
    before = cpu_seconds(pid)
    result = fn()
    cpu = cpu_seconds(pid) - before
    return result, cpu * 1e3 / max(result["requests"], 1)


def prepare_home(home: Path, env: dict) -> None:
    """Train (default profile) and import the champion unless one is there."""
    lnrisk = [sys.executable, "-m", "training"]
    print(f"store: {home} (training the default model if it has no champion)")
    subprocess.run([*lnrisk, "train", "--if-no-champion", "--no-progress"], env=env,
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    subprocess.run([*lnrisk, "import-model"], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


def write_bodies(folder: Path, n: int = 200) -> dict[str, Path]:
    """JSON request bodies, one per line: synthetic patients of the default DGP."""
    from data_schema import frame_to_records, model_features
    from synthetic.generator import generate_cohort

    cohort = generate_cohort(n=5000, seed=2026)
    records = frame_to_records(cohort)
    patients = [r.model_dump(mode="json", exclude_none=True) for r in records]
    kinds = ("single", "batch", "batch_columns", "mlflow", "risk")
    paths = {k: folder / f"{k}.jsonl" for k in kinds}
    with open(paths["risk"], "w") as f:
        for p in patients[:n]:
            f.write(json.dumps({"patients": [p]}) + "\n")
    with open(paths["single"], "w") as f:
        for p in patients[:n]:
            f.write(
                json.dumps({"patient": p, "screening_date": DAY.isoformat()}) + "\n"
            )
    with open(paths["batch"], "w") as f:
        for k in range(4):
            chunk = patients[k * 1000 : (k + 1) * 1000]
            f.write(json.dumps({"patients": chunk, "screening_date": DAY.isoformat()}))
            f.write("\n")
    with open(paths["batch_columns"], "w") as f:  # the same patients, as columns
        for k in range(4):
            chunk = patients[k * 1000 : (k + 1) * 1000]
            names = dict.fromkeys(name for p in chunk for name in p)
            columns = {name: [p.get(name) for p in chunk] for name in names}
            f.write(json.dumps({"columns": columns, "screening_date": DAY.isoformat()}))
            f.write("\n")
    columns = ["sex" if c == "male" else c for c in model_features()]
    with open(paths["mlflow"], "w") as f:
        for p in patients[:n]:
            row = {c: p.get(c) for c in columns}
            row = {c: (float(v) if isinstance(v, bool) else v) for c, v in row.items()}
            f.write(json.dumps({"dataframe_records": [row]}) + "\n")
    return paths


def write_cds_bodies(
    folder: Path, n: int, seed: int, name: str
) -> tuple[Path, Path, float]:
    """patient-view calls and /screen bodies for the same ``n`` synthetic charts (as
    of today: patient-view screens today); returns the mean resources per chart."""
    from data_schema import PatientRecord
    from data_schema.fhir import read_patient
    from serving.cds_hooks import prefetch_for
    from synthetic.fhir import patient_bundles
    from synthetic.generator import generate_cohort

    today = date.today()
    hooks, screens = folder / f"{name}_hook.jsonl", folder / f"{name}_screen.jsonl"
    sizes = []
    bundles = patient_bundles(generate_cohort(n=n, seed=seed), today, seed=seed)
    with open(hooks, "w") as h, open(screens, "w") as s:
        for bundle in bundles:
            resources = [e["resource"] for e in bundle["entry"]]
            sizes.append(len(resources))
            record = PatientRecord.model_validate(
                read_patient(resources, today, validate=False).record
            )
            patient = record.model_dump(mode="json", exclude_none=True)
            s.write(json.dumps({"patient": patient, "screening_date": str(today)}))
            call = {
                "hook": "patient-view",
                "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
                "context": {"userId": "Practitioner/1", "patientId": record.patient_id},
                "prefetch": prefetch_for(resources),
            }
            h.write(json.dumps(call) + "\n")
            s.write("\n")
    return hooks, screens, statistics.mean(sizes)


def cds_scenarios(url: str, pid: int, folder: Path, d: float) -> dict[str, dict]:
    """patient-view and screen on the same charts, concurrency 8, one after the
    other on one server: results with ``cpu_ms`` (server CPU per call) added.

    Two kinds of call: *first view* — every call a chart the server has not seen
    (enough charts that none repeats within the run), so nothing it validated
    before helps; *re-opened* — the same 50 charts again and again, as when
    clinicians open charts the EHR has sent before (the service reuses the FHIR
    validation of resources it has seen, unchanged)."""
    service = httpx.get(f"{url}/cds-services", timeout=30).json()["services"][0]
    path = f"/cds-services/{service['id']}"
    reopened = write_cds_bodies(folder, 50, 2027, "reopened")
    first = write_cds_bodies(folder, max(1000, int(200 * d)), 2028, "first")
    check = json.loads(reopened[0].read_text().splitlines()[0])
    answer = httpx.post(url + path, json=check, timeout=60)
    assert answer.status_code == 200 and answer.json()["cards"], answer.text
    out = {}
    # re-opened charts first: their warm-up also warms each worker's FHIR path
    for kind, (hooks, screens, resources) in (("reopened", reopened), ("first", first)):
        for name, route, bodies in (
            (f"cds_screen_{kind}_c8", "/screen", screens),
            (f"cds_patient_view_{kind}_c8", path, hooks),
        ):
            if kind == "reopened" or route == "/screen":
                wrk(url, route, bodies, 8, 2)  # warm-up (first views stay unseen)
            out[name], cpu_ms = measured(
                pid, lambda r=route, b=bodies: wrk(url, r, b, 8, d)
            )
            out[name]["cpu_ms"] = cpu_ms
        out[f"cds_patient_view_{kind}_c8"]["resources_per_call"] = resources
    charts = len(first[0].read_text().splitlines())
    calls = out["cds_patient_view_first_c8"]["requests"]
    assert calls <= charts, f"{calls} first-view calls but only {charts} charts"
    return out


def cds_summary(c: dict[str, dict]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for kind in ("first", "reopened"):
        view, plain = c[f"cds_patient_view_{kind}_c8"], c[f"cds_screen_{kind}_c8"]
        summary |= {
            f"cds_{kind}_rps_c8": round(view["rps"], 1),
            f"cds_{kind}_p50_ms_c8": round(view["p50_ms"], 1),
            f"cds_{kind}_p99_ms_c8": round(view["p99_ms"], 1),
            f"cds_{kind}_cpu_ms_per_call": round(view["cpu_ms"], 2),
            f"cds_{kind}_screen_cpu_ms_per_call": round(plain["cpu_ms"], 2),
            f"cds_{kind}_cpu_ratio": round(view["cpu_ms"] / plain["cpu_ms"], 2),
        }
    summary["cds_resources_per_call"] = round(
        c["cds_patient_view_first_c8"]["resources_per_call"], 1
    )
    summary["cds_errors"] = sum(r["errors"] for r in c.values())
    return summary


def print_cds(c: dict[str, dict]) -> None:
    print(f"{'':<32}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>12}{'errors':>8}")
    for name, res in c.items():
        print(f"{name:<32}{res['rps']:>9.1f}{res['p50_ms']:>9.1f}{res['p99_ms']:>9.1f}"
              f"{res['cpu_ms']:>12.2f}{res['errors']:>8}")  # fmt: skip
    summary = cds_summary(c)
    for kind in ("first", "reopened"):
        ratio = summary[f"cds_{kind}_cpu_ratio"]
        p99 = summary[f"cds_{kind}_p99_ms_c8"]
        print(
            f"{kind:<9} patient-view CPU / screen CPU (target ≤ 3) {ratio:.2f}; "
            f"p99 at c8 (target well under 500 ms) {p99:.0f} ms"
        )


def in_process_ms(home_env: dict, bodies: Path) -> float:
    """Median ms of record → risk and three-valued gate → every criterion."""
    os.environ.update(home_env)
    import bentoml
    import numpy as np

    from data_schema import PatientRecord, model_features
    from eligibility import load_criteria
    from eligibility.screen import screen_patients
    from eligibility.table import Table
    from riskmodel import LNRiskModel

    model = LNRiskModel.load(
        bentoml.models.get("ln-risk:latest").path, expected_features=model_features()
    )
    model.set_threads(1)
    model.compile_trees()  # as the service does
    criteria = load_criteria()
    lines = bodies.read_text().splitlines()
    records = [PatientRecord(**json.loads(line)["patient"]) for line in lines]
    times = []
    for rec in records * 5:
        t = time.perf_counter()
        screen_patients(model, Table.from_record(rec, DAY), criteria).decision(0)
        times.append(time.perf_counter() - t)
    assert np.isfinite(times).all()
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per load")
    parser.add_argument("--home", type=Path, help="existing LNRISK_HOME to reuse")
    parser.add_argument(
        "--only", choices=["all", "cds"], default="all",
        help="cds: only patient-view against screen on the same charts",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")

    tmp = Path(tempfile.mkdtemp(prefix="lnrisk-bench-"))
    home = (args.home or tmp / "home").resolve()
    env = {
        **os.environ,
        "LNRISK_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
        "BENTOML_DO_NOT_TRACK": "True",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "LNRISK_AUDIT_LOG": str(tmp / "audit.jsonl"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("LNRISK_API_KEY", None)
    prepare_home(home, env)
    bento = [sys.executable, "-m", "bentoml", "serve", "serving.service:LNRiskService",
             "--host", "127.0.0.1", "--port", "{port}"]  # fmt: skip
    d = args.duration
    r: dict[str, dict] = {}
    cpu: dict[str, float] = {}

    workers = int(env.get("LNRISK_WORKERS", "2"))
    if args.only == "cds":
        with server(bento, env, "/readyz") as (url, _, pid):
            cds = cds_scenarios(url, pid, tmp, d)
        print_cds(cds)
        print(json.dumps(cds_summary(cds)))
        shutil.rmtree(tmp, ignore_errors=True)
        return
    bodies = write_bodies(tmp)
    with server(bento, env, "/readyz") as (url, cold, pid):
        print(f"cold start ({workers} workers) {cold:.2f} s")
        cds = cds_scenarios(url, pid, tmp, d)
        wrk(url, "/screen", bodies["single"], 8, 2)  # warm-up
        wrk(url, "/noop", bodies["single"], 8, 2)
        for c in (1, 8, 32):
            r[f"screen_c{c}"], cpu[f"screen_c{c}"] = measured(
                pid, lambda c=c: wrk(url, "/screen", bodies["single"], c, d)
            )
        r["noop_c8"], cpu["noop_c8"] = measured(
            pid, lambda: wrk(url, "/noop", bodies["single"], 8, d)
        )
        for shape in ("batch", "batch_columns"):  # records, then columns
            wrk(url, "/screen_batch", bodies[shape], 4, 2)
            r[f"{shape}_c4"], cpu[f"{shape}_c4"] = measured(
                pid, lambda s=shape: wrk(url, "/screen_batch", bodies[s], 4, d)
            )
        for path in ("/predict_risk", "/predict_risk_batched"):
            wrk(url, path, bodies["risk"], 8, 2)
            for c in (8, 32):
                name = f"{path.strip('/')}_c{c}"
                r[name], cpu[name] = measured(
                    pid, lambda c=c, path=path: wrk(url, path, bodies["risk"], c, d)
                )
    env1 = {**env, "LNRISK_WORKERS": "1"}
    with server(bento, env1, "/readyz") as (url, cold1, pid):
        wrk(url, "/screen", bodies["single"], 8, d)
        wrk(url, "/screen_batch", bodies["batch"], 1, 2)
        wrk(url, "/screen_batch", bodies["batch_columns"], 1, 2)
        rss = peak_rss_mb(pid)
    mlflow_cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m",
                  "models:/ln-risk@champion", "--env-manager", "local", "-h",
                  "127.0.0.1", "-p", "{port}", "-w", "1"]  # fmt: skip
    with server(mlflow_cmd, env, "/ping") as (url, _, pid):
        first = json.loads(bodies["mlflow"].read_text().splitlines()[0])
        check = httpx.post(f"{url}/invocations", json=first, timeout=30)
        assert check.status_code == 200, check.text
        wrk(url, "/invocations", bodies["mlflow"], 8, 2)
        r["mlflow_c8"], cpu["mlflow_c8"] = measured(
            pid, lambda: wrk(url, "/invocations", bodies["mlflow"], 8, d)
        )
    floor_ms = in_process_ms(
        {k: env[k] for k in ("LNRISK_HOME", "BENTOML_HOME")}, bodies["single"]
    )

    print(f"\n{'scenario':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'CPU ms/req':>12}{'errors':>8}")  # fmt: skip
    for name, res in r.items():
        print(f"{name:<26}{res['rps']:>9.1f}{res['p50_ms']:>9.1f}{res['p99_ms']:>9.1f}"
              f"{cpu[name]:>12.2f}{res['errors']:>8}")  # fmt: skip
    print_cds(cds)
    if any(res["errors"] for res in r.values()):
        print("\nWARNING: requests failed (errors column): those rows are not valid")
    batch_pps = r["batch_columns_c4"]["rps"] * 1000
    batch_records_pps = r["batch_c4"]["rps"] * 1000
    ratios = {
        "screen_c8 / mlflow_c8 (target ≥ 4)": r["screen_c8"]["rps"]
        / r["mlflow_c8"]["rps"],
        "screen_c8 / noop_c8 (target ≥ 0.8)": r["screen_c8"]["rps"]
        / r["noop_c8"]["rps"],
        "screen CPU ms/req, c8 (target ≤ 3)": cpu["screen_c8"],
        "screen_batch patients/s, columns (target ≥ 20,000)": batch_pps,
        "screen_batch patients/s, records (target ≥ 20,000)": batch_records_pps,
        f"cold start s, {workers} workers (target ≤ 6)": cold,
        "peak RSS MB, 1 worker (target ≤ 600)": rss,
        "in-process screen ms (model + rules floor)": floor_ms,
        "screen p50 c1 / in-process": r["screen_c1"]["p50_ms"] / floor_ms,
        "predict_risk batched / plain, c32": r["predict_risk_batched_c32"]["rps"]
        / r["predict_risk_c32"]["rps"],
    }
    print()
    for name, value in ratios.items():
        print(f"{name:<48}{value:>10.2f}")
    print(
        json.dumps(
            {
                "cold_start_s": round(cold, 2),
                "cold_start_1_worker_s": round(cold1, 2),
                "workers": workers,
                "screen_p50_ms_c1": round(r["screen_c1"]["p50_ms"], 2),
                "screen_p99_ms_c1": round(r["screen_c1"]["p99_ms"], 2),
                "screen_rps_c1": round(r["screen_c1"]["rps"], 1),
                "screen_rps_c8": round(r["screen_c8"]["rps"], 1),
                "screen_p99_ms_c8": round(r["screen_c8"]["p99_ms"], 2),
                "screen_rps_c32": round(r["screen_c32"]["rps"], 1),
                "screen_p99_ms_c32": round(r["screen_c32"]["p99_ms"], 2),
                "noop_rps_c8": round(r["noop_c8"]["rps"], 1),
                "mlflow_rps_c8": round(r["mlflow_c8"]["rps"], 1),
                "screen_cpu_ms_per_req": round(cpu["screen_c8"], 3),
                "noop_cpu_ms_per_req": round(cpu["noop_c8"], 3),
                "mlflow_cpu_ms_per_req": round(cpu["mlflow_c8"], 3),
                "batch_patients_per_s": round(batch_pps),
                "batch_records_patients_per_s": round(batch_records_pps),
                "batch_cpu_ms_per_1000": round(cpu["batch_columns_c4"], 1),
                "batch_records_cpu_ms_per_1000": round(cpu["batch_c4"], 1),
                "predict_risk_rps_c8": round(r["predict_risk_c8"]["rps"], 1),
                "predict_risk_rps_c32": round(r["predict_risk_c32"]["rps"], 1),
                "predict_risk_batched_rps_c8": round(
                    r["predict_risk_batched_c8"]["rps"], 1
                ),
                "predict_risk_batched_rps_c32": round(
                    r["predict_risk_batched_c32"]["rps"], 1
                ),
                "in_process_screen_ms": round(floor_ms, 3),
                "rss_mb": round(rss, 1),
                **cds_summary(cds),
                "errors": sum(res["errors"] for res in r.values()),
            }
        )
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
