"""Data tests: corrupted partitions stop the run at validation with a message naming the problem."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from jobs.context import Pipeline
from jobs.validate import validate
from nightshift import offline
from nightshift.settings import Settings
from validation.suite import ValidationFailed

DAY = date(2013, 2, 10)


def corrupt(frame: pd.DataFrame, how: str) -> pd.DataFrame:
    f = frame.copy()
    if how == "missing column":
        return f.drop(columns=["x2"])
    if how == "wrong type":
        f["x1"] = "n/a"
        return f
    if how == "nulls over the limit":
        f.loc[: len(f) // 2, "x2"] = np.nan
        return f
    if how == "duplicate entity keys":
        f.loc[1:5, "id"] = f.loc[0, "id"]
        return f
    if how == "empty partition":
        return f.iloc[0:0]
    if how == "out-of-range values":
        f.loc[:10, "x1"] = 1e6
        return f
    if how == "unknown category flood":
        f.loc[: len(f) // 3, "segment"] = "never-seen"
        return f
    if how == "one infinite value":  # 1 of 1,200 rows: within range_mostly (0.99), which alone let it through
        f = pd.concat([f.assign(id=f["id"] + f"-{i}") for i in range(20)], ignore_index=True)
        f.loc[3, "x1"] = np.inf
        return f
    if how == "target of another kind":  # the label written as 1/0 numbers where the spec's positive is "yes"
        f["label"] = (f["label"] == "yes").astype(int)
        return f
    if how == "a third target value":
        f.loc[:4, "label"] = "None"
        return f
    if how == "infinite target":  # numbers with a -inf among them
        f["label"] = np.where(f["label"] == "yes", 1.0, 0.0)
        f.loc[2, "label"] = -np.inf
        return f
    if how == "null entity keys":
        f.loc[:2, "id"] = None
        return f
    if how == "rows of another date":
        f.loc[:5, "day"] = "2013-02-11"
        return f
    if how == "dates as dd/mm/yyyy":
        f["day"] = "10/02/2013"
        return f
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("missing column", ["expect_column_to_exist on column 'x2': the column is missing"]),
        ("wrong type", ["expect_column_values_to_be_in_type_list on column 'x1'"]),
        ("nulls over the limit", ["expect_column_values_to_not_be_null on column 'x2'"]),
        ("duplicate entity keys", ["expect_column_values_to_be_unique on column 'id'"]),
        ("empty partition", ["expect_table_row_count_to_be_between: observed 0"]),
        ("out-of-range values", ["expect_column_values_to_be_between on column 'x1'", "1000000.0"]),
        ("unknown category flood", ["expect_column_values_to_be_in_set on column 'segment'", "never-seen"]),
        ("one infinite value", ["expect_column_values_to_be_between on column 'x1'", "inf"]),
        ("target of another kind", ["expect_column_values_to_be_in_type_list on column 'label'"]),
        ("a third target value", ["expect_column_unique_value_count_to_be_between on column 'label'"]),
        ("infinite target", ["expect_column_unique_value_count_to_be_between on column 'label'"]),
        ("null entity keys", ["expect_column_values_to_not_be_null on column 'id'"]),
        ("rows of another date", ["expect_column_values_to_be_in_set on column 'day'", "2013-02-11"]),
        ("dates as dd/mm/yyyy", ["expect_column_values_to_be_in_set on column 'day'", "10/02/2013"]),
    ],
)
def test_corrupted_partition_fails_with_named_expectation(ingested: Settings, how: str, named: list[str]) -> None:
    good = offline.read_partition(ingested.offline_dir, "tiny", DAY)
    offline.write_partition(ingested.offline_dir, "tiny", DAY, corrupt(good, how))
    with pytest.raises(ValidationFailed) as err:
        validate(Pipeline(ingested), DAY, log=lambda *_: None)
    message = str(err.value)
    for text in named:
        assert text in message, message
    assert "Data Docs:" in message


def test_clean_partition_passes_and_keeps_data_docs(ingested: Settings) -> None:
    out = validate(Pipeline(ingested), DAY, log=lambda *_: None)
    assert out["passed"] and out["summary"].startswith("passed:")
    assert out["docs"].endswith("index.html")
    html = open(out["docs"]).read()
    assert "tiny_suite" in html or "Data Docs" in html
