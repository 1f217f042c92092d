"""Scoring end to end from cold: `nightshift score` against the no-framework floor, both as users run them.

    .venv/bin/python bench/score_cold_bench.py --home $HOME_DIR --rows 10000000

Each path runs as a fresh process, timed from launch until the snapshot is served, in alternating
rounds (this VM's speed drifts):
* floor      one Python process and no framework: resolves the champion in the registry, loads its
             bundle, reads the Parquet with pyarrow, scores with torch on every core, streams the
             scored batches into the store's COPY (which runs while the next batch is scored), builds
             the key, attaches and switches (bench/scoring_bench.py's floor, in a process of its own)
* ours       `nightshift score`: the Spark scoring job (local[*]) writing Parquet, then the publish
* spark_udf_jdbc   mlflow.pyfunc.spark_udf + Spark's JDBC writer into a plain table (no key), reported
             beside the others without a target (needs `apt-get install libpostgresql-jdbc-java`)
Same data for all: the flights offline store replicated to --rows rows (bench/scoring_bench.py's
`scale`), the same champion, each path into a fresh PostgreSQL database. Writes the key
`score_cold_vs_floor` of bench/results/peers.json (floor seconds ÷ ours, median of the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.scoring_bench import (  # noqa: E402  (the repository root first)
    JDBC_JAR,
    ensure_champion,
    floor,
    log,
    new_pg_db,
    scale,
    setup_env,
    timed_process,
)
from jobs.context import Pipeline  # noqa: E402


def floor_child(home: Path, rows: int, url: str) -> None:
    """The floor alone, in this fresh process: champion look-up, bundle load, score, COPY, key, switch."""
    settings = setup_env(home, home / f"scaled-{rows}")
    from jobs.score import champion_bundle

    floor(settings, champion_bundle(Pipeline(settings)), url=url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True, help="Nightshift home (a flights champion is made if none)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-spark-udf-jdbc", action="store_true", help="leave the spark_udf + JDBC path out")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    ap.add_argument("--floor-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    home = args.home.resolve()
    if args.floor_child:
        floor_child(home, args.rows, args.floor_child)
        return
    with_jdbc = not args.no_spark_udf_jdbc
    if with_jdbc and not Path(JDBC_JAR).exists():
        sys.exit(f"the spark_udf + JDBC path needs the PostgreSQL JDBC driver at {JDBC_JAR} "
                 "(Debian: apt-get install libpostgresql-jdbc-java), or --no-spark-udf-jdbc")
    home.mkdir(parents=True, exist_ok=True)
    ensure_champion(home)
    scaled = home / f"scaled-{args.rows}"
    log(f"scaling flights to {args.rows:,} rows under {scaled}")
    scale(setup_env(home), args.rows, scaled)
    settings = setup_env(home, scaled)
    me = [sys.executable, str(Path(__file__).resolve()), "--home", str(home), "--rows", str(args.rows)]
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        one: dict[str, Any] = {}
        one["floor"] = timed_process([*me, "--floor-child", new_pg_db("nsbench_cold_floor")], {**os.environ})
        env = {**os.environ, "NIGHTSHIFT_STORE_URL": new_pg_db("nsbench_cold_ours")}
        one["ours"] = timed_process([sys.executable, "-m", "ops.cli", "score", "--run-id", f"cold-{r}"], env)
        if with_jdbc:
            one["spark_udf_jdbc"] = timed_process([sys.executable, str(ROOT / "bench" / "scoring_bench.py"), "--home",
                                                   str(home), "--rows", str(args.rows), "--baseline-child"],
                                                  {**os.environ})
            one["speedup_vs_spark_udf_jdbc"] = round(one["spark_udf_jdbc"]["seconds"] / one["ours"]["seconds"], 3)
        one["ratio"] = round(one["floor"]["seconds"] / one["ours"]["seconds"], 3)
        rounds.append(one)
        log(f"round {r + 1}/{args.rounds}: {one}")

    def median(path: str, field: str = "seconds") -> float:
        return round(statistics.median(x[path][field] for x in rounds), 2)

    phases = ("seconds", "startup_seconds", "score_seconds", "publish_seconds", "busy_core_seconds")
    result: dict[str, Any] = {
        "ratio": round(statistics.median(x["ratio"] for x in rounds), 3),
        "target": 0.8,
        "floor": {k: median("floor", k) for k in ("seconds", "busy_core_seconds")},
        "ours": {k: median("ours", k) for k in phases},
        "rows": args.rows,
        "rounds": rounds,
        "model": f"{settings.spec().name} champion",
        "spark_master": settings.spark_master,
        "command": "python " + " ".join([f"bench/{Path(__file__).name}", *sys.argv[1:]]).replace(
            str(args.home), "$HOME_DIR"),
        "date": date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    if with_jdbc:
        result["spark_udf_jdbc"] = {k: median("spark_udf_jdbc", k) for k in ("seconds", "busy_core_seconds")}
        result["speedup_vs_spark_udf_jdbc"] = round(statistics.median(x["speedup_vs_spark_udf_jdbc"]
                                                                      for x in rounds), 3)
    peers = json.loads(args.out.read_text()) if args.out.exists() else {}
    peers["score_cold_vs_floor"] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(peers, indent=2) + "\n")
    log(f"score_cold_vs_floor {result['ratio']} (floor {result['floor']['seconds']} s, ours "
        f"{result['ours']['seconds']} s) -> {args.out}")


if __name__ == "__main__":
    main()
