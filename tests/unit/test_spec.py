"""Dataset specs: the shipped specs load (and mpls_stops' loader gives what its spec says), and a broken
spec is refused with a message that says why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nightshift.spec import load_spec


@pytest.mark.parametrize("name", ["flights", "tiny", "mpls_stops"])
def test_shipped_specs_load(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name
    assert spec.entity_key in spec.stored_columns and spec.target.column in spec.stored_columns
    assert set(spec.slices) <= set(spec.categorical)


def test_mpls_stops_loader_matches_its_spec() -> None:
    from nightshift.spec import resolve

    spec = load_spec("mpls_stops")
    assert spec.source.loader is not None
    frame = resolve(spec.source.loader)()
    assert set(spec.stored_columns) <= set(frame.columns)
    assert len(frame) == 43_699 and frame[spec.entity_key].is_unique
    assert frame[spec.date_column].min() == "2017-01-01" and frame[spec.date_column].max() == "2017-12-31"
    assert frame[spec.target.column].notna().all() and 0.1 < frame[spec.target.column].mean() < 0.14
    per_day = frame.groupby(spec.date_column).size()
    assert per_day.min() >= spec.expectations.min_rows and per_day.max() <= spec.expectations.max_rows


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: .*flights.*tiny"):
        load_spec("nope")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(slices=["nope"]), "slice column 'nope' is not a feature"),
        (lambda s: s.pop("derive"), "derived features need a 'derive' hook"),
        (lambda s: s["source"].update(loader="x:y"), "exactly one of 'loader' or 'path'"),
        (lambda s: s["features"].append({"name": "x1", "kind": "numeric"}), "duplicate feature names"),
    ],
)
def test_broken_specs_are_refused(tmp_path: Path, change, message) -> None:  # type: ignore[no-untyped-def]
    raw = yaml.safe_load((Path(load_spec("tiny").spec_dir) / "tiny.yaml").read_text())
    change(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match=message):
        load_spec(str(path))


def test_a_new_dataset_needs_only_a_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = yaml.safe_load((Path(load_spec("tiny").spec_dir) / "tiny.yaml").read_text())
    raw.update(name="mine", source={"path": str(Path(load_spec("tiny").spec_dir).parent / "data" / "tiny.csv"),
                                    "format": "csv"})
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("NIGHTSHIFT_SPEC_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTSHIFT_DATASET", "mine")
    from nightshift.offline import load_source
    from nightshift.settings import Settings

    spec = Settings().spec()
    assert spec.name == "mine" and spec.settings.schedule_end is not None
    rows = load_source(spec)  # its source, read by the spec alone, with exactly the columns the store keeps
    assert len(rows) == 90 * 60 and list(rows.columns) == spec.stored_columns
    assert Settings().for_dataset(spec).train_days == spec.settings.train_days == 21


def test_dataset_settings_come_from_the_spec_and_the_environment_overrides_them(monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    from datetime import date

    from nightshift.settings import Settings

    for key in ("NIGHTSHIFT_TRAIN_DAYS", "NIGHTSHIFT_DRIFT_MIN_ROWS", "NIGHTSHIFT_SCHEDULE_END"):
        monkeypatch.delenv(key, raising=False)
    flights, tiny = load_spec("flights"), load_spec("tiny")
    s = Settings()
    assert s.for_dataset(flights).drift_min_rows == 300 and s.for_dataset(tiny).drift_min_rows == 50
    assert s.for_dataset(tiny).schedule_end == date(2013, 3, 31) and s.for_dataset(tiny).train_days == 21
    # Resolving for another dataset starts from the explicit settings: nothing of the first spec leaks.
    assert s.for_dataset(flights).for_dataset(tiny).drift_min_rows == 50
    assert Settings().for_dataset(load_spec("tiny")).dataset == "tiny"
    monkeypatch.setenv("NIGHTSHIFT_DRIFT_MIN_ROWS", "7")
    assert Settings().for_dataset(flights).drift_min_rows == 7 and Settings().for_dataset(tiny).drift_min_rows == 7
    assert Settings(train_days=9).for_dataset(tiny).train_days == 9


def test_a_window_that_ends_before_it_starts_or_a_file_misnamed_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load((Path(load_spec("tiny").spec_dir) / "tiny.yaml").read_text())
    raw["settings"].update(schedule_start="2013-05-01", schedule_end="2013-04-01")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="schedule_end 2013-04-01 is before schedule_start 2013-05-01"):
        load_spec(str(tmp_path / "tiny.yaml"))
    raw["settings"].update(schedule_start="2013-01-01")
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="name the file tiny.yaml"):
        load_spec(str(tmp_path / "other.yaml"))


def test_a_date_outside_the_schedule_is_refused_naming_the_window() -> None:
    from datetime import date

    from nightshift.settings import Settings

    s = Settings().for_dataset(load_spec("tiny"))
    s.check_scheduled(date(2013, 3, 31), "nightly__tiny")
    window = r"2013-04-01 is outside the schedule of nightly__tiny: 2013-01-01\.\.2013-03-31"
    with pytest.raises(ValueError, match=window):
        s.check_scheduled(date(2013, 4, 1), "nightly__tiny")
