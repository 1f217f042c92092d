"""Write and publish one prediction snapshot in its own process (killed at chosen steps by the tests).

    python publish_worker.py STORE_URL RUN_ID ROWS MARKER [--delay S] [--hold] [--retention N]

Every row's score is MARKER, so a reader can tell which snapshot answered. Prints WRITING <id> after
the first batch went to the store and PUBLISHED <id> at the end. With --hold, it then waits for a line
on stdin before writing on: a test kills it there, or takes a lock that a later step needs first (a
handshake, not a sleep). On PostgreSQL its connections carry application_name
`nightshift-publisher-<pid>`, so a test can also cut them as a crashed machine would.
"""

import argparse
import os
import time

import pyarrow as pa

from nightshift import predstore, store

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("run_id")
parser.add_argument("rows", type=int)
parser.add_argument("marker", type=float)
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--hold", action="store_true")
parser.add_argument("--retention", type=int, default=10)
args = parser.parse_args()

url = args.url
if url.startswith("postgresql"):
    url += ("&" if "?" in url else "?") + f"application_name=nightshift-publisher-{os.getpid()}"
engine = store.get_engine(url)
snapshot_id = predstore.begin_snapshot(engine, dataset="d", run_id=args.run_id, model_name="m", model_version="1",
                                       model_run_id=None, data_start=None, data_end=None)


def batches(size: int = 2000):  # type: ignore[no-untyped-def]
    for start in range(0, args.rows, size):
        n = min(size, args.rows - start)
        yield pa.record_batch({"entity_key": [f"k{i:07d}" for i in range(start, start + n)],
                               "score": pa.array([args.marker] * n, pa.float32()),
                               "label": [args.marker >= 0.5] * n})
        if start == size:  # the first batch went to the store
            print("WRITING", snapshot_id, flush=True)
            if args.hold:
                input()
        time.sleep(args.delay)


predstore.write_rows(engine, snapshot_id, batches(), streams=1, chunk_rows=2000)
snap = predstore.publish(engine, snapshot_id, actor="worker", reason=f"marker {args.marker}",
                         retention=args.retention)
print("PUBLISHED", snap["id"], flush=True)
