"""Dataset specs: both shipped specs load, and a broken spec is refused with a message that says why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from nightshift.spec import load_spec


@pytest.mark.parametrize("name", ["flights", "tiny"])
def test_shipped_specs_load(name: str) -> None:
    spec = load_spec(name)
    assert spec.name == name
    assert spec.entity_key in spec.stored_columns and spec.target.column in spec.stored_columns
    assert set(spec.slices) <= set(spec.categorical)


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
    with pytest.raises(ValidationError, match=message):
        load_spec(str(path))


def test_a_new_dataset_needs_only_a_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = yaml.safe_load((Path(load_spec("tiny").spec_dir) / "tiny.yaml").read_text())
    raw.update(name="mine", source={"path": str(Path(load_spec("tiny").spec_dir).parent / "data" / "tiny.csv"),
                                    "format": "csv"})
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("NIGHTSHIFT_SPEC_DIR", str(tmp_path))
    monkeypatch.setenv("NIGHTSHIFT_DATASET", "mine")
    from nightshift.settings import Settings

    assert Settings().spec().name == "mine"
