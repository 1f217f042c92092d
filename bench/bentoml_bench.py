"""Real-time endpoint vs BentoML (issue 21): the same scorer bundle behind each, single-row load at 64 clients.

    .venv/bin/python bench/bentoml_bench.py --home $HOME_DIR

(defaults: --duration 20 --rounds 3 --connections 64 --max-latency-ms 60000 --latency-sweep 20,100,1000).
Needs a Nightshift home whose flights model has a champion (see bench/realtime_bench.py) and `wrk`.

The bundle is the champion's, taken as the endpoint takes it: its version from the registry's
alias, its local copy from registry.packaging.local_bundle. Our side is the real-time endpoint
started as bench/realtime_bench.py starts it (uvicorn, 1 worker, uvloop, httptools, no access log;
its defaults: batches of up to 64 rows, 2 ms max delay, the model in its own process with 1 torch
thread). The peer is bench/peers/bentoml_service.py under `bentoml serve`, in its own virtual
environment .peers/bentoml (created here when missing; its pins stay out of constraints.txt): a
BentoML service set up as BentoML's docs recommend (docs.bentoml.com, latest: "Services",
"Adaptive batching", "Parallelize requests handling", "Configurations", "Input and output
types"): one worker, a synchronous batchable API (max_batch_size 64) that scores with the same
nightshift.model code and bundle, 1 torch thread, no access log, its other defaults (metrics and
tracing middleware on), uvloop and httptools installed so its uvicorn picks them as ours does, and
its JSON output's content type declared (left undeclared, BentoML rebuilds the output type's JSON
schema on every response to infer it: about a tenth of its CPU per request here, py-spy).

BentoML's max_latency_ms is a latency budget, not a batching delay: its dispatcher cancels (503)
any request it predicts would exceed it, and sizes batches from a regression of recent batch
times. The headline uses BentoML's own default (60000: never sheds at this load); --latency-sweep
runs the peer once at each other budget for the record.

Both answer the same rows with the same scores (checked to 1e-5) before any load. Then
`wrk -t2 -cN -dDs --latency` POSTs single-row bodies picked at random from real 2013 rows
(bench/predict_rows.lua): ours as the row itself to /v1/predict, BentoML's as {"rows": [row]} to
/predict. Rounds alternate ours/BentoML (this VM's speed drifts), each after a 3 s warm-up on a
fresh server; the ratio is the median over rounds of ours rows/s / BentoML's rows/s. Writes the
key realtime_vs_bentoml of bench/results/peers.json (other keys kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy
from bench.realtime_bench import UVICORN, Server, log, write_bodies, wrk  # noqa: E402

BENTOML_VERSION = "1.4.40"  # the newest on PyPI that installs here (2026-12)
TORCH = "torch==2.13.0"  # the project's torch (constraints.txt): a wheel on this machine's disk
# The scorer's own libraries at the project's versions (constraints.txt), so both sides run the same numerics;
# uvloop and httptools so that BentoML's uvicorn (loop/http "auto") runs on them as our endpoint's does.
SAME_AS_PROJECT = ("numpy", "pandas", "PyYAML", "joblib", "scikit-learn", "uvloop", "httptools")
VENV = ROOT / ".peers" / "bentoml"
OURS_PORT, BENTO_PORT = 8841, 8842
DOCS = ["https://docs.bentoml.com/en/latest/build-with-bentoml/services.html",
        "https://docs.bentoml.com/en/latest/get-started/adaptive-batching.html",
        "https://docs.bentoml.com/en/latest/build-with-bentoml/parallelize-requests.html",
        "https://docs.bentoml.com/en/latest/reference/bentoml/configurations.html",
        "https://docs.bentoml.com/en/latest/build-with-bentoml/iotypes.html"]


class BentoServer(Server):
    """`bentoml serve`: its arbiter starts each worker in a session of its own, outside the arbiter's process
    group; the arbiter stops them on SIGTERM, and any that outlive it are killed here (by their own group)."""

    def __exit__(self, *exc: object) -> None:
        workers = children(self.proc.pid)
        super().__exit__(*exc)
        for pid in workers:
            try:
                os.killpg(pid, signal.SIGKILL)
                log(f"killed a BentoML worker ({pid}) its arbiter left behind")
            except (ProcessLookupError, PermissionError):
                pass  # gone (the usual case)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def project_pins(names: tuple[str, ...]) -> list[str]:
    """`name==version` of each package as constraints.txt pins it."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[name.lower()] = f"{name}=={version}"
    missing = [n for n in names if n.lower() not in pins]
    if missing:
        raise SystemExit(f"constraints.txt pins no {', '.join(missing)}")
    return [pins[n.lower()] for n in names]


