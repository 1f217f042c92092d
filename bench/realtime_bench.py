"""Real-time endpoint throughput: vs a bare FastAPI endpoint, vs `mlflow models serve`, and batching.

    .venv/bin/python bench/realtime_bench.py --home $HOME_DIR --duration 15

Also measured: the same constant from a plain Starlette route (bench/bare_app.py), the floor under
/v1/predict, which the endpoint serves as a Starlette route (serving/http.py).

Needs a Nightshift home whose flights model has a champion (`nightshift init && nightshift ingest 2013-01-01 --end
2013-12-30 && nightshift run 2013-06-30` with NIGHTSHIFT_HOME set) and `wrk`. Every server runs
under uvicorn with the same settings (1 worker, uvloop, httptools, no access log) on loopback;
`wrk -t2 -c64` POSTs single-row bodies picked at random from real 2013 rows (bench/predict_rows.lua).
Rounds alternate between servers because this VM's speed drifts; each ratio is the median of
neighbouring rounds. Writes bench/results/realtime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
UVICORN = ["--host", "127.0.0.1", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
           "--log-level", "warning", "--workers", "1"]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_bodies(home: Path, folder: Path, n: int = 2000) -> dict[str, Path]:
    """Request bodies from real rows: our single-row form, MLflow's dataframe_records, 32-row requests."""
    os.environ["NIGHTSHIFT_HOME"] = str(home)
    from nightshift import offline
    from nightshift.settings import get_settings

    s = get_settings()
    spec = s.spec("flights")
    frame, _ = offline.read_days(s.offline_dir, "flights", offline.days(date(2013, 7, 1), date(2013, 7, 5)))
    rows = json.loads(frame[[*spec.raw_inputs, spec.entity_key]].head(n).to_json(orient="records"))
    files = {"row": folder / "rows.jsonl", "mlflow": folder / "mlflow.jsonl", "rows32": folder / "rows32.jsonl"}
    files["row"].write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    files["mlflow"].write_text("\n".join(json.dumps({"dataframe_records": [
        {k: v for k, v in r.items() if k != spec.entity_key}]}) for r in rows) + "\n")
    files["rows32"].write_text("\n".join(json.dumps({"rows": rows[i:i + 32]}) for i in range(0, n - 32, 32)) + "\n")
    return files


def wait_up(url: str, body: bytes, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=5).read()
            return
        except Exception:  # noqa: BLE001  (not up yet)
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{url} did not answer")


