"""Reliability under faults, hostile input and outages: one run, one results file.

    .venv/bin/python bench/reliability.py [--rows 100000] [--seconds 20] [--outage 60]

1. Fuzz: schemathesis against both apps' OpenAPI (tests/fuzzing.py): cases and 5xx per app.
2. Kills: a publisher killed (SIGKILL, connections cut) at each step of a publish on PostgreSQL
   (tests/integration/crash.py); after each, keys answered / asked of the served snapshot, and again
   after the next publish, and what was left over.
3. Store faults under `wrk -c32` against the lookup API (uvicorn) reading PostgreSQL through a TCP
   relay that this script controls: the database cut (connections closed, new ones refused), the
   database frozen (connections held, no byte forwarded), and backends terminated by PostgreSQL
   (`pg_terminate_backend` every 0.5 s). For each: requests, failed requests, and seconds from the
   end of the fault to the first good answer.
4. Bad keys beside good ones: 32 clients, one request in four with a NUL byte in its key; good lookups
   that did not answer 200.
5. Registry outage: the real-time endpoint (uvicorn) on a tiny home whose registry is a real
   `mlflow server`, stopped for --outage seconds under load; predictions that failed, then the
   seconds from a promotion (made once the registry is back) until the endpoint answers with it.

Writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.lookup_bench import UVICORN, load_snapshot, wrk  # noqa: E402
from ops.serving_tier import free_port  # noqa: E402
from tests.conftest import create_pg_database, drop_pg_database, tiny_env  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
SEED = 20130701


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)



class Relay:
    """A TCP relay to PostgreSQL that can cut (close every connection, refuse new ones) or freeze (hold
    connections, forward nothing) the database as the API sees it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "pass"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._server.accept()
            if self.mode == "cut":
                client.close()
                continue
            try:
                upstream = socket.create_connection((PG_HOST, PG_PORT))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.05)
                if self.mode == "freeze":
                    continue  # hold the bytes: a database that stopped answering
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.mode = "cut"
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for sock in (a, b):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def freeze(self) -> None:
        self.mode = "freeze"

    def restore(self) -> None:
        self.mode = "pass"


