"""The catalogue of corrupted partitions: what is done to a clean day's rows, and what the run must say.

Each case takes the clean partition of its dataset's day and returns a corrupted copy; validation must
stop the run with a message holding every fragment of `named` (the expectation, the column, and where
it helps the offending value). tests/integration/test_validation.py runs every case through
jobs.validate; bench/corrupted_data.py does too and writes the table of docs/corrupted-data.md.

Two datasets: `tiny` (its 60 rows of 2013-02-10; label "yes"/"no") and `orders` (tests/datasets.py: 200 orders
of 2024-03-10 with an event timestamp, `ordered_at`, and a 0/1 target whose positive is the integer 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

DAYS = {"tiny": date(2013, 2, 10), "orders": date(2024, 3, 10)}


@dataclass(frozen=True)
class Corruption:
    name: str
    done: str  # what was done to the data, in words
    corrupt: Callable[[pd.DataFrame], pd.DataFrame]  # the clean partition (not modified) -> the corrupted one
    named: tuple[str, ...]  # what the message must hold
    dataset: str = "tiny"

    @property
    def day(self) -> date:
        return DAYS[self.dataset]


def home_env(dataset: str, folder: Path) -> dict[str, str]:
    """Environment of a fresh home under `folder` on `dataset` (orders' spec and CSV written there too)."""
    from tests.conftest import tiny_env
    from tests.datasets import write_orders

    if dataset == "tiny":
        return tiny_env(folder / "home")
    specs = write_orders(folder / "specs")
    return tiny_env(folder / "home", NIGHTSHIFT_DATASET=dataset, NIGHTSHIFT_SPEC_DIR=str(specs))


def _with(column: str, value: object, rows: slice = slice(None)) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        f = frame.copy()
        f.loc[rows, column] = value
        return f
    return corrupt


def _map(column: str, how: Callable[[pd.Series], pd.Series]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        f = frame.copy()
        f[column] = how(f[column])
        return f
    return corrupt


def _one_inf_in_1200(frame: pd.DataFrame) -> pd.DataFrame:
    # 1 of 1,200 rows: within range_mostly (0.99), which alone would let it through
    f = pd.concat([frame.assign(id=frame["id"] + f"-{i}") for i in range(20)], ignore_index=True)
    f.loc[3, "x1"] = np.inf
    return f


def _infinite_target(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f["label"] = np.where(f["label"] == "yes", 1.0, 0.0)
    f.loc[2, "label"] = -np.inf
    return f


def _duplicate_keys(frame: pd.DataFrame) -> pd.DataFrame:
    f = frame.copy()
    f.loc[1:5, "id"] = f.loc[0, "id"]
    return f


TS = "ordered_at"

CASES: list[Corruption] = [
    Corruption("missing column", "column `x2` dropped", lambda f: f.drop(columns=["x2"]),
               ("expect_column_to_exist on column 'x2': the column is missing",)),
    Corruption("wrong type", "numeric `x1` written as the text `n/a`", _with("x1", "n/a"),
               ("expect_column_values_to_be_in_type_list on column 'x1'",)),
    Corruption("nulls over the limit", "half of `x2` null (the spec allows 10%)", _with("x2", np.nan, slice(None, 30)),
               ("expect_column_values_to_not_be_null on column 'x2'",)),
    Corruption("duplicate entity keys", "rows 1-5 given row 0's `id`", _duplicate_keys,
               ("expect_column_values_to_be_unique on column 'id'",)),
    Corruption("empty partition", "every row removed", lambda f: f.iloc[0:0],
               ("expect_table_row_count_to_be_between: observed 0",)),
    Corruption("out-of-range values", "11 values of `x1` set to 1,000,000 (range -12..12)",
               _with("x1", 1e6, slice(None, 10)),
               ("expect_column_values_to_be_between on column 'x1'", "1000000.0")),
    Corruption("unknown category flood", "a third of `segment` set to `never-seen`",
               _with("segment", "never-seen", slice(None, 20)),
               ("expect_column_values_to_be_in_set on column 'segment'", "never-seen")),
    Corruption("one infinite value", "the day grown to 1,200 rows, one `x1` set to +inf", _one_inf_in_1200,
               ("expect_column_values_to_be_between on column 'x1'", "inf")),
    Corruption("target of another kind", "label written as 1/0 numbers; the spec's positive is `\"yes\"`",
               _map("label", lambda s: (s == "yes").astype(int)),
               ("expect_column_values_to_be_in_type_list on column 'label'",)),
    Corruption("a third target value", "5 labels set to the text `None`", _with("label", "None", slice(None, 4)),
               ("expect_column_unique_value_count_to_be_between on column 'label'",)),
    Corruption("infinite target", "label as 1.0/0.0 with one -inf", _infinite_target,
               ("expect_column_unique_value_count_to_be_between on column 'label'",)),
    Corruption("null entity keys", "3 `id`s null", _with("id", None, slice(None, 2)),
               ("expect_column_values_to_not_be_null on column 'id'",)),
    Corruption("rows of another date", "6 rows dated the next day", _with("day", "2013-02-11", slice(None, 5)),
               ("expect_column_values_to_be_in_set on column 'day'", "2013-02-11")),
    Corruption("dates as dd/mm/yyyy", "`day` written as 10/02/2013", _with("day", "10/02/2013"),
               ("expect_column_values_to_be_in_set on column 'day'", "10/02/2013")),
    Corruption("constant numeric feature", "`x2` stuck at 42.0 all day", _with("x2", 42.0),
               ("expect_column_unique_value_count_to_be_between on column 'x2'", "observed 1")),
    Corruption("constant categorical feature", "`region` filled with `north` all day", _with("region", "north"),
               ("expect_column_unique_value_count_to_be_between on column 'region'", "observed 1")),
    Corruption("target as text 0/1", "`returned` written as the text `\"0\"`/`\"1\"`; the spec's positive is the "
               "integer 1", _map("returned", lambda s: s.astype(str)),
               ("expect_column_values_to_be_in_type_list on column 'returned'", "'1'"), dataset="orders"),
    Corruption("event times in another time zone", "`ordered_at` given the zone Europe/Paris",
               _map(TS, lambda s: s.dt.tz_localize("Europe/Paris")),
               (f"expect_column_values_to_be_in_type_list on column '{TS}'", "Europe/Paris"), dataset="orders"),
    Corruption("event times as text", "`ordered_at` written as text (`2024-03-10 13:45:07`)",
               _map(TS, lambda s: s.dt.strftime("%Y-%m-%d %H:%M:%S")),
               (f"expect_column_values_to_be_in_type_list on column '{TS}'", "dtype object"), dataset="orders"),
    Corruption("event times as epoch seconds", "`ordered_at` written as integer seconds since 1970",
               _map(TS, lambda s: s.astype("datetime64[s]").astype("int64")),
               (f"expect_column_values_to_be_in_type_list on column '{TS}'", "observed 'int64'"), dataset="orders"),
    Corruption("event times of another day", "`ordered_at` shifted 6 hours (UTC written as local time): the "
               "evening's orders fall on the next day", _map(TS, lambda s: s + pd.Timedelta(hours=6)),
               (f"expect_column_values_to_be_between on column '{TS}'", "2024-03-11"), dataset="orders"),
    Corruption("null event times", "a fifth of `ordered_at` null (the spec allows 5%)",
               _with(TS, pd.NaT, slice(None, 39)),
               (f"expect_column_values_to_not_be_null on column '{TS}'",), dataset="orders"),
]