class Server:
    """One server process (started on enter, stopped on exit)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, path: str, body: bytes) -> None:
        self.name, self.cmd, self.env, self.port, self.path, self.body = name, cmd, env, port, path, body

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT, start_new_session=True,
                                     stdout=subprocess.DEVNULL)
        wait_up(f"http://127.0.0.1:{self.port}{self.path}", self.body, self.proc)
        return self

    def post(self, body: bytes) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{self.path}", data=body,
                                     headers={"Content-Type": "application/json"})
        return json.loads(urllib.request.urlopen(req, timeout=10).read())

    def __exit__(self, *_: object) -> None:
        import signal

        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def wrk(server: Server, bodies: Path, duration: int, connections: int, rows_per_request: int) -> dict[str, Any]:
    """One wrk run against a server; requests/s, rows/s, p50/p99, errors."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
                          str(ROOT / "bench" / "predict_rows.lua"), f"http://127.0.0.1:{server.port}"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "ROWS_FILE": str(bodies), "PREDICT_PATH": server.path})
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    f = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    seconds = f["duration_us"] / 1e6
    return {"requests_per_s": round(f["requests"] / seconds), "rows_per_s": round(f["requests"] * rows_per_request
                                                                                  / seconds),
            "p50_ms": f["p50_us"] / 1000, "p99_ms": f["p99_us"] / 1000, "non_2xx": f["non2xx"],
            "socket_errors": f["socket_errors"], "requests": f["requests"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="Nightshift home with a flights champion")
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of the compared servers")
    ap.add_argument("--delays", default="0.5,1,2,5", help="max delays (ms) for the batching curve")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--delay", type=float, default=2.0, help="max delay (ms) of the headline runs (the default)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "realtime.json")
    args = ap.parse_args()
    home = args.home.resolve()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        files = write_bodies(home, Path(tmp))
        one = files["row"].read_text().split("\n", 1)[0].encode()
        base_env = {**os.environ, "NIGHTSHIFT_HOME": str(home), "NIGHTSHIFT_DATASET": "flights",
                    "NIGHTSHIFT_REALTIME_DEVICE": "cpu", "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}

        def realtime(max_batch: int, delay_ms: float, port: int = 8801, inference: str = "process") -> Server:
            env = {**base_env, "NIGHTSHIFT_REALTIME_MAX_BATCH": str(max_batch),
                   "NIGHTSHIFT_REALTIME_MAX_DELAY_MS": str(delay_ms), "NIGHTSHIFT_REALTIME_INFERENCE": inference}
            return Server(f"realtime(batch={max_batch},delay={delay_ms}ms,{inference})",
                          [py, "-m", "uvicorn", "serving.realtime:app", "--port", str(port), *UVICORN], env, port,
                          "/v1/predict", one)

        bare = Server("bare", [py, "-m", "uvicorn", "bench.bare_app:app", "--port", "8800", *UVICORN], base_env, 8800,
                      "/v1/predict", one)
        bare_starlette = Server("bare Starlette", [py, "-m", "uvicorn", "bench.bare_app:starlette_app",
                                                   "--port", "8803", *UVICORN], base_env, 8803, "/v1/predict", one)
        mlflow_body = files["mlflow"].read_text().split("\n", 1)[0].encode()
        # mlflow starts uvicorn itself; uvicorn reads its other options from UVICORN_* variables.
        same_settings = {"UVICORN_LOOP": "uvloop", "UVICORN_HTTP": "httptools", "UVICORN_ACCESS_LOG": "false",
                         "UVICORN_LOG_LEVEL": "warning"}
        mlflow_serve = Server("mlflow models serve",
                              [py, "-m", "mlflow", "models", "serve", "-m", "models:/nightshift-flights@champion",
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", "8802", "--workers", "1"],
                              {**base_env, **same_settings}, 8802, "/invocations", mlflow_body)

        def measure(server: Server, bodies: str = "row", per_request: int = 1) -> dict[str, Any]:
            with server:
                wrk(server, files[bodies], 3, args.connections, per_request)  # warm-up
                result = wrk(server, files[bodies], args.duration, args.connections, per_request)
            log(f"{server.name} [{bodies}]: {result}")
            return result

        # Same model, same answer: the endpoint's score of a row is MLflow's.
        with realtime(args.max_batch, args.delay) as ours:
            our_score = ours.post(one)["score"]
        with mlflow_serve as theirs:
            their_score = theirs.post(mlflow_body)["predictions"][0]
        assert abs(our_score - their_score) < 1e-5, (our_score, their_score)
        log(f"same row, same score: endpoint {our_score}, mlflow models serve {their_score}")
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "realtime": [], "batch1": [], "mlflow_serve": [],
                                                 "bare_starlette": [], "realtime_loop": []}
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            runs["bare"].append(measure(bare))
            runs["bare_starlette"].append(measure(bare_starlette))
            runs["realtime"].append(measure(realtime(args.max_batch, args.delay)))
            runs["realtime_loop"].append(measure(realtime(args.max_batch, args.delay, inference="loop")))
            runs["batch1"].append(measure(realtime(1, 0)))
            runs["mlflow_serve"].append(measure(mlflow_serve, "mlflow"))
        # Each delay is run right after a delay-0 run, and reported relative to it (the VM drifts).
        curve = {}
        for delay in [float(d) for d in args.delays.split(",") if float(d) > 0]:
            reference = measure(realtime(args.max_batch, 0))
            point = measure(realtime(args.max_batch, delay))
            curve[str(delay)] = {**point, "vs_delay_0": round(point["rows_per_s"] / reference["rows_per_s"], 3),
                                 "delay_0": reference}
        multi = {"batch": measure(realtime(args.max_batch, args.delay), "rows32", 32),
                 "one_request_per_pass": measure(realtime(32, 0), "rows32", 32)}

    def ratio(a: str, b: str, field_a: str = "rows_per_s", field_b: str = "requests_per_s") -> float:
        return round(statistics.median(x[field_a] / y[field_b] for x, y in zip(runs[a], runs[b], strict=True)), 3)

    def med(name: str) -> dict[str, Any]:
        keys = ("requests_per_s", "rows_per_s", "p50_ms", "p99_ms")
        errors = {k: sum(x[k] for x in runs[name]) for k in ("non_2xx", "socket_errors")}
        return {k: statistics.median(x[k] for x in runs[name]) for k in keys} | errors

    result = {
        "command": " ".join(["python", "bench/realtime_bench.py", *sys.argv[1:]]).replace(str(args.home), "$HOME_DIR"),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "device": "cpu"},
        "load": f"wrk -t2 -c{args.connections} -d{args.duration}s, single-row POST bodies from real 2013 rows",
        "server": "uvicorn, 1 worker, uvloop, httptools, no access log (all servers)",
        "model": "nightshift-flights@champion",
        "defaults": {"max_batch": args.max_batch, "max_delay_ms": args.delay},
        "ratio_vs_bare": ratio("realtime", "bare"),
        # /v1/predict is a plain Starlette route (serving/http.py): how close it comes to that floor.
        "ratio_vs_bare_starlette": ratio("realtime", "bare_starlette"),
        "speedup_vs_mlflow_serve": ratio("realtime", "mlflow_serve", "rows_per_s", "rows_per_s"),
        "batching_speedup": ratio("realtime", "batch1", "rows_per_s", "rows_per_s"),
        # The model in its own process (the default) vs batches on the event loop.
        "process_vs_loop": ratio("realtime", "realtime_loop", "rows_per_s", "rows_per_s"),
        "median": {name: med(name) for name in runs},
        "delay_curve": curve,
        "rows32_per_request": multi,
        "runs": runs,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"ratio_vs_bare {result['ratio_vs_bare']} (vs bare Starlette {result['ratio_vs_bare_starlette']}), "
        f"speedup_vs_mlflow_serve {result['speedup_vs_mlflow_serve']}, "
        f"batching_speedup {result['batching_speedup']} -> {args.out}")


if __name__ == "__main__":
    main()
