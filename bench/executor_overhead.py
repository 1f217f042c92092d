"""Per-task overhead of the CeleryExecutor and of the LocalExecutor on the same DAG: the
`celery_overhead_per_task_seconds` and `local_overhead_per_task_seconds` of bench/results/topology.json.

    .venv/bin/python bench/executor_overhead.py [--runs 3]

For each executor a fresh Airflow, started as the cluster topology starts it (ops/cluster.py: API server,
scheduler, DAG processor, triggerer, metadata DB on PostgreSQL; for Celery the broker on Redis, the result
backend on PostgreSQL and two workers), runs bench/dags/noop_chain.py `--runs` times, one run at a time: ten
tasks in a chain that do nothing. Overhead per task = the run's wall time (its start to its end) / 10: the
scheduling, queueing, process start and state calls of one task, with no work in it. The figure is the median
over the runs. The keys are merged into bench/results/topology.json (bench/topology_bench.py writes the rest).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dags.noop_chain import TASKS  # noqa: E402
from ops.cluster import Cluster  # noqa: E402


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", flush=True)


def per_task_seconds(executor: str, runs: int, folder: Path) -> list[float]:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false"}
    cluster = Cluster(folder / executor, env, prefix=f"ns_bench_{executor.lower()}_{os.getpid()}",
                      broker="redis://127.0.0.1:6379/12", executor=executor, dags_folder=ROOT / "bench" / "dags")
    import redis

    redis.Redis.from_url(cluster.broker).flushdb()
    cluster.drop_databases()
    out = []
    try:
        log(f"starting Airflow with the {executor}")
        cluster.start_airflow()
        api = cluster.api()
        api.wait_for_dag("noop_chain", timeout=300)
        api.unpause("noop_chain")
        for i in range(runs + 1):  # the first run warms the workers up and is not counted
            run_id = api._call("POST", "/dags/noop_chain/dagRuns", json={"logical_date": None})["dag_run_id"]
            state = api.wait("noop_chain", run_id, timeout=900, log=lambda *_: None)
            assert state == "success", f"{executor} run {run_id}: {state}"
            run = api._call("GET", f"/dags/noop_chain/dagRuns/{run_id}")
            seconds = (datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
                       ).total_seconds() / TASKS
            log(f"{executor} run {i}: {seconds:.2f} s per task" + (" (warm-up, not counted)" if i == 0 else ""))
            if i:
                out.append(seconds)
    finally:
        cluster.down()
        cluster.drop_databases()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "topology.json")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ns-executors-"))
    found: dict[str, Any] = {}
    for executor, key in (("LocalExecutor", "local"), ("CeleryExecutor", "celery")):
        seconds = per_task_seconds(executor, args.runs, folder)
        found[f"{key}_overhead_per_task_seconds"] = round(statistics.median(seconds), 2)
        found[f"{key}_per_task_seconds_by_run"] = [round(x, 2) for x in seconds]
    found["executor_overhead"] = {
        "command": " ".join(["python bench/executor_overhead.py", *sys.argv[1:]]),
        "dag": f"bench/dags/noop_chain.py ({TASKS} no-op tasks in a chain), one run at a time",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": date.today().isoformat()}
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.update(found)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"{found} -> {args.out}")


if __name__ == "__main__":
    main()
