"""The lookup API vs the Feast feature server, on the same PostgreSQL, wrk on loopback (issue 21).

    .venv/bin/python bench/feast_bench.py --rows 1000000 --duration 20 --rounds 3

Loads a snapshot of N rows (keys K00000000.., the loader of bench/lookup_bench.py) into a fresh
PostgreSQL store through the publish path and serves it with the lookup API (`serving.lookup:app`,
uvicorn, the settings of bench/lookup_bench.py). The same rows (entity_key, score, label), read back
from that store, go to a Parquet file, Feast's FileSource, and are materialised into Feast's
PostgreSQL online store, a database of its own on the same server, served by `feast serve`.
Before measuring, both must answer the same score and label for a few keys.

Feast (FEAST_VERSION, pinned) lives in its own virtual environment, .peers/feast (created when
missing), so its pins never touch the project's constraints. Its set-up follows Feast's docs:
  - docs.feast.dev/reference/online-stores/postgres: `type: postgres` online store;
  - docs.feast.dev/how-to-guides/online-server-performance-tuning: its PostgreSQL tuning example
    (`conn_type: pool`, `min_conn: 4`, `max_conn: 20`, `keepalives_idle: 30`) and its registry
    cache row "Production (low-latency)" (`cache_mode: thread`, `cache_ttl_seconds: 300`,
    `feast serve --registry_ttl_sec 300`);
  - docs.feast.dev/reference/feature-servers/python-feature-server: `feast materialize-incremental`
    then `feast serve`, and POST /get-online-features with `features` and `entities`;
  - the quickstart's layout (docs.feast.dev/getting-started/quickstart): a file registry
    (data/registry.db), `provider: local`, a FileSource over a Parquet file.
Server settings, the same on both sides where both have them: one worker process, no access log,
log level warning, loopback; Feast's gunicorn worker recycling (`--max-requests`, 1000 by default)
is turned off (0), as the lookup's uvicorn never recycles; the rest are Feast's defaults.

Load: `wrk -t2 -c32 -d<duration>s --latency`, every request for random keys of the whole snapshot:
single-key requests (GET /v1/predictions/{key}, bench/lookup_keys.lua; Feast: one entity,
bench/feast_keys.lua) and batches of --batch-keys keys (POST /v1/predictions/batch,
bench/lookup_batch_keys.lua; Feast: a multi-entity request). The servers take turns within each
round (this VM's speed drifts); each ratio is the median over rounds of ours / Feast's requests/s,
and the figures beside it are those of the round that gave it. Writes the key `lookup_vs_feast`
of bench/results/peers.json (its other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy

from bench.lookup_bench import PG, UVICORN, database, load_snapshot, log, serve, wrk  # noqa: E402

FEAST_VERSION = "0.67.0"
FEAST_PIP = [f"feast[postgres]=={FEAST_VERSION}", "pandas<3"]
FEAST_VENV = ROOT / ".peers" / "feast"
FEAST_BIN = FEAST_VENV / "bin" / "feast"
FEAST_PROJECT, VIEW = "nsbench", "predictions"
OURS_PORT, FEAST_PORT = 8796, 6567
FEAST_SERVE = ["--workers", "1", "--no-access-log", "--registry_ttl_sec", "300", "--max-requests", "0"]

FEATURE_STORE_YAML = """\
project: {project}
provider: local
registry:
  registry_type: file
  path: data/registry.db
  cache_mode: thread
  cache_ttl_seconds: 300
online_store:
  type: postgres
  host: 127.0.0.1
  port: 5432
  database: {database}
  db_schema: public
  user: postgres
  password: ""
  sslmode: disable
  conn_type: pool
  min_conn: 4
  max_conn: 20
  keepalives_idle: 30
offline_store:
  type: file
entity_key_serialization_version: 3
auth:
  type: no_auth
