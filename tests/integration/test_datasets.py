"""Any dataset a spec describes, with its settings in the spec: docs/spec.md's worked example ("shop", 200
orders a day, an integer-coded categorical) trains, gates and gets drift judged with no environment
setting, says why a day is not judged; ingest never writes partitions for dates its source lacks."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from jobs.context import Pipeline
from jobs.drift import check_drift
from jobs.ingest import ingest
from jobs.nightly import NightlyRun, run_nightly
from nightshift import drifthistory, offline
from nightshift.settings import Settings, get_settings
from tests.conftest import init_home, tiny_env
from tests.datasets import ROWS_PER_DAY, write_shop


def quiet(*_: object) -> None:
    pass


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh home whose spec folder holds only the shop example; nothing in the environment tunes it."""
    for key, value in tiny_env(tmp_path / "home", NIGHTSHIFT_DATASET="shop",
                               NIGHTSHIFT_SPEC_DIR=str(write_shop(tmp_path / "specs"))).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith("NIGHTSHIFT_") and k not in (
            "NIGHTSHIFT_DATASET", "NIGHTSHIFT_SPEC_DIR", "NIGHTSHIFT_HOME", "NIGHTSHIFT_MAX_EPOCHS")]:
        monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield init_home(get_settings())
    get_settings.cache_clear()


def test_a_dataset_of_200_rows_a_day_is_judged_for_drift_by_its_spec_alone(shop: Settings) -> None:
    ctx = Pipeline(shop)
    assert "NIGHTSHIFT_DRIFT_MIN_ROWS" not in os.environ
    assert (ctx.settings.drift_min_rows, ctx.settings.train_days, ctx.settings.holdout_days) == (100, 21, 5)
    assert ingest(ctx, log=quiet)["days"] == 30  # the source's window, from the spec
    out = run_nightly(ctx, NightlyRun(day=date(2024, 3, 26), actor="test"), log=quiet)
    assert out["evaluate"]["label"] == "promoted", out["evaluate"]

    judged = check_drift(ctx, date(2024, 3, 28), run_id="test", log=quiet)
    row = drifthistory.read(ctx.engine, dataset="shop", start=date(2024, 3, 28), end=date(2024, 3, 28))[0]
    assert row["rows"] == ROWS_PER_DAY and row["drifted_features"] is not None and row["data_drift"] is not None
    assert "data and prediction drift not judged" not in row["reason"]
    assert judged["retrain"] is False

    # Raised over the day's rows (an explicit setting beats the spec), the day is not judged, and says why.
    lines: list[str] = []
    strict = Pipeline(Settings(drift_min_rows=1000))
    assert strict.settings.drift_min_rows == 1000 and strict.settings.train_days == 21
    check_drift(strict, date(2024, 3, 29), run_id="test", log=lines.append)
    row = drifthistory.read(ctx.engine, dataset="shop", start=date(2024, 3, 29), end=date(2024, 3, 29))[0]
    assert row["drifted_features"] is None
    why = f"data and prediction drift not judged: {ROWS_PER_DAY} rows, fewer than drift_min_rows=1000"
    assert why in row["reason"] and any(why in line for line in lines)
    assert "performance drift not judged" in row["reason"]  # nothing was served for the label day


def test_ingest_writes_only_dates_the_source_has_and_says_which_it_lacks(shop: Settings) -> None:
    ctx = Pipeline(shop)
    with pytest.raises(ValueError, match=r"no rows for 2020-01-01\.\.2020-01-05; it covers 2024-03-01\.\.2024-03-30"):
        ingest(ctx, date(2020, 1, 1), date(2020, 1, 5), log=quiet)
    assert not (shop.offline_dir / "shop").exists()  # nothing written

    said: list[str] = []
    out = ingest(ctx, date(2024, 2, 28), date(2024, 3, 2), log=said.append)
    assert out["days"] == 2 and out["missing"] == ["2024-02-28", "2024-02-29"]
    assert sorted(p.name for p in (shop.offline_dir / "shop").iterdir()) == ["date=2024-03-01", "date=2024-03-02"]
    assert any("no rows for 2 of those dates" in line and "2024-02-28, 2024-02-29" in line for line in said)
    assert len(offline.read_partition(shop.offline_dir, "shop", date(2024, 3, 1))) == ROWS_PER_DAY