def wait_http(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:  # noqa: BLE001  (not up yet)
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def first_good_after(url: str, since: float, until: float) -> float | None:
    """Seconds from `since` until `url` first answers 200 (polled every 20 ms), None if not by `until`."""
    while time.monotonic() < until:
        try:
            if urllib.request.urlopen(url, timeout=10).status == 200:
                return round(time.monotonic() - since, 3)
        except Exception:  # noqa: BLE001  (still failing)
            pass
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------- 1. fuzz


@contextmanager
def environment(**env: str) -> Iterator[None]:
    """Run with these environment variables (and fresh settings), then put everything back."""
    from nightshift.settings import get_settings

    saved = dict(os.environ)
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def fuzz_apps(home: Path, rows: int, examples: int) -> dict[str, Any]:
    """Schemathesis (tests/fuzzing.py) against both apps in process, with their API keys set and sent and
    small limits (3 keys or rows a request, 1 kB bodies for the real-time one) that generated input crosses:
    the lookup API on a PostgreSQL snapshot, the real-time endpoint on the tiny home's champion."""
    from pydantic import SecretStr

    from nightshift import store
    from nightshift.settings import get_settings
    from serving import lookup, realtime
    from tests.fuzzing import fuzz

    def summary(report: dict[str, Any]) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for op in report["operations"].values():
            for status, n in op["statuses"].items():
                statuses[str(status)] = statuses.get(str(status), 0) + n
        return {"cases": report["cases"], "5xx": report["server_errors"],
                "schema_failures": report["schema_failures"], "operations": len(report["operations"]),
                "statuses": dict(sorted(statuses.items()))}

    key = "reliability-bench-key-0123456789"
    out = {}
    url = create_pg_database("ns_bench_fuzz")
    try:
        load_snapshot(url, rows)
        with environment(NIGHTSHIFT_HOME=tempfile.mkdtemp(prefix="ns-rel-"), NIGHTSHIFT_DATASET="flights",
                         NIGHTSHIFT_STORE_URL=url):
            s = get_settings().model_copy(update={"lookup_api_key": SecretStr(key), "lookup_max_keys": 3})
            out["lookup"] = summary(fuzz(lookup.create_app(s), max_examples=examples, seed=SEED, api_key=key))
    finally:
        store.get_engine.cache_clear()
        drop_pg_database(url)
    log(f"fuzz lookup: {out['lookup']}")
    with environment(**tiny_env(home)):
        s = get_settings().model_copy(update={"realtime_api_key": SecretStr(key), "realtime_max_rows": 3,
                                              "realtime_max_body_bytes": 1024})
        out["realtime"] = summary(fuzz(realtime.create_app(s), max_examples=examples, seed=SEED, api_key=key))
    log(f"fuzz realtime: {out['realtime']}")
    return out


def tiny_home() -> Path:
    """A tiny home with champion v1 and a second registered version v2 (trained on a later day)."""
    from jobs.context import Pipeline
    from jobs.train import train
    from nightshift.settings import get_settings
    from tests.conftest import train_champion

    home = Path(tempfile.mkdtemp(prefix="ns-rel-tiny-")) / "home"
    with environment(**tiny_env(home)):
        log("training the tiny champion (v1) and a second version (v2)")
        s = get_settings()
        train_champion(s, date(2013, 2, 10))
        train(Pipeline(s), date(2013, 3, 10), actor="bench", log=lambda *_: None)
    return home


# ---------------------------------------------------------------- 2. kills


def kills() -> dict[str, Any]:
    from tests.integration import crash

    out = []
    for point in crash.KILL_POINTS:
        result = crash.kill_publish_on_a_fresh_store(point)
        after, nxt = result["after_kill"], result["after_next_publish"]
        out.append({"point": point, "keys_asked": after["asked"], "keys_answered": after["answered"],
                    "served_after_kill": after["snapshot"], "statuses_after_kill": after["statuses"],
                    "next_publish_keys_answered": nxt["answered"], "leftovers": result["leftovers"]})
        log(f"kill at {point}: {after['answered']}/{after['asked']} keys answered; next publish "
            f"{nxt['answered']}/{nxt['asked']}; leftovers {result['leftovers']}")
    return {"points": out,
            "keys_unanswered": sum(p["keys_asked"] - p["keys_answered"] for p in out),
            "leftovers": sum(len(v) for p in out for v in p["leftovers"].values())}


# ---------------------------------------------------------------- 3. store faults under wrk


def store_faults(rows: int, seconds: int) -> dict[str, Any]:
    url = create_pg_database("ns_bench_faults")
    relay = Relay()
    name = url.rsplit("/", 1)[1]
    api = None
    try:
        load_snapshot(url, rows)
        port = free_port()
        env = {**os.environ, "NIGHTSHIFT_HOME": tempfile.mkdtemp(prefix="ns-rel-"), "NIGHTSHIFT_DATASET": "flights",
               "NIGHTSHIFT_STORE_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{relay.port}/{name}",
               "NIGHTSHIFT_STORE_TIMEOUT_S": "2", "LOOKUP_ROWS": str(rows)}
        api = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.lookup:app", "--port", str(port),
                                *UVICORN], env=env, cwd=ROOT)
        probe = f"http://127.0.0.1:{port}/v1/predictions/K00000000"
        wait_http(probe)
        wrk(port, 3, 32, rows)  # warm-up
        results = {}
        from sqlalchemy import create_engine, text

        admin = create_engine(f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/postgres")

        def terminate_for(fault_s: float) -> None:
            end = time.monotonic() + fault_s
            while time.monotonic() < end:
                with admin.connect() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE application_name = 'nightshift-lookup'"))
                time.sleep(0.5)

        fault_s = seconds / 3
        for fault in ("cut", "freeze", "terminate"):
            box: dict[str, Any] = {}
            # wrk waits up to 10 s for an answer: the API's own bound (2 s) is what a slow store meets.
            load = threading.Thread(target=lambda out=box: out.update(wrk(port, seconds, 32, rows, timeout_s=10)))
            load.start()
            time.sleep(seconds / 4)  # the fault starts a quarter into the run
            log(f"store fault: {fault} for {fault_s:.0f} s under wrk -c32")
            if fault == "terminate":
                terminate_for(fault_s)
                ended = time.monotonic()
            else:
                getattr(relay, fault)()
                time.sleep(fault_s)
                relay.restore()
                ended = time.monotonic()
            recovery = first_good_after(probe, ended, ended + seconds)
            load.join()
            results[fault] = {"fault_seconds": round(fault_s, 1), "requests": box["requests"],
                              "failed_requests": box["non_2xx"] + box["socket_errors"], "non_2xx": box["non_2xx"],
                              "socket_errors": box["socket_errors"], "recovery_seconds": recovery}
            log(f"  {results[fault]}")
        admin.dispose()
        return {"load": f"wrk -c32 -t2 -d{seconds}s --timeout=10s, a random key of {rows:,} per request",
                "store_timeout_s": 2, **results}
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        drop_pg_database(url)


# ---------------------------------------------------------------- 4. bad keys beside good ones


def bad_keys_beside_good(rows: int, requests: int = 4000) -> dict[str, Any]:
    import httpx

    url = create_pg_database("ns_bench_badkeys")
    api = None
    try:
        load_snapshot(url, rows)
        port = free_port()
        env = {**os.environ, "NIGHTSHIFT_HOME": tempfile.mkdtemp(prefix="ns-rel-"), "NIGHTSHIFT_DATASET": "flights",
               "NIGHTSHIFT_STORE_URL": url}
        api = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.lookup:app", "--port", str(port),
                                *UVICORN], env=env, cwd=ROOT)
        wait_http(f"http://127.0.0.1:{port}/v1/predictions/K00000000")
        bad = ["bad%00key", "%00", "K00000001%00"]
        asked = [(f"K{i % rows:08d}", True) if i % 4 else (bad[i % 3], False) for i in range(requests)]

        async def main() -> list[tuple[bool, int]]:
            limits = httpx.Limits(max_connections=32)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
                sem = asyncio.Semaphore(32)

                async def one(key: str, good: bool) -> tuple[bool, int]:
                    async with sem:
                        return good, (await client.get(f"/v1/predictions/{key}")).status_code

                return list(await asyncio.gather(*[one(k, g) for k, g in asked]))

        answers = asyncio.run(main())
        good = [s for g, s in answers if g]
        bad_answers = [s for g, s in answers if not g]
        return {"requests": requests, "bad_key_share": 0.25, "good_lookups": len(good),
                "good_lookups_failed": sum(s != 200 for s in good),
                "bad_keys_answered": {str(s): bad_answers.count(s) for s in sorted(set(bad_answers))}}
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        drop_pg_database(url)


