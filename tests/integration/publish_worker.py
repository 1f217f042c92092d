"""Write and publish one prediction snapshot in its own process (killed mid-write by the tests).

    python publish_worker.py STORE_URL RUN_ID ROWS MARKER [BATCH_DELAY_S] [hold]

Every row's score is MARKER, so a reader can tell which snapshot answered. Prints WRITING after the
first batch is in the store and PUBLISHED <id> at the end. With `hold`, it then waits for a line on
stdin before writing on: a test kills it there, mid-write for certain (a handshake, not a sleep).
"""

import sys
import time

import pyarrow as pa

from nightshift import predstore, store

url, run_id, rows, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
delay = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
hold = len(sys.argv) > 6 and sys.argv[6] == "hold"
engine = store.get_engine(url)
snapshot_id = predstore.begin_snapshot(engine, dataset="d", run_id=run_id, model_name="m", model_version="1",
                                       model_run_id=None, data_start=None, data_end=None)


def batches(size: int = 2000):  # type: ignore[no-untyped-def]
    for start in range(0, rows, size):
        n = min(size, rows - start)
        yield pa.record_batch({"entity_key": [f"k{i:07d}" for i in range(start, start + n)],
                               "score": pa.array([marker] * n, pa.float32()), "label": [marker >= 0.5] * n})
        if start == size:  # the first batch is in the store
            print("WRITING", snapshot_id, flush=True)
            if hold:
                sys.stdin.readline()
        time.sleep(delay)


predstore.write_rows(engine, snapshot_id, batches(), streams=1, chunk_rows=2000)
snap = predstore.publish(engine, snapshot_id, actor="worker", reason=f"marker {marker}", retention=10)
print("PUBLISHED", snap["id"], flush=True)
