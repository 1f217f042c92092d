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
    return pd.DataFrame(
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


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "nightshift" / "data" / "tiny.csv"
    make().to_csv(out, index=False)
    print(f"wrote {out}")
