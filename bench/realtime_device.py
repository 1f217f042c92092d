"""The real-time endpoint on a GPU machine: CUDA vs CPU, dynamic batching vs batch size 1.

    python3 bench/realtime_device.py --bundle BUNDLE_DIR --bodies DIR --out realtime_cuda.json

Serves a scorer bundle folder (NIGHTSHIFT_REALTIME_BUNDLE_DIR: no MLflow needed, so it runs on a
bare GPU image with the serving wheels) with the same uvicorn settings and load as
bench/realtime_bench.py (wrk -t2 -c64, single-row bodies of real rows; DIR holds rows.jsonl and
rows32.jsonl as that script writes them). Prints and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.realtime_bench import UVICORN, Server, log, wrk  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--bodies", type=Path, required=True)
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--devices", default="cuda,cpu", help="which devices to measure")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    py = sys.executable
    rows, rows32 = args.bodies / "rows.jsonl", args.bodies / "rows32.jsonl"
    one = rows.read_text().split("\n", 1)[0].encode()
    gpu = subprocess.run([py, "-c", "import torch; print(torch.cuda.get_device_name(0))"], capture_output=True,
                         text=True).stdout.strip()
    results: dict[str, Any] = {"command": " ".join(["python3", "bench/realtime_device.py", *sys.argv[1:]]),
                               "date": time.strftime("%Y-%m-%d"), "gpu": gpu, "cpus": os.cpu_count(),
                               "load": f"wrk -t2 -c{args.connections} -d{args.duration}s"}
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NIGHTSHIFT_HOME": home, "NIGHTSHIFT_DATASET": "flights",
               "NIGHTSHIFT_REALTIME_BUNDLE_DIR": str(args.bundle.resolve())}

        def server(name: str, device: str, max_batch: int, delay_ms: float) -> Server:
            e = {**env, "NIGHTSHIFT_REALTIME_DEVICE": device, "NIGHTSHIFT_REALTIME_MAX_BATCH": str(max_batch),
                 "NIGHTSHIFT_REALTIME_MAX_DELAY_MS": str(delay_ms)}
            return Server(name, [py, "-m", "uvicorn", "serving.realtime:app", "--port", "8811", *UVICORN], e, 8811,
                          "/v1/predict", one)

        runs = {
            "bare": (Server("bare", [py, "-m", "uvicorn", "bench.bare_app:app", "--port", "8810", *UVICORN], env,
                            8810, "/v1/predict", one), rows, 1),
            "cuda": (server("cuda", "cuda", 64, 0), rows, 1),
            "cuda_delay_1ms": (server("cuda", "cuda", 64, 1), rows, 1),
            "cuda_delay_2ms": (server("cuda", "cuda", 64, 2), rows, 1),
            "cuda_batch1": (server("cuda batch 1", "cuda", 1, 0), rows, 1),
            "cpu": (server("cpu", "cpu", 64, 0), rows, 1),
            "cpu_batch1": (server("cpu batch 1", "cpu", 1, 0), rows, 1),
            "cuda_rows32": (server("cuda, 32-row requests", "cuda", 256, 0), rows32, 32),
            "cpu_rows32": (server("cpu, 32-row requests", "cpu", 256, 0), rows32, 32),
        }
        wanted = args.devices.split(",")
        runs = {k: v for k, v in runs.items() if k == "bare" or k.split("_")[0] in wanted}
        for name, (srv, bodies, per_request) in runs.items():
            with srv:
                if name != "bare":
                    ready = json.loads(subprocess.run(["curl", "-s", "http://127.0.0.1:8811/readyz"],
                                                      capture_output=True, text=True).stdout or "{}")
                    log(f"{name}: {ready}")
                wrk(srv, bodies, 3, args.connections, per_request)
                results[name] = wrk(srv, bodies, args.duration, args.connections, per_request)
            log(f"{name}: {results[name]}")
    for device in wanted:
        results[f"ratio_vs_bare_{device}"] = round(results[device]["rows_per_s"] / results["bare"]["requests_per_s"], 3)
        results[f"batching_speedup_{device}"] = round(results[device]["rows_per_s"]
                                                      / results[f"{device}_batch1"]["rows_per_s"], 3)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
