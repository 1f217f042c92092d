#!/usr/bin/env bash
# The test command's wall time from a fresh clone, as CI runs it: `CI=true bash .ci/run` (`make test`:
# install from the pip cache, ruff, lint-imports, mypy, pytest in two xdist workers).
#   bash bench/ci_time.sh          (run it with nothing heavy beside it; ~20 min on 2 cores)
# Clones this checkout's HEAD into a temporary folder, runs the command there with pytest's ten slowest
# tests reported (PYTEST_ADDOPTS=--durations=10), and writes bench/results/ci.json in THIS checkout:
# the total wall time, pytest's own time and its passed / skipped / failed counts, and the slowest tests.
# The clone is deleted when the command passed; a failing one is left in place with its log.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/bench/results/ci.json"
d="$(mktemp -d)/nightshift"
git clone -q "$ROOT" "$d"
commit="$(git -C "$d" rev-parse --short HEAD)"
start=$SECONDS
set +e
(cd "$d" && CI=true PYTEST_ADDOPTS="--durations=10" bash .ci/run) 2>&1 | tee "$d/ci.log"
rc=${PIPESTATUS[0]}
set -e
wall=$((SECONDS - start))
python3 - "$d/ci.log" "$OUT" "$wall" "$rc" "$commit" <<'EOF'
import json
import os
import platform
import re
import sys

log, out, wall, rc, commit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
text = open(log, encoding="utf-8", errors="replace").read()
# pytest's summary line, e.g. "187 passed, 3 skipped in 983.12s (0:16:23)"
summary = [m for m in re.finditer(r"^=*\s*((?:\d+ \w+(?:, )?)+) in ([\d.]+)s", text, re.M)]
counts, pytest_s = {}, None
if summary:
    last = summary[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", last.group(1))}
    pytest_s = float(last.group(2))
slowest = [{"seconds": float(s), "phase": phase, "test": test}
           for s, phase, test in re.findall(r"^([\d.]+)s (call|setup|teardown)\s+(.+?)\s*$", text, re.M)]
result = {
    "command": 'd=$(mktemp -d) && git clone -q . "$d" && cd "$d" && CI=true bash .ci/run',
    "script": "bash bench/ci_time.sh",
    "commit": commit,
    "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    "exit_code": rc,
    "total_seconds": wall,
    "pytest_seconds": pytest_s,
    "passed": counts.get("passed", 0),
    "skipped": counts.get("skipped", 0),
    "failed": counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0),
    "slowest_tests": slowest,
}
with open(out, "w", encoding="utf-8") as f:
    f.write(json.dumps(result, indent=2) + "\n")
print(f"wrote {out}: {wall} s in all, pytest {pytest_s} s, {counts}")
EOF
if [ "$rc" -eq 0 ]; then rm -rf "$(dirname "$d")"; else echo "CI run failed (exit $rc); see $d/ci.log"; fi
exit "$rc"
