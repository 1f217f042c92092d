"""Drift check wall time on 1 million rows x every monitored feature of the flights spec.

    .venv/bin/python bench/drift_bench.py --home $HOME_DIR [--replay docs/replay/replay.md ...]

Needs a Nightshift home with the 2013 flights ingested and a champion (`nightshift init && nightshift ingest 2013-01-01
--end 2013-12-30 && nightshift run 2013-02-28` with NIGHTSHIFT_HOME set). The 1,000,000 current rows
are the year's flights repeated with new entity keys; the reference is the champion's training window
(its 56 days). Timed, in one process after a warm-up: the calibration of the champion's thresholds on
its own days (what its first drift check adds, jobs/drift.calibrate_reference), then per check the
champion scoring the rows (prediction drift needs the day's scores) and the Evidently report over all
monitored features and the score with the calibrated thresholds (jobs/drift.judge_day, HTML
included). Median of --rounds. Writes bench/results/drift.json, and
copies the replays' seconds per simulated day from their summaries (--replay, one per replay).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replay", type=Path, action="append", default=[])
    args = parser.parse_args()
    os.environ["NIGHTSHIFT_HOME"] = str(args.home)
    os.environ.setdefault("NIGHTSHIFT_DATASET", "flights")

    import mlflow
    import numpy as np
    import pandas as pd

    from jobs.context import Pipeline
    from jobs.drift import DAY, calibrate_reference, features_of, judge_day, policy_of, reference
    from nightshift import offline
    from nightshift.settings import get_settings
    from registry import aliases
    from validation.drift import SCORE

    s = get_settings()
    spec = s.spec()
    ctx = Pipeline.of(spec.name, s)
    s = ctx.settings
    client, name = ctx.client, ctx.model_name
    champion = aliases.alias_version(client, name, aliases.CHAMPION)
    assert champion, f"no champion of {name} under {args.home}"
    model = mlflow.pyfunc.load_model(f"models:/{name}/{champion}")
    ref, cal, how = reference(ctx, champion, model)
    calibrations = []
    for _ in range(args.rounds):  # what the first check of a champion adds: its thresholds from its own days
        t0 = time.perf_counter()
        calibrate_reference(spec, s, ref, cal.row_fraction)
        calibrations.append(time.perf_counter() - t0)
    print(how, f"calibration {statistics.median(calibrations):.2f} s", flush=True)
    ref = ref.drop(columns=[DAY])
    year, _ = offline.read_days(s.offline_dir, spec.name, offline.days(date(2013, 1, 1), date(2013, 12, 30)))
    copies = -(-args.rows // len(year))
    raw = pd.concat([year.assign(**{spec.entity_key: year[spec.entity_key] + f"-{i}"}) for i in range(copies)],
                    ignore_index=True).head(args.rows)
    policy = policy_of(s)

    def once(html: Path) -> dict[str, float]:
        t0 = time.perf_counter()
        current = features_of(spec, raw)
        current[SCORE] = np.asarray(model.predict(raw[spec.raw_inputs]), dtype=float)
        t1 = time.perf_counter()
        found = judge_day(spec, s, policy, ref, current, cal, html=html)
        t2 = time.perf_counter()
        return {"total": t2 - t0, "score_rows": t1 - t0, "evidently_report": t2 - t1,
                "drifted_features": len(found.drifted), "html_bytes": html.stat().st_size}

    with tempfile.TemporaryDirectory() as tmp:
        once(Path(tmp) / "warm.html")  # imports, first-call costs
        rounds = [once(Path(tmp) / f"r{i}.html") for i in range(args.rounds)]
        for r in rounds:
            print({k: round(v, 2) for k, v in r.items()}, flush=True)

    out: dict[str, Any] = {
        "command": "bench/drift_bench.py " + " ".join(f"--{k} {v}" for k, v in [
            ("home", "$HOME_DIR"), ("rows", args.rows), ("rounds", args.rounds)]
            + [("replay", p) for p in args.replay]),
        "date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {platform.processor() or 'cpu'}",
        "rows": len(raw), "features": len(cal.features), "reference_rows": len(ref),
        "reference_days": cal.samples, "calibration_seconds": round(statistics.median(calibrations), 2),
        "model": f"{name} v{champion}",
        "drift_seconds_1m": round(statistics.median(r["total"] for r in rounds), 2),
        "score_seconds_1m": round(statistics.median(r["score_rows"] for r in rounds), 2),
        "evidently_seconds_1m": round(statistics.median(r["evidently_report"] for r in rounds), 2),
        "rounds": rounds,
    }
    replays = {}
    for path in args.replay:
        text = path.read_text()
        made = re.search(r"Made by `([^`]+)` \(([\d.]+) s per simulated day\)", text)
        if made:
            replays[made.group(1)] = float(made.group(2))
    if replays:
        out["replay_seconds_per_day"] = replays
    path = ROOT / "bench" / "results" / "drift.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "rounds"}, indent=2))


if __name__ == "__main__":
    main()
