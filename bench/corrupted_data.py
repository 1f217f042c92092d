"""Every corrupted partition of tests/corruptions.py through the real validation step: the table of what the run
stops with.

    .venv/bin/python bench/corrupted_data.py

For each dataset of the catalogue, a fresh home in a temporary folder (as the tests make one: `init_home`,
then `ingest` of the day) whose clean day must pass; then for each case the corrupted rows are written over
the day's partition, `jobs.validate.validate` runs, and the message it stops with is kept (the clean rows are
put back after). Writes docs/corrupted-data.md (a table: case, what was done, the message's first lines) and
bench/results/corrupted_data.json; exits 1 when a case was let through or its message lacks what the
catalogue says it must name.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy

COMMAND = ".venv/bin/python bench/corrupted_data.py"


def run_cases(folder: Path) -> list[dict[str, Any]]:
    """Each case's outcome: stopped or not, the message, whether it names what the catalogue says."""
    from jobs.context import Pipeline
    from jobs.ingest import ingest
    from jobs.validate import validate
    from nightshift import offline
    from nightshift.settings import get_settings
    from tests.conftest import init_home
    from tests.corruptions import CASES, home_env
    from validation.suite import ValidationFailed

    out = []
    for dataset in dict.fromkeys(c.dataset for c in CASES):
        os.environ.update(home_env(dataset, folder / dataset))
        get_settings.cache_clear()
        ctx = Pipeline(init_home(get_settings()))
        cases = [c for c in CASES if c.dataset == dataset]
        ingest(ctx, cases[0].day, log=lambda *_: None)
        for case in cases:
            clean = offline.read_partition(ctx.settings.offline_dir, dataset, case.day)
            validate(ctx, case.day, log=lambda *_: None)  # the clean day passes, or this raises
            offline.write_partition(ctx.settings.offline_dir, dataset, case.day, case.corrupt(clean))
            try:
                validate(ctx, case.day, log=lambda *_: None)
                message = ""
            except ValidationFailed as exc:
                message = str(exc)
            offline.write_partition(ctx.settings.offline_dir, dataset, case.day, clean)
            lines = [line for line in message.splitlines() if not line.startswith("Data Docs:")]
            out.append({"name": case.name, "dataset": dataset, "day": case.day.isoformat(), "done": case.done,
                        "stopped": bool(message), "named": bool(message) and all(t in message for t in case.named),
                        "message": lines})
            print(f"{'stopped' if message else 'LET THROUGH'}: {case.name}", flush=True)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: list[dict[str, Any]]) -> str:
    """docs/corrupted-data.md: the command, then one row per case."""
    stopped = sum(r["stopped"] for r in results)
    head = f"""# Corrupted data: what the run stops with

Command: `{COMMAND}` (writes this file and bench/results/corrupted_data.json).

The cases are tests/corruptions.py's, the catalogue tests/integration/test_validation.py runs too.
Each case corrupts one clean day's partition in the offline store, then runs the validation step
(`jobs.validate.validate`, the step of `nightly` that comes before training); the run stops with
`ValidationFailed` and nothing is trained or promoted. Datasets: `tiny` (60 rows of 2013-02-10, label
`"yes"`/`"no"`) and `orders` (200 orders of 2024-03-10 with an event timestamp `ordered_at` and a 0/1 target;
its spec is docs/spec.md's worked example plus `event_timestamp`). The message's Data Docs line is left out.

{stopped} of {len(results)} cases stopped the run.

| case | what was done to the data | the message the run stops with (first lines) |
| --- | --- | --- |
"""
    rows = []
    for r in results:
        lines = r["message"][:4] + (["..."] if len(r["message"]) > 4 else []) if r["stopped"] else ["LET THROUGH"]
        shown = "<br>".join(f"`` {_cell(line.strip())} ``" for line in lines)
        rows.append(f"| {_cell(r['name'])} ({r['dataset']}) | {_cell(r['done'])} | {shown} |")
    return head + "\n".join(rows) + "\n"


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="nightshift-corrupted-") as tmp:
        results = run_cases(Path(tmp))
    (ROOT / "docs" / "corrupted-data.md").write_text(markdown(results))
    summary = {"command": COMMAND, "cases": len(results), "stopped": sum(r["stopped"] for r in results),
               "named": sum(r["named"] for r in results), "cases_list": results}
    path = ROOT / "bench" / "results" / "corrupted_data.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{summary['stopped']} of {summary['cases']} stopped, {summary['named']} named as the catalogue says; "
          f"wrote docs/corrupted-data.md and {path.relative_to(ROOT)}")
    return 0 if summary["named"] == summary["cases"] else 1


if __name__ == "__main__":
    sys.exit(main())