"""

DEFINITIONS = f'''\
"""The bench snapshot as a Feast feature view (written by bench/feast_bench.py)."""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32

entity_key = Entity(name="entity_key", join_keys=["entity_key"], value_type=ValueType.STRING)
source = FileSource(name="{VIEW}_source", path="data/{VIEW}.parquet", timestamp_field="event_timestamp")
{VIEW} = FeatureView(name="{VIEW}", entities=[entity_key], ttl=timedelta(0), online=True, source=source,
                     schema=[Field(name="score", dtype=Float32), Field(name="label", dtype=Bool)])
'''


class BenchError(RuntimeError):
    """What went wrong, told to whoever ran the bench (exit status 1)."""


def run(cmd: list[str], what: str, **kw: Any) -> str:
    """Runs `cmd`; its stdout, or BenchError with the tail of its output."""
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        raise BenchError(f"{what} failed (exit {out.returncode}): {' '.join(cmd)}\n{tail}")
    return out.stdout


def feast_venv() -> str:
    """The pinned Feast in .peers/feast (created, or reinstalled at the pin, when needed); its version."""
    py = FEAST_VENV / "bin" / "python"
    probe = [str(py), "-c", "import importlib.metadata as m; print(m.version('feast'))"]
    if py.exists() and subprocess.run(probe, capture_output=True, text=True).stdout.strip() == FEAST_VERSION:
        return FEAST_VERSION
    log(f"installing feast {FEAST_VERSION} into {FEAST_VENV.relative_to(ROOT)}")
    if not py.exists():
        run([sys.executable, "-m", "venv", str(FEAST_VENV)], "creating the Feast venv")
    run([str(py), "-m", "pip", "install", "--quiet", *FEAST_PIP], "installing Feast")
    version = run(probe, "probing Feast").strip()
    if version != FEAST_VERSION:
        raise BenchError(f"{FEAST_VENV} holds feast {version}, not {FEAST_VERSION}")
    return version


def feast(repo: Path, *args: str) -> str:
    """`feast -c <repo> <args>` from the Feast venv."""
    return run([str(FEAST_BIN), "--log-level", "WARNING", "-c", str(repo), *args], f"feast {args[0]}")


def export_parquet(url: str, snapshot_id: int, path: Path, stamp: datetime) -> int:
    """The snapshot's rows (entity_key, score, label) as Parquet with Feast's `event_timestamp`; the row count."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine

    engine = create_engine(url)
    buf = io.BytesIO()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.copy_expert(f"COPY (SELECT entity_key, score, label FROM predictions WHERE snapshot_id = {int(snapshot_id)}"
                        " ORDER BY entity_key) TO STDOUT WITH (FORMAT csv)", buf)
    finally:
        raw.close()
        engine.dispose()
    buf.seek(0)
    table = pacsv.read_csv(buf, read_options=pacsv.ReadOptions(column_names=["entity_key", "score", "label"]),
                           convert_options=pacsv.ConvertOptions(
                               column_types={"entity_key": pa.string(), "score": pa.float32(), "label": pa.bool_()},
                               true_values=["t"], false_values=["f"]))
    table = table.append_column("event_timestamp", pa.array([stamp] * len(table), pa.timestamp("us", tz="UTC")))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return len(table)


def feast_repo(repo: Path, db: str, rows: int, url: str) -> None:
    """A Feast repository over the rows of the store's served snapshot: apply, then materialise into database `db`."""
    from sqlalchemy import create_engine, text

    from nightshift import predstore

    engine = create_engine(url)
    current = predstore.current_snapshot(engine, dataset="flights")
    engine.dispose()
    if current is None:
        raise BenchError(f"no snapshot is served in {url}")
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(project=FEAST_PROJECT, database=db))
    (repo / "features.py").write_text(DEFINITIONS)
    stamp = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    n = export_parquet(url, current["id"], repo / "data" / f"{VIEW}.parquet", stamp)
    if n != rows:
        raise BenchError(f"the store's snapshot holds {n} rows, not {rows}")
    log("feast apply")
    feast(repo, "apply")
    log("feast materialize-incremental")
    t0 = time.perf_counter()
    feast(repo, "materialize-incremental", datetime.now(UTC).replace(microsecond=0).isoformat())
    log(f"materialised in {time.perf_counter() - t0:.1f}s")
    online = create_engine(f"{PG}/{db}")
    with online.connect() as conn:  # the online store keeps a row per entity and feature
        held = conn.execute(text(f'SELECT count(*) FROM "{FEAST_PROJECT}_{VIEW}"')).scalar_one()
    online.dispose()
    if held != 2 * rows:
        raise BenchError(f"Feast's online store holds {held} feature rows, not {2 * rows}")


def port_free(port: int) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise BenchError(f"port {port} is taken: another server is listening there")


