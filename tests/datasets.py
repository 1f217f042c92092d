"""A third dataset for the tests, "shop": the worked example of docs/spec.md (its YAML taken from there
verbatim) with a synthetic CSV of 30 days x 200 orders, an integer-coded categorical among its features;
and "orders", the same with each order's time as the spec's `event_timestamp`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from nightshift.specdoc import EXAMPLE

DAYS = pd.date_range("2024-03-01", "2024-03-30", freq="D")
ROWS_PER_DAY = 200


def shop_frame(seed: int = 7) -> pd.DataFrame:
    """30 days x 200 orders; `returned` depends on basket, items, channel and membership (AUC well above 0.6)."""
    rng = np.random.default_rng(seed)
    n = len(DAYS) * ROWS_PER_DAY
    basket = rng.gamma(2.0, 40.0, n).round(2)
    items = rng.integers(1, 12, n)
    channel = rng.choice(["web", "app", "store"], n, p=[0.5, 0.3, 0.2])
    member = rng.integers(0, 2, n)
    logit = -1.2 + 0.012 * basket - 0.15 * items + np.select([channel == "web", channel == "app"], [0.9, 0.3], -1.0) \
        - 0.9 * member
    returned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({
        "order_id": [f"o-{i:06d}" for i in range(n)],
        "day": np.repeat(DAYS.strftime("%Y-%m-%d"), ROWS_PER_DAY),
        "basket_eur": basket, "items": items, "channel": channel, "is_member": member, "returned": returned})


def _example_yaml() -> str:
    block = re.search(r"```yaml\n(.*?)```", EXAMPLE, re.S)
    assert block is not None, "docs/spec.md's worked example lost its YAML"
    return block.group(1)


def write_shop(folder: Path) -> Path:
    """shop.yaml (docs/spec.md's example) and shop.csv in `folder`; returns the folder (a NIGHTSHIFT_SPEC_DIR)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shop.yaml").write_text(_example_yaml())
    shop_frame().to_csv(folder / "shop.csv", index=False)
    return folder


def write_orders(folder: Path) -> Path:
    """orders.yaml (shop with `event_timestamp: ordered_at`) and orders.csv, whose `ordered_at` is text as a CSV
    holds it (`2024-03-01 13:45:07`, the day's wall clock); returns the folder (a NIGHTSHIFT_SPEC_DIR)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = yaml.safe_load(_example_yaml())
    spec.update(name="orders", description="shop with each order's time", source={"path": "orders.csv"},
                event_timestamp="ordered_at")
    (folder / "orders.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    frame = shop_frame()
    seconds = np.random.default_rng(11).integers(0, 86_400, len(frame))
    frame.insert(2, "ordered_at", (pd.to_datetime(frame["day"]) + pd.to_timedelta(seconds, unit="s"))
                 .dt.strftime("%Y-%m-%d %H:%M:%S"))
    frame.to_csv(folder / "orders.csv", index=False)
    return folder
