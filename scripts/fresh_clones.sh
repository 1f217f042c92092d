#!/usr/bin/env bash
# `make up` from N fresh clones in a row, as a new user meets it: each clone (with its own .venv and
# .nightshift) is made from this checkout's HEAD, brought up, checked (every service alive, every
# advertised URL 200: `stack.sh check`), brought down, checked for leftover processes, and deleted.
#   bash scripts/fresh_clones.sh [N]      (default 3; prints one line per clone with its wall time;
#                                         DATASET=tiny or NIGHTSHIFT_SPEC_DIR=... pass through to make up)
# Exits 1 at the first clone that fails, leaving it in place with its logs. When all N passed, records
# their `make up` wall times in bench/results/startup.json of this checkout, under the dataset's name
# (DATASET, default flights; one entry per dataset, replaced by the next run of the same dataset).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-3}"
walls=()
commits=()
for i in $(seq 1 "$N"); do
  dir="$(mktemp -d)/nightshift"
  git clone -q "$ROOT" "$dir"
  commits+=("$(git -C "$dir" rev-parse --short HEAD)")
  start=$SECONDS
  if ! (cd "$dir" && make up > up.log 2>&1); then
    echo "clone $i: make up FAILED after $((SECONDS - start)) s; see $dir/up.log"; tail -n 30 "$dir/up.log"; exit 1
  fi
  wall=$((SECONDS - start))
  grep -q "^Nightshift is up" "$dir/up.log" || { echo "clone $i: no banner; see $dir/up.log"; exit 1; }
  (cd "$dir" && bash infra/local/stack.sh check) > "$dir/check.log" 2>&1 \
    || { echo "clone $i: check failed after make up:"; cat "$dir/check.log"; exit 1; }
  # Secrets: files only the owner reads, and no service but Airflow's holds them in its environment.
  for f in "$dir/.nightshift/secrets.env" "$dir/.nightshift/airflow/simple_auth_manager_passwords.json.generated"; do
    [ "$(stat -c %a "$f")" = 600 ] || { echo "clone $i: $f is mode $(stat -c %a "$f"), not 600"; exit 1; }
  done
  for svc in lookup-api realtime-api mlflow-ui; do
    if tr '\0' '\n' < "/proc/$(cat "$dir/.nightshift/run/$svc.pid")/environ" | grep -qE '^(NIGHTSHIFT_AIRFLOW_PASSWORD|AIRFLOW__API_AUTH__JWT_SECRET)='; then
      echo "clone $i: $svc holds an Airflow secret in its environment"; exit 1
    fi
  done
  (cd "$dir" && make down > down.log 2>&1)
  left="$(pgrep -af -- "$dir" || true)"
  [ -z "$left" ] || { echo "clone $i: processes left after make down:"; echo "$left"; exit 1; }
  echo "clone $i: make up ${wall} s ($((wall / 60)) min $((wall % 60)) s), banner, $(grep -c '^200 ' "$dir/check.log") URLs 200, secrets 0600 and out of the services' environments, make down left no process"
  rm -rf "$(dirname "$dir")"
  walls+=("$wall")
done
python3 - "$ROOT/bench/results/startup.json" "${DATASET:-flights}" "${NIGHTSHIFT_SPEC_DIR:+own spec folder}" \
  "$(IFS=,; echo "${commits[*]}")" "${walls[@]}" <<'EOF'
import json
import os
import platform
import statistics
import sys
from datetime import date
from pathlib import Path

out, dataset, spec, commit = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
walls = [int(w) for w in sys.argv[5:]]
data = json.loads(out.read_text()) if out.exists() else {}
data.update({"command": "bash scripts/fresh_clones.sh [N]",
             "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"})
data.setdefault("datasets", {})[dataset] = {
    "make_up_seconds": walls, "make_up_seconds_median": statistics.median(walls), "clones": len(walls),
    "spec": spec or "packaged", "commits": commit.split(","), "date": date.today().isoformat()}
out.write_text(json.dumps(data, indent=2) + "\n")
print(f"wrote {out}: {dataset} {walls}")
EOF