def post(port: int, path: str, body: dict[str, Any], timeout: float = 5) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def feast_rows(port: int, keys: list[str]) -> dict[str, tuple[float, bool]]:
    """Feast's (score, label) of `keys`, from one multi-entity request; BenchError when a key lacks a value."""
    out = post(port, "/get-online-features", {"features": [f"{VIEW}:score", f"{VIEW}:label"],
                                              "entities": {"entity_key": keys}})
    names = out["metadata"]["feature_names"]
    cols = {name: res for name, res in zip(names, out["results"], strict=True)}  # one result per feature
    found = {}
    for i, key in enumerate(keys):
        present = all(cols[f]["statuses"][i] == "PRESENT" for f in ("score", "label"))
        if cols["entity_key"]["values"][i] != key or not present:
            raise BenchError(f"Feast has no value for {key}: {json.dumps(out)[:500]}")
        found[key] = (cols["score"]["values"][i], cols["label"]["values"][i])
    return found


def serve_feast(repo: Path, port: int) -> subprocess.Popen[bytes]:
    """`feast serve` on loopback (its own process group); returned once it answers a lookup."""
    proc = subprocess.Popen([str(FEAST_BIN), "--log-level", "WARNING", "-c", str(repo), "serve", "--host", "127.0.0.1",
                             "--port", str(port), *FEAST_SERVE], start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"feast serve exited with status {proc.returncode}")
        try:
            feast_rows(port, ["K00000000"])
            return proc
        except (OSError, ValueError):  # not up yet
            time.sleep(0.5)
    stop(proc)
    raise BenchError(f"feast serve did not answer on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Ends a server and, when it leads its own process group (feast serve: gunicorn and its worker), the group."""
    if proc.poll() is not None:
        return
    own_group = os.getpgid(proc.pid) == proc.pid
    signal_to = (lambda s: os.killpg(proc.pid, s)) if own_group else proc.send_signal
    signal_to(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        signal_to(signal.SIGKILL)
        proc.wait(timeout=10)


def same_answers(rows: int, ours_port: int, feast_port: int) -> None:
    """Both servers answer the same score and label for the first, the last and a few random keys."""
    keys = [f"K{i:08d}" for i in [0, rows - 1, *random.Random(1).sample(range(rows), 8)]]
    theirs = feast_rows(feast_port, keys)
    for key in keys:
        with urllib.request.urlopen(f"http://127.0.0.1:{ours_port}/v1/predictions/{key}", timeout=5) as r:
            mine = json.loads(r.read())
        score, label = theirs[key]
        if abs(mine["score"] - score) > 1e-6 or mine["label"] != label:
            raise BenchError(f"{key}: the lookup answers {mine['score']}/{mine['label']}, Feast {score}/{label}")
    batch = post(ours_port, "/v1/predictions/batch", {"keys": keys})
    if len(batch["predictions"]) != len(keys) or batch["missing"]:
        raise BenchError(f"the lookup's batch route missed keys: {batch['missing']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the servers in turn; ratios: median over rounds")
    ap.add_argument("--batch-keys", type=int, default=100, help="keys per batch request, both sides")
    ap.add_argument("--reuse", action="store_true", help="reuse both bench databases and the Feast repository")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops its servers
    for port in (OURS_PORT, FEAST_PORT):
        port_free(port)
    if not shutil.which("wrk"):
        raise BenchError("wrk is not installed")
    version = feast_venv()

    ours_db, feast_db = f"nsbench_feast_ours_{args.rows}", f"nsbench_feast_{args.rows}"
    url = f"{PG}/{ours_db}"
    repo = ROOT / ".peers" / f"feast-repo-{args.rows}"
    done = repo / "materialized"
    reused = database(ours_db, args.reuse and done.exists())
    if not reused:
        done.unlink(missing_ok=True)
        log(f"loading a {args.rows:,}-row snapshot into {ours_db}")
        t0 = time.perf_counter()
        load_snapshot(url, args.rows)
        log(f"loaded in {time.perf_counter() - t0:.1f}s")
    if not database(feast_db, reused):
        feast_repo(repo, feast_db, args.rows, url)
        done.write_text(f"{args.rows}\n")

    single = {"ours": ("lookup_keys.lua", OURS_PORT), "feast": ("feast_keys.lua", FEAST_PORT)}
    batch = {"ours_batch": ("lookup_batch_keys.lua", OURS_PORT), "feast_batch": ("feast_keys.lua", FEAST_PORT)}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*single, *batch]}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NIGHTSHIFT_HOME": home, "NIGHTSHIFT_STORE_URL": url, "NIGHTSHIFT_DATASET": "flights"}
        try:
            procs.append(serve("serving.lookup:app", OURS_PORT, env, 1))
            procs.append(serve_feast(repo, FEAST_PORT))
            same_answers(args.rows, OURS_PORT, FEAST_PORT)
            log("both servers answer the same scores and labels")

            def load(name: str, script: str, port: int, duration: int) -> dict[str, Any]:
                keys = args.batch_keys if name.endswith("_batch") else 1
                out = wrk(port, duration, args.connections, args.rows, script=script,
                          env={"LOOKUP_KEYS": str(keys), "FEAST_VIEW": VIEW})
                return {**out, "keys_per_s": out["requests_per_s"] * keys} if keys > 1 else out

            for name, (script, port) in {**single, **batch}.items():
                load(name, script, port, 3)  # warm-up: pools, prepared statements, caches
            # Alternating rounds: this VM's speed drifts, so each ratio compares neighbours in time.
            for r in range(args.rounds):
                for name, (script, port) in {**single, **batch}.items():
                    log(f"round {r + 1}: wrk -c{args.connections} -d{args.duration}s against {name}")
                    runs[name].append(load(name, script, port, args.duration))
                    log(f"{name}: {runs[name][-1]}")
        finally:
            for proc in reversed(procs):
                stop(proc)
    report_results(args, runs, version)