def peer_python(code: str) -> str:
    """Run `code` in the BentoML venv's interpreter; its stdout."""
    return subprocess.run([str(VENV / "bin" / "python"), "-c", code], check=True, capture_output=True,
                          text=True).stdout.strip()


def ensure_venv() -> str:
    """The BentoML venv (created when missing, torch first so pip never picks another); BentoML's version."""
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if not (VENV / "bin" / "bentoml").exists():
        log(f"creating {VENV.relative_to(ROOT)} (BentoML {BENTOML_VERSION})")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run([*pip, TORCH], check=True)
        subprocess.run([*pip, f"bentoml=={BENTOML_VERSION}", *project_pins(SAME_AS_PROJECT)], check=True)
    torch_version = peer_python("import torch; print(torch.__version__)")
    if not torch_version.startswith(TORCH.split("==")[1]):
        raise SystemExit(f"{VENV} has torch {torch_version}, not {TORCH}: remove the folder and run again")
    return peer_python("import bentoml; print(bentoml.__version__)")


def champion_bundle(home: Path, dataset: str = "flights") -> tuple[str, Path]:
    """(version, local bundle dir) of the dataset's champion, as the endpoint finds it (registry alias, local copy)."""
    os.environ["NIGHTSHIFT_HOME"] = str(home)
    from nightshift.settings import get_settings
    from registry.aliases import alias_version
    from registry.packaging import local_bundle
    from registry.tracking import connect

    settings = get_settings()
    name = settings.model_name(dataset)
    version = alias_version(connect(settings), name, "champion")
    if version is None:
        raise SystemExit(f"{name} has no champion in {home}: run `nightshift run` there first")
    return version, local_bundle(settings.home, name, version)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each rate and latency over rounds, errors summed."""
    keys = ("requests_per_s", "rows_per_s", "ok_rows_per_s", "p50_ms", "p99_ms")
    return ({k: statistics.median(r[k] for r in runs) for k in keys}
            | {k: sum(r[k] for r in runs) for k in ("non_2xx", "socket_errors")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="Nightshift home with a flights champion")
    ap.add_argument("--duration", type=int, default=20, help="seconds of each measured wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds ours/BentoML")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=64, help="most rows per forward pass, both sides")
    ap.add_argument("--delay", type=float, default=2.0, help="our endpoint's max batching delay (ms), its default")
    ap.add_argument("--max-latency-ms", type=int, default=60000,
                    help="BentoML's max_latency_ms in the headline rounds (60000: its default)")
    ap.add_argument("--latency-sweep", default="20,100,1000",
                    help="other max_latency_ms values BentoML runs once each, for the record ('' for none)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads, both sides (ours: its default)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    args = ap.parse_args()
    home = args.home.resolve()
    started = time.monotonic()
    bentoml_version = ensure_venv()
    version, bundle = champion_bundle(home)
    log(f"nightshift-flights v{version} (champion): {bundle}; BentoML {bentoml_version}")
    sweep = [int(x) for x in args.latency_sweep.split(",") if x.strip()]

    with tempfile.TemporaryDirectory() as tmp:
        files = write_bodies(home, Path(tmp))
        rows = [json.loads(line) for line in files["row"].read_text().splitlines()]
        files["bentoml"] = Path(tmp) / "bentoml.jsonl"
        files["bentoml"].write_text("".join(json.dumps({"rows": [r]}) + "\n" for r in rows))
        one = json.dumps(rows[0]).encode()
        ours_env = {**os.environ, "NIGHTSHIFT_HOME": str(home), "NIGHTSHIFT_DATASET": "flights",
                    "NIGHTSHIFT_REALTIME_DEVICE": "cpu", "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
                    "NIGHTSHIFT_REALTIME_MAX_BATCH": str(args.max_batch),
                    "NIGHTSHIFT_REALTIME_MAX_DELAY_MS": str(args.delay),
                    "NIGHTSHIFT_REALTIME_CPU_THREADS": str(args.torch_threads)}
        ours = Server("ours", [sys.executable, "-m", "uvicorn", "serving.realtime:app", "--port", str(OURS_PORT),
                               *UVICORN], ours_env, OURS_PORT, "/v1/predict", one)

        def bentoml(max_latency_ms: int) -> Server:
            env = {**os.environ, "NIGHTSHIFT_BENTO_BUNDLE": str(bundle),
                   "NIGHTSHIFT_BENTO_MAX_BATCH": str(args.max_batch),
                   "NIGHTSHIFT_BENTO_MAX_LATENCY_MS": str(max_latency_ms),
                   "NIGHTSHIFT_BENTO_TORCH_THREADS": str(args.torch_threads), "NIGHTSHIFT_BENTO_WORKERS": "1",
                   "BENTOML_HOME": str(Path(tmp) / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "True"}
            return BentoServer(f"bentoml(max_latency_ms={max_latency_ms})",
                          [str(VENV / "bin" / "bentoml"), "serve", "bentoml_service:NightshiftScorer",
                           "--working-dir", str(ROOT / "bench" / "peers"), "--host", "127.0.0.1",
                           "--port", str(BENTO_PORT)], env, BENTO_PORT, "/predict", json.dumps({"rows": rows[:1]})
                          .encode())

        def measure(server: Server, bodies: str) -> dict[str, Any]:
            with server:
                wrk(server, files[bodies], 3, args.connections, 1)  # warm-up
                result = wrk(server, files[bodies], args.duration, args.connections, 1)
            # rows answered with a 2xx (wrk counts a 503 as a request too)
            result["ok_rows_per_s"] = round(result["rows_per_s"] * (1 - result["non_2xx"] / max(result["requests"], 1)))
            log(f"{server.name}: {result}")
            return result

        # Same bundle, same scorer code: the same scores, one row at a time and as one 64-row request.
        sample = rows[:args.max_batch]
        with ours:
            our_single = [ours.post(json.dumps(r).encode())["score"] for r in sample[:8]]
            our_batch = [p["score"] for p in ours.post(json.dumps({"rows": sample}).encode())["predictions"]]
        with bentoml(args.max_latency_ms) as peer:
            their_single = [peer.post(json.dumps({"rows": [r]}).encode())[0] for r in sample[:8]]
            their_batch = peer.post(json.dumps({"rows": sample}).encode())
        gap = max(abs(a - b) for a, b in zip(our_single + our_batch, their_single + their_batch, strict=True))
        if gap > 1e-5:
            raise SystemExit(f"the two sides disagree on the same rows by up to {gap}: not the same model")
        log(f"same {len(sample)} rows, same scores (largest gap {gap:.2e})")

        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}")
            a = measure(ours, "row")
            b = measure(bentoml(args.max_latency_ms), "bentoml")
            rounds.append({"ours": a, "bentoml": b, "ratio": round(a["rows_per_s"] / b["rows_per_s"], 3)})
        swept = {str(ms): measure(bentoml(ms), "bentoml") for ms in sweep}

    ours_sum, theirs_sum = summary([x["ours"] for x in rounds]), summary([x["bentoml"] for x in rounds])
    ratio = round(statistics.median(x["ratio"] for x in rounds), 3)
    if ours_sum["non_2xx"] or theirs_sum["non_2xx"] or ours_sum["socket_errors"] or theirs_sum["socket_errors"]:
        log(f"errors under load: ours {ours_sum['non_2xx']} non-2xx, {ours_sum['socket_errors']} socket errors; "
            f"BentoML {theirs_sum['non_2xx']} non-2xx, {theirs_sum['socket_errors']} socket errors")
    result = {
        "ratio": ratio,
        "p99_ours_ms": ours_sum["p99_ms"],
        "p99_bentoml_ms": theirs_sum["p99_ms"],
        "target_met": ratio >= 2 and ours_sum["p99_ms"] <= theirs_sum["p99_ms"],
        "ours": ours_sum,
        "bentoml": theirs_sum,
        "rounds": rounds,
        "bentoml_max_latency_sweep": swept,
        "bentoml_version": bentoml_version,
        "bentoml_settings": {
            "service": "bench/peers/bentoml_service.py: @bentoml.service(workers=1), sync @bentoml.api(batchable=True)"
                       " taking list[dict] rows, returning Annotated[list[float], ContentType('application/json')];"
                       " nightshift.model.load_bundle + predict_records (CPU, fp32)",
            "max_batch_size": args.max_batch, "max_latency_ms": args.max_latency_ms, "workers": 1,
            "torch_threads": args.torch_threads, "access_log": False,
            "server": "bentoml serve (its uvicorn; uvloop and httptools installed, picked by uvicorn's auto)",
            "metrics_and_tracing": "BentoML's defaults (on)",
        },
        "ours_settings": {"max_batch": args.max_batch, "max_delay_ms": args.delay, "workers": 1,
                          "torch_threads": args.torch_threads, "inference": "process (the default)",
                          "server": "uvicorn, 1 worker, uvloop, httptools, no access log"},
        "setup": "BentoML's docs (latest): " + ", ".join(DOCS),
        "notes": "Ours checks every row against the spec's request schema and writes each prediction to the "
                 "prediction log; BentoML's API takes the rows as list[dict[str, Any]] (no per-field checks) and "
                 "logs nothing. BentoML keeps its default metrics and OpenTelemetry middleware; ours has its "
                 "Prometheus metrics. Ours scores in a child process; BentoML in a thread of its worker (its sync "
                 "API). bentoml_max_latency_sweep: one run each, not alternated with ours; a budget the queue "
                 "exceeds is answered with 503s (ok_rows_per_s counts only 2xx).",
        "model": f"nightshift-flights@champion (v{version}), the same local bundle dir on both sides",
        "load": f"wrk -t2 -c{args.connections} -d{args.duration}s --latency after a 3 s warm-up on a fresh server, "
                "single-row POST bodies from real 2013 rows (ours: the row; BentoML: {\"rows\": [row]}); "
                f"{args.rounds} rounds alternating ours/BentoML; ratio = median over rounds of ours rows/s / "
                "BentoML rows/s; figures are medians over rounds, errors summed",
        "command": " ".join(["python", "bench/bentoml_bench.py", *sys.argv[1:]]).replace(str(args.home), "$HOME_DIR"),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "device": "cpu"},
        "wall_s": round(time.monotonic() - started),
    }
    peers = json.loads(args.out.read_text()) if args.out.exists() else {}
    peers["realtime_vs_bentoml"] = result
    args.out.write_text(json.dumps(peers, indent=2) + "\n")
    log(f"ours {ours_sum['rows_per_s']} rows/s (p99 {ours_sum['p99_ms']} ms) vs BentoML {theirs_sum['rows_per_s']} "
        f"rows/s (p99 {theirs_sum['p99_ms']} ms): ratio {ratio} -> {args.out}")


if __name__ == "__main__":
    main()
