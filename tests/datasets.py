"""A third dataset for the tests, "shop": the worked example of docs/spec.md (its YAML taken from there
verbatim) with a synthetic CSV of 30 days x 200 orders, an integer-coded categorical among its features."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

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


def write_shop(folder: Path) -> Path:
    """shop.yaml (docs/spec.md's example) and shop.csv in `folder`; returns the folder (a NIGHTSHIFT_SPEC_DIR)."""
    folder.mkdir(parents=True, exist_ok=True)
    block = re.search(r"```yaml\n(.*?)```", EXAMPLE, re.S)
    assert block is not None, "docs/spec.md's worked example lost its YAML"
    (folder / "shop.yaml").write_text(block.group(1))
    shop_frame().to_csv(folder / "shop.csv", index=False)
    return folder
