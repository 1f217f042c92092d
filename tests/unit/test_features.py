"""The feature transform: fitted state, unknowns, nulls, derive hook, JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nightshift.features import Preprocessor
from nightshift.spec import load_spec


def reference_transform(pre: Preprocessor, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The transform's plain per-column definition, which the fast `transform` must equal."""
    frame = pre.derive(frame)
    num = np.empty((len(frame), len(pre.numeric)), dtype=np.float32)
    for j, col in enumerate(pre.numeric):
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        values = np.where(np.isnan(values), pre.medians[col], values)
        num[:, j] = (values - pre.means[col]) / pre.stds[col]
    cat = np.zeros((len(frame), len(pre.categorical)), dtype=np.int64)
    for j, col in enumerate(pre.categorical):
        codes = pd.Index(pre.vocab[col]).get_indexer(frame[col].astype("string").fillna("\0"))
        cat[:, j] = codes + 1
    return num, cat


def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"k{i}" for i in range(40)], "segment": ["a", "b"] * 20,
                         "region": ["north"] * 40, "x1": np.linspace(-4, 4, 40), "x2": [10.0] * 39 + [np.nan]})


def test_fit_transform_handles_unknown_categories_and_nulls():
    spec = load_spec("tiny")
    pre = Preprocessor.fit(spec, frame(), min_count=1)
    rows = pd.DataFrame({"segment": ["a", "zzz", None], "region": ["north", "south", "north"],
                         "x1": [0.0, -8.0, None], "x2": [None, 10.0, 10.0]})
    num, cat = pre.transform(rows)
    assert num.dtype == np.float32 and cat.dtype == np.int64
    assert pre.numeric == ["x1", "x2", "x1_abs"]  # the derived feature is part of the transform
    assert cat[0, 0] == pre.vocab["segment"].index("a") + 1
    assert cat[1, 0] == 0 and cat[2, 0] == 0  # unknown and null share the unknown bucket
    assert cat[1, 1] == 0  # "south" never seen in training
    assert not np.isnan(num).any()  # nulls imputed with the training median
    assert num[1, 2] == np.float32((8.0 - pre.means["x1_abs"]) / pre.stds["x1_abs"])


def test_json_round_trip_gives_identical_outputs():
    spec = load_spec("tiny")
    pre = Preprocessor.fit(spec, frame(), min_count=1)
    again = Preprocessor.from_json(pre.to_json())
    a, b = pre.transform(frame()), again.transform(frame())
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_fast_transform_equals_the_reference_definition_on_awkward_input():
    spec = load_spec("tiny")
    pre = Preprocessor.fit(spec, frame(), min_count=1)
    rows = pd.DataFrame({"segment": ["a", None, "zzz", "b", np.nan], "region": ["north", "south", None, 3, "north"],
                         "x1": [0.0, None, np.nan, 1e6, -3.5], "x2": ["10.5", None, "abc", 7, 1.0]})
    for case in (rows, rows.astype({"x1": float}), frame(), frame().iloc[:0]):
        fast, ref = pre.transform(case), reference_transform(pre, case)
        np.testing.assert_array_equal(fast[0], ref[0])
        np.testing.assert_array_equal(fast[1], ref[1])
    num, _ = pre.transform(rows)
    assert num[2, 1] == np.float32((pre.medians["x2"] - pre.means["x2"]) / pre.stds["x2"])  # "abc" counts as null


def test_transform_of_row_dicts_equals_transform_of_their_frame():
    spec = load_spec("tiny")
    pre = Preprocessor.fit(spec, frame(), min_count=1)
    rows = [{"segment": "a", "region": "north", "x1": 0.5, "x2": None}, {"segment": None, "region": "south",
            "x1": None, "x2": 3.0}, {"segment": "zzz", "region": 3, "x1": -2.0, "x2": 1e9},
            {"segment": "b", "region": "north", "x1": 1, "x2": "7.5"}]  # text in a numeric: the general path
    for case in (rows[:3], rows, rows[:1], frame().drop(columns=["id"]).to_dict("records")):
        fast, ref = pre.transform_records(case), pre.transform(pd.DataFrame(case))
        np.testing.assert_array_equal(fast[0], ref[0])
        np.testing.assert_array_equal(fast[1], ref[1])
    empty = pre.transform_records([])
    assert empty[0].shape == (0, 3) and empty[1].shape == (0, 2)


def test_row_dict_transform_equals_the_frame_transform_on_real_flights():
    # The flights spec's own derive hook, nulls in the weather and plane columns, integer inputs:
    # what the real-time endpoint gets, against what training and Spark compute.
    import json

    from nightshift.sources.flights import load

    spec = load_spec("flights")
    flights = load()
    pre = Preprocessor.fit(spec, flights.iloc[:20_000])
    sample = flights.sample(3_000, random_state=1)[spec.raw_inputs]
    assert sample.isna().any().any()  # the sample does hold nulls
    records = json.loads(sample.to_json(orient="records", double_precision=15))  # as a JSON body arrives
    for rows in (records, records[:1], records[:64]):
        fast, ref = pre.transform_records(rows), pre.transform(pd.DataFrame(rows))
        np.testing.assert_array_equal(fast[0], ref[0])
        np.testing.assert_array_equal(fast[1], ref[1])
    # and a JSON row scores as the stored row does (nulls and integers survive the trip)
    np.testing.assert_allclose(pre.transform(pd.DataFrame(records))[0], pre.transform(sample)[0], atol=1e-6)
    np.testing.assert_array_equal(pre.transform(pd.DataFrame(records))[1], pre.transform(sample)[1])