# ---------------------------------------------------------------- 5. registry outage


def registry_outage(home: Path, outage_s: float) -> dict[str, Any]:
    import httpx

    from nightshift.settings import get_settings
    from tests.integration.test_registry_outage import start_registry, stop_registry

    with environment(**tiny_env(home)):
        s = get_settings()
    mlflow_port, port = free_port(), free_port()
    registry = start_registry(home, mlflow_port)
    env = {**os.environ, **tiny_env(home), "NIGHTSHIFT_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
           "NIGHTSHIFT_REALTIME_POLL_SECONDS": "1"}
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "serving.realtime:app", "--port", str(port),
                            *UVICORN], env=env, cwd=ROOT)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        from nightshift import offline

        frame, _ = offline.read_days(s.offline_dir, "tiny", offline.days(date(2013, 3, 1), date(2013, 3, 31)))
        body = json.loads(frame[[*s.spec().raw_inputs, "id"]].head(16).to_json(orient="records"))
        counts = {"answered": 0, "failed": 0}
        versions: list[tuple[float, str]] = []
        stop = threading.Event()

        async def load() -> None:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                async def caller(i: int) -> None:
                    while not stop.is_set():
                        answer = await client.post("/v1/predict", json=body[i])
                        if answer.status_code == 200 and not answer.json()["fallback"]:
                            counts["answered"] += 1
                            versions.append((time.monotonic(), answer.json()["model"]["version"]))
                        else:
                            counts["failed"] += 1

                await asyncio.gather(*[caller(i) for i in range(8)])

        loader = threading.Thread(target=lambda: asyncio.run(load()))
        loader.start()
        time.sleep(3)
        log(f"registry outage: mlflow server stopped for {outage_s:.0f} s under load")
        before = dict(counts)
        stop_registry(registry)
        time.sleep(outage_s)
        during = {k: counts[k] - before[k] for k in counts}
        registry = start_registry(home, mlflow_port)
        from mlflow import MlflowClient

        from nightshift import store
        from registry import aliases

        uri = f"http://127.0.0.1:{mlflow_port}"
        promoted_at = time.monotonic()
        aliases.promote(MlflowClient(uri, uri), store.get_engine(f"sqlite:///{home / 'store.db'}"),
                        name="nightshift-tiny", version="2", actor="bench", reason="after the outage")
        deadline = promoted_at + 120
        while time.monotonic() < deadline and not any(t > promoted_at and v == "2" for t, v in versions[-50:]):
            time.sleep(0.05)
        swapped = next((t for t, v in versions if t > promoted_at and v == "2"), None)
        stop.set()
        loader.join()
        return {"outage_seconds": outage_s, "predictions_during_outage": during["answered"],
                "predictions_failed_during_outage": during["failed"], "predictions_failed_total": counts["failed"],
                "seconds_to_swap_after_promotion": None if swapped is None else round(swapped - promoted_at, 2)}
    finally:
        api.terminate()
        api.wait(timeout=60)
        stop_registry(registry)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="keys in the lookup snapshot")
    ap.add_argument("--seconds", type=int, default=21, help="wrk run per store fault (the fault: a third)")
    ap.add_argument("--outage", type=float, default=60, help="seconds the MLflow server is down")
    ap.add_argument("--fuzz-examples", type=int, default=100,
                    help="schemathesis examples per operation and mode (valid, invalid)")
    ap.add_argument("--sections", default="fuzz,kills,faults,badkeys,registry",
                    help="what to run (all of them for the results file)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reliability.json")
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

    want = set(args.sections.split(","))
    home = tiny_home() if want & {"fuzz", "registry"} else None
    fuzz = fuzz_apps(home, args.rows, args.fuzz_examples) if home and "fuzz" in want else None
    kill = kills() if "kills" in want else None
    faults = store_faults(args.rows, args.seconds) if "faults" in want else None
    beside = bad_keys_beside_good(args.rows) if "badkeys" in want else None
    log(f"bad keys beside good ones: {beside}")
    outage = registry_outage(home, args.outage) if home and "registry" in want else None
    log(f"registry outage: {outage}")
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join(["python bench/reliability.py", *sys.argv[1:]]),
    }
    if fuzz is not None:
        result.update(fuzz_cases=sum(app["cases"] for app in fuzz.values()),
                      fuzz_5xx=sum(app["5xx"] for app in fuzz.values()))
    if kill is not None:
        result.update(kill_points=[p["point"] for p in kill["points"]], kill_keys_unanswered=kill["keys_unanswered"])
    if beside is not None:
        result["good_lookups_failed_beside_bad_keys"] = beside["good_lookups_failed"]
    if outage is not None:
        result["realtime_failed_during_registry_outage"] = outage["predictions_failed_during_outage"]
    result.update(fuzz=fuzz, kills=kill, store_faults=faults, bad_keys_beside_good=beside, registry_outage=outage)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {args.out}")
    if home is not None:
        shutil.rmtree(home.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
