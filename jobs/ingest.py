"""Ingest: a day's rows of the dataset's source into its offline-store partition."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from jobs.context import Pipeline
from nightshift import offline


def ingest(ctx: Pipeline, start: date, end: date | None = None, *, log: Any = print) -> dict[str, Any]:
    """Write the partitions of start..end (default: start only), replacing what was there."""
    settings, spec = ctx.settings, ctx.spec
    end = end or start
    t0 = time.perf_counter()
    source = offline.load_source(spec, cache_dir=settings.home / "cache")
    dates = source[spec.date_column]
    written: dict[str, int] = {}
    for day in offline.days(start, end):
        rows = source[dates == day.isoformat()]
        if rows.empty and start == end:
            first, last = dates.min(), dates.max()
            raise ValueError(f"{spec.name} has no rows for {day.isoformat()}; the source covers {first}..{last}")
        offline.write_partition(settings.offline_dir, spec.name, day, rows.reset_index(drop=True))
        written[day.isoformat()] = len(rows)
    total = sum(written.values())
    log(f"ingested {total} rows of {spec.name} into {len(written)} partition(s) under {settings.offline_dir}")
    return {"dataset": spec.name, "days": len(written), "rows": total, "seconds": time.perf_counter() - t0}
