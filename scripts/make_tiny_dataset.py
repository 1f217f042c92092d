"""Regenerate nightshift/data/tiny.csv: the small synthetic dataset the tests run on."""

from pathlib import Path

import numpy as np
import pandas as pd


def make(days: int = 90, per_day: int = 60, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2013-01-01", periods=days, freq="D")
    n = days * per_day
    date = np.repeat(dates, per_day)
    segment = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    region = rng.choice(["north", "south"], size=n)
    x1 = rng.normal(0, 2, size=n).round(3)
    x2 = rng.uniform(0, 100, size=n).round(2)
    x2[rng.random(n) < 0.01] = np.nan
    effect = pd.Series(segment).map({"a": -1.0, "b": 0.0, "c": 0.5, "d": 1.5}).to_numpy()
    logit = 0.9 * x1 + effect + 0.02 * (x2 - 50) * (region == "north") - 0.5
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-np.nan_to_num(logit))), "yes", "no")
    frame = pd.DataFrame(
        {
            "id": [f"t{i:06d}" for i in range(n)],
            "day": pd.DatetimeIndex(date).strftime("%Y-%m-%d"),
            "segment": segment,
            "region": region,
            "x1": x1,
            "x2": x2,
            "label": label,
        }
    )
    return seasonal(frame, seed=seed + 1)


def seasonal(frame: pd.DataFrame, seed: int, start: str = "2013-02-21", ramp_days: int = 10) -> pd.DataFrame:
    """Drift from `start`, growing over `ramp_days`: x1 moves up and matters less, segment d grows, and
    x2, which mattered a little in the north, comes to matter a lot everywhere (the other way), so a
    model trained before `start` ranks rows worse (loses AUC) until it is retrained on the new data.

    Rows before `start` are left exactly as they were (their own random stream is untouched).
    """
    rng = np.random.default_rng(seed)
    days = (pd.to_datetime(frame["day"]) - pd.Timestamp(start)).dt.days.to_numpy()
    late = days >= 0
    n = int(late.sum())
    w = np.clip((days[late] + 1) / ramp_days, 0, 1)  # 0..1: how far the drift has gone
    out = frame.copy()
    x1 = (out.loc[late, "x1"].to_numpy() + 3.0 * w).round(3)
    swap = rng.random(n) < 0.35 * w
    segment = np.where(swap, "d", out.loc[late, "segment"].to_numpy())
    region = out.loc[late, "region"].to_numpy()
    x2 = out.loc[late, "x2"].to_numpy()
    effect = pd.Series(segment).map({"a": -1.0, "b": 0.0, "c": 0.5, "d": 1.5}).to_numpy()
    north = (1 - w) * 0.02 * (x2 - 50) * (region == "north")
    everywhere = w * -0.06 * (x2 - 50)
    logit = 0.9 * (1 - 0.6 * w) * (x1 - 3.0 * w) + effect + north + everywhere - 0.5 - 0.6 * w * (segment == "d")
    out.loc[late, "x1"] = x1
    out.loc[late, "segment"] = segment
    out.loc[late, "label"] = np.where(rng.random(n) < 1 / (1 + np.exp(-np.nan_to_num(logit))), "yes", "no")
    return out


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "nightshift" / "data" / "tiny.csv"
    make().to_csv(out, index=False)
    print(f"wrote {out}")