def median_round(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> tuple[float, int]:
    """The median over rounds of ours / theirs requests/s, and the round that gives it (the lower middle one)."""
    ratios = [o["requests_per_s"] / t["requests_per_s"] for o, t in zip(ours, theirs, strict=True)]
    order = sorted(range(len(ratios)), key=ratios.__getitem__)
    return float(np.median(ratios)), order[(len(order) - 1) // 2]


def report_results(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], version: str) -> None:
    ratio, r1 = median_round(runs["ours"], runs["feast"])
    batch_ratio, r2 = median_round(runs["ours_batch"], runs["feast_batch"])
    rounds = [{"ratio": round(o["requests_per_s"] / f["requests_per_s"], 3),
               "batch_ratio": round(ob["requests_per_s"] / fb["requests_per_s"], 3),
               "ours": o, "feast": f, "ours_batch": ob, "feast_batch": fb}
              for o, f, ob, fb in zip(*(runs[k] for k in ("ours", "feast", "ours_batch", "feast_batch")), strict=True)]
    report = {
        "ratio": round(ratio, 3), "batch_ratio": round(batch_ratio, 3),
        "figures": "ours, feast: the round that gave the median single-key ratio; ours_batch, feast_batch: the "
                   "round that gave the median batch ratio (requests/s; batch: keys/s too)",
        "ours": runs["ours"][r1], "feast": runs["feast"][r1],
        "ours_batch": runs["ours_batch"][r2], "feast_batch": runs["feast_batch"][r2],
        "rounds": rounds, "rows": args.rows, "batch_keys": args.batch_keys, "feast_version": version,
        "setup": "Feast: its PostgreSQL online store (docs.feast.dev/reference/online-stores/postgres) with the "
                 "pooled connections of docs.feast.dev/how-to-guides/online-server-performance-tuning "
                 "(conn_type: pool, min_conn 4, max_conn 20, keepalives_idle 30) and its low-latency production "
                 "registry cache (file registry, cache_mode: thread, cache_ttl_seconds 300); the same rows as "
                 "Parquet (FileSource, offline store: file), `feast apply`, `feast materialize-incremental`, then "
                 "`feast serve` (docs.feast.dev/reference/feature-servers/python-feature-server); the same "
                 "PostgreSQL server, a database of its own. Ours: the snapshot published through the publish path.",
        "server": {"ours": f"uvicorn serving.lookup:app --workers 1 {' '.join(UVICORN)}",
                   "feast": f"feast --log-level WARNING serve --host 127.0.0.1 {' '.join(FEAST_SERVE)} "
                            "(gunicorn, one uvicorn worker; worker recycling off as ours never recycles)"},
        "load": f"wrk -t2 -c{args.connections} -d{args.duration}s --latency, random keys of the whole snapshot: "
                "single-key GET /v1/predictions/{key} vs POST /get-online-features with one entity; batches of "
                f"{args.batch_keys} keys: POST /v1/predictions/batch vs one multi-entity /get-online-features; "
                "servers in turn within each round",
        "command": "python " + " ".join([f"bench/{Path(__file__).name}", *sys.argv[1:]]),
        "date": datetime.now(UTC).date().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["lookup_vs_feast"] = report
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(json.dumps({k: report[k] for k in ("ratio", "batch_ratio", "ours", "feast", "ours_batch", "feast_batch")}))


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"feast_bench: {exc}")
