"""The serving tier's balancer: its cost, and what losing a replica costs (bench/results/topology.json).

    .venv/bin/python bench/topology_bench.py [--duration 15] [--rounds 3] [--kills 10]

Builds a tiny home (90 days ingested, a champion trained and promoted), publishes a snapshot of 10,000 keys
to a fresh PostgreSQL database (the store and the prediction log), starts an MLflow tracking server on the
home's registry and the serving tier of ops/serving_tier.py: HAProxy (infra/cluster/haproxy.cfg) in front
of two lookup and two real-time replicas. Then, with `wrk -t1 -c8` (bench/tier_requests.lua):

- `lb_ratio_vs_direct`: requests/s of predictions through HAProxy to two replicas / requests/s of the same
  load sent straight to one replica; rounds alternate (this VM's speed drifts) and the ratio is the median
  of neighbouring rounds. The same for lookups (`lb_ratio_vs_direct_lookup`). On 2 cores the second replica
  adds no cores: the ratio is the balancer's cost, not a scale-out gain.
- the kills: for each of a lookup and a real-time replica, one `wrk` run goes through HAProxy while the
  replica is SIGKILLed `--kills` times, each time once both replicas serve, then restarted, the next kill
  only after the restarted one serves again: failed requests (non-2xx and socket errors) over all the kills,
  and seconds until HAProxy has it back in rotation.

The executor figures (`celery_overhead_per_task_seconds`, `local_overhead_per_task_seconds`) come from
bench/executor_overhead.py, which merges them into the same file; this bench keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rate(result: dict[str, int]) -> float:
    return result["requests"] / (result["duration_us"] / 1e6)


def kill_under_load(tier: Any, name: str, requests: Path, lb_url: str, kills: int) -> dict[str, Any]:
    """SIGKILL replica `name` `kills` times while one wrk run goes through the balancer: each time restart it and
    wait until it serves again before the next kill."""
    from ops.serving_tier import start_wrk, stop_wrk, wait_for

    peer = name[:-1] + "2"
    load = start_wrk(lb_url, requests, 900)
    downs, backs, in_rotation = [], [], []
    for _ in range(kills):
        start = tier.served()
        wait_for(lambda: all(tier.served()[n] > start[n] + 20 for n in (name, peer)), "load on both replicas", 60)  # noqa: B023
        t_kill = time.monotonic()
        tier.replica(name).kill()
        downs.append(tier.wait_server(name, "DOWN", 30))
        before = tier.served()[name]
        backs.append(tier.restart(name))
        wait_for(lambda: tier.served()[name] > before, f"{name} to serve again", 60)  # noqa: B023
        in_rotation.append(time.monotonic() - t_kill)
    outcome = stop_wrk(load)
    found = {"kills": kills, "requests": outcome["requests"], "failed": outcome["non2xx"] + outcome["socket_errors"],
             "failed_by_kind": {k: outcome[k] for k in ("non2xx", "connect", "read", "write", "timeout")},
             "seconds_until_marked_down_median": round(statistics.median(downs), 2),
             "seconds_restart_until_in_rotation_median": round(statistics.median(backs), 2),
             "seconds_kill_until_serving_again_median": round(statistics.median(in_rotation), 2),
             "seconds_kill_until_serving_again_max": round(max(in_rotation), 2)}
    log(f"kill {name}: {found}")
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=15, help="seconds of each wrk round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kills", type=int, default=10, help="kills of each of a lookup and a real-time replica")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "topology.json")
    args = ap.parse_args()
    for key, value in {"MLFLOW_DISABLE_TELEMETRY": "true", "GX_ANALYTICS_ENABLED": "false",
                       "GIT_PYTHON_REFRESH": "quiet", "NIGHTSHIFT_DEVICE": "cpu"}.items():
        os.environ.setdefault(key, value)
    folder = Path(tempfile.mkdtemp(prefix="ns-topology-"))
    home = folder / "home"
    from tests.conftest import create_pg_database, drop_pg_database, tiny_env

    os.environ.update(tiny_env(home))
    url = create_pg_database("ns_topology")
    os.environ["NIGHTSHIFT_STORE_URL"] = url

    from nightshift import store
    from nightshift.settings import get_settings
    from ops.serving_tier import ServingTier, free_port, start_wrk, write_requests, wrk_result
    from tests.conftest import train_champion
    from tests.integration.conftest import publish_snapshot, rows
    from tests.integration.test_registry_outage import start_registry, stop_registry

    get_settings.cache_clear()
    s = get_settings()
    log("training a tiny champion")
    train_champion(s, date(2013, 2, 10))
    store.init_store(url)
    keys = [f"K{i:05d}" for i in range(10_000)]
    publish_snapshot(s, keys, 0.25)
    store.get_engine.cache_clear()
    port = free_port()
    registry = start_registry(home, port)
    os.environ["NIGHTSHIFT_MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    get_settings.cache_clear()
    s = get_settings()
    lookups = write_requests(folder / "lookups.tsv", [("GET", f"/v1/datasets/tiny/predictions/{k}") for k in keys])
    predicts = write_requests(folder / "predicts.tsv", [
        ("POST", "/v1/datasets/tiny/predict", str(r["id"]), json.dumps(r)) for r in rows(s, 500)])
    tier = ServingTier(folder / "tier", dict(os.environ))
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "command": " ".join(["python bench/topology_bench.py", *sys.argv[1:]]),
        "load": f"wrk -t1 -c8 -d{args.duration}s, bench/tier_requests.lua",
    }
    if args.out.exists():  # bench/executor_overhead.py's figures stay
        kept = json.loads(args.out.read_text())
        result.update({k: v for k, v in kept.items() if k.startswith(("celery_", "local_", "executor_"))})
    try:
        log("starting the serving tier")
        tier.start()
        for kind, requests, lb_url, direct in (
                ("predict", predicts, tier.realtime_url, tier.realtimes[0].url),
                ("lookup", lookups, tier.lookup_url, tier.lookups[0].url)):
            wrk_result(start_wrk(direct, requests, 3))  # warm-up of both paths
            wrk_result(start_wrk(lb_url, requests, 3))
            direct_rps, lb_rps = [], []
            for _ in range(args.rounds):
                direct_rps.append(rate(wrk_result(start_wrk(direct, requests, args.duration))))
                lb_rps.append(rate(wrk_result(start_wrk(lb_url, requests, args.duration))))
                log(f"{kind}: direct {direct_rps[-1]:.0f}/s, through HAProxy {lb_rps[-1]:.0f}/s")
            ratios = [lb / d for lb, d in zip(lb_rps, direct_rps, strict=True)]
            result[kind] = {"direct_rps": [round(x, 1) for x in direct_rps],
                            "lb_rps": [round(x, 1) for x in lb_rps],
                            "ratio_median": round(statistics.median(ratios), 3)}
        result["lb_ratio_vs_direct"] = result["predict"]["ratio_median"]
        result["lb_ratio_vs_direct_lookup"] = result["lookup"]["ratio_median"]

        kills = {name: kill_under_load(tier, name, requests, lb_url, args.kills)
                 for name, requests, lb_url in (("lookup1", lookups, tier.lookup_url),
                                                ("realtime1", predicts, tier.realtime_url))}
        result["kills"] = kills
        result["failed_requests_during_kills"] = sum(k["failed"] for k in kills.values())
    finally:
        tier.stop()
        stop_registry(registry)
        drop_pg_database(url)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
