"""Lookup API throughput vs a bare FastAPI endpoint, on PostgreSQL, wrk on loopback.

    .venv/bin/python bench/lookup_bench.py --rows 10000000 --duration 30

Loads a snapshot of N rows (keys K00000000..) into a fresh PostgreSQL store with the publish path,
starts the lookup API and the bare constant endpoints of bench/bare_app.py (FastAPI, the issue's
baseline, and plain Starlette, the floor under the lookup's Starlette route) with the same uvicorn
settings, and runs `wrk -c32 -d<duration>s` against each; every request asks for a random key of
the whole snapshot (bench/lookup_keys.lua), so no cache stands in for the store. Writes
bench/results/lookup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parents[1]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
UVICORN = ["--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
           "--log-level", "warning"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_snapshot(url: str, rows: int) -> int:
    """A published snapshot of `rows` rows with keys K00000000.. (random scores), via the publish path."""
    from nightshift import predstore, store

    store.init_store(url)
    engine = store.get_engine(url)
    sid = predstore.begin_snapshot(engine, dataset="flights", run_id="bench", model_name="nightshift-flights",
                                   model_version="1", model_run_id=None, data_start=date(2013, 1, 1),
                                   data_end=date(2013, 12, 31))
    rng = np.random.default_rng(0)

    def batches(size: int = 500_000) -> Any:
        for start in range(0, rows, size):
            n = min(size, rows - start)
            ids = pa.array(np.arange(start, start + n))
            keys = pc.binary_join_element_wise("K", pc.utf8_lpad(pc.cast(ids, pa.string()), 8, "0"), "")
            scores = rng.random(n, dtype=np.float32)
            yield pa.record_batch([keys, pa.array(scores), pa.array(scores >= 0.5)],
                                  names=["entity_key", "score", "label"])

    predstore.write_rows(engine, sid, batches())
    predstore.publish(engine, sid, actor="bench", reason="lookup bench", retention=1)
    return sid


def database(db: str, reuse: bool) -> bool:
    """Database `db` on the bench server: kept when `reuse` and it exists (True), else created afresh (False)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": db}).first()
        if not (reuse and exists):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{db}"'))
    admin.dispose()
    return bool(reuse and exists)


def serve(app: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", app, "--port", str(port), "--workers", str(workers),
                             *UVICORN], env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/predictions/K00000000", timeout=2).read()
            return proc
        except Exception:  # noqa: BLE001  (not up yet)
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{app} did not answer on port {port}")


def wrk(port: int, duration: int, connections: int, rows: int, timeout_s: int = 2, script: str = "lookup_keys.lua",
        env: dict[str, str] | None = None) -> dict[str, Any]:
    """`wrk -t2` with bench/`script` (random keys of `rows`, extra variables in `env`): its RESULT line's figures."""
    out = subprocess.run(["wrk", f"-c{connections}", "-t2", f"-d{duration}s", f"--timeout={timeout_s}s", "--latency",
                          "-s", str(ROOT / "bench" / script), f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, env={**os.environ, "LOOKUP_ROWS": str(rows), **(env or {})},
                         check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    fields = dict(kv.split("=") for kv in line.split()[1:])
    seconds = int(fields["duration_us"]) / 1e6
    return {"requests": int(fields["requests"]), "requests_per_s": round(int(fields["requests"]) / seconds),
            "p50_ms": int(fields["p50_us"]) / 1000, "p99_ms": int(fields["p99_us"]) / 1000,
            "non_2xx": int(fields["non2xx"]), "socket_errors": int(fields["socket_errors"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn workers, the same for every app")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the servers in turn; ratios: median over rounds")
    ap.add_argument("--reuse", action="store_true", help="reuse the bench database if it holds the rows")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lookup.json")
    args = ap.parse_args()
    db = f"nsbench_lookup_{args.rows}"
    url = f"{PG}/{db}"
    if not database(db, args.reuse):
        log(f"loading a {args.rows:,}-row snapshot into {db}")
        t0 = time.perf_counter()
        load_snapshot(url, args.rows)
        log(f"loaded in {time.perf_counter() - t0:.1f}s")
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NIGHTSHIFT_HOME": home, "NIGHTSHIFT_STORE_URL": url, "NIGHTSHIFT_DATASET": "flights"}
        apps = {"bare": ("bench.bare_app:app", 8791), "lookup": ("serving.lookup:app", 8792),
                "bare_starlette": ("bench.bare_app:starlette_app", 8793)}
        procs = {name: serve(app, port, env, args.workers) for name, (app, port) in apps.items()}
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in apps}
        try:
            for _, port in apps.values():
                wrk(port, 3, args.connections, args.rows)  # warm-up
            # Alternating rounds: this VM's speed drifts, so each ratio compares neighbours in time.
            for r in range(args.rounds):
                for name, (_, port) in apps.items():
                    log(f"round {r + 1}: wrk -c{args.connections} -d{args.duration}s against {name}")
                    runs[name].append(wrk(port, args.duration, args.connections, args.rows))
                    log(f"{name}: {runs[name][-1]}")
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=30)
    results = {name: max(rs, key=lambda x: x["requests_per_s"]) for name, rs in runs.items()}
    def ratios(base: str) -> list[float]:
        return [lk["requests_per_s"] / b["requests_per_s"] for b, lk in zip(runs[base], runs["lookup"], strict=True)]

    report = {
        "lookup_ratio_vs_bare": round(float(np.median(ratios("bare"))), 3),
        "ratio_per_round": [round(x, 3) for x in ratios("bare")],
        # The lookup route is a plain Starlette route (serving/http.py): how close it comes to that floor.
        "lookup_ratio_vs_bare_starlette": round(float(np.median(ratios("bare_starlette"))), 3),
        "lookup_p99_ms": max(x["p99_ms"] for x in runs["lookup"]),
        "lookup_non_2xx": sum(x["non_2xx"] + x["socket_errors"] for x in runs["lookup"]),
        "best_round": results, "rounds": runs, "rows": args.rows, "store": "postgresql",
        "load": f"wrk -c{args.connections} -t2 -d{args.duration}s, a random key of the whole snapshot per request",
        "server": f"uvicorn --workers {args.workers} {' '.join(UVICORN)}",
        "command": "python " + " ".join([f"bench/{Path(__file__).name}", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "date": date.today().isoformat()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(json.dumps({k: report[k] for k in ("lookup_ratio_vs_bare", "ratio_per_round", "lookup_ratio_vs_bare_starlette",
                                          "lookup_p99_ms", "lookup_non_2xx")}))


if __name__ == "__main__":
    main()
