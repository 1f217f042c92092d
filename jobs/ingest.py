"""Ingest: a day's rows of the dataset's source into its offline-store partition."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from jobs.context import Pipeline
from nightshift import offline


def source_dates(ctx: Pipeline) -> tuple[date, date]:
    """The first and last data dates of the dataset's source that lie within its schedule window."""
    s, spec = ctx.settings, ctx.spec
    dates = offline.load_source(spec, cache_dir=s.home / "cache")[spec.date_column].dropna()
    inside = dates[(dates >= (s.schedule_start or date.min).isoformat())
                   & (dates <= (s.schedule_end or date.max).isoformat())]
    if dates.empty:
        raise ValueError(f"the {spec.name} source is empty")
    if inside.empty:
        raise ValueError(f"the {spec.name} source has no rows in its schedule window {s.schedule_window()} "
                         f"(it covers {dates.min()}..{dates.max()})")
    return date.fromisoformat(inside.min()), date.fromisoformat(inside.max())


def ingest(ctx: Pipeline, start: date | None = None, end: date | None = None, *, log: Any = print
           ) -> dict[str, Any]:
    """Write the partitions of start..end (default: start only; no start: the source's whole range in the
    schedule window), replacing what was there.

    Only days the source has rows for are written: a date the source does not have is reported and
    no partition is made for it (an empty one would fail validation); when none of the asked dates
    exists, nothing is written and the error names the dates the source covers.
    """
    settings, spec = ctx.settings, ctx.spec
    t0 = time.perf_counter()
    if start is None:
        start, end = source_dates(ctx)
    end = end or start
    if end < start:
        raise ValueError(f"the range {start}..{end} ends before it starts")
    source = offline.load_source(spec, cache_dir=settings.home / "cache")
    dates = source[spec.date_column]
    by_day = {day: rows for day, rows in source.groupby(dates, sort=False)}
    wanted = offline.days(start, end)
    missing = [d for d in wanted if d.isoformat() not in by_day]
    if len(missing) == len(wanted):
        covers = f"{dates.min()}..{dates.max()}" if len(dates) else "no dates at all"
        raise ValueError(f"the {spec.name} source has no rows for {start}" + (f"..{end}" if end != start else "")
                         + f"; it covers {covers}; nothing was written")
    written: dict[str, int] = {}
    for day in wanted:
        rows = by_day.get(day.isoformat())
        if rows is not None:
            offline.write_partition(settings.offline_dir, spec.name, day, rows.reset_index(drop=True))
            written[day.isoformat()] = len(rows)
    total = sum(written.values())
    log(f"ingested {total} rows of {spec.name} into {len(written)} partition(s) ({start}..{end}) under "
        f"{settings.offline_dir}")
    if missing:
        shown = ", ".join(d.isoformat() for d in missing[:10]) + (f" and {len(missing) - 10} more"
                                                                   if len(missing) > 10 else "")
        log(f"the source has no rows for {len(missing)} of those dates (no partition written): {shown}")
    return {"dataset": spec.name, "days": len(written), "rows": total, "missing": [d.isoformat() for d in missing],
            "first": start.isoformat(), "last": end.isoformat(), "seconds": time.perf_counter() - t0}
