"""docs/spec.md is the reference generated from the spec's models, and its worked example is a valid spec."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from nightshift.spec import DatasetSpec, Feature
from nightshift.specdoc import reference
from tests.conftest import ROOT


def test_docs_spec_md_is_current() -> None:
    on_disk = (ROOT / "docs" / "spec.md").read_text()
    assert on_disk == reference(), "docs/spec.md is stale: run `nightshift spec-reference > docs/spec.md`"


def test_every_field_of_every_section_is_documented() -> None:
    text = reference()
    for model in (DatasetSpec, Feature):
        for name, field in model.model_fields.items():
            if not field.exclude:
                assert f"| `{name}` |" in text and field.description, name


def test_the_worked_example_is_a_valid_spec_with_integer_categories(tmp_path: Path) -> None:
    block = re.search(r"```yaml\n(.*?)```", reference(), re.S)
    assert block is not None
    raw = yaml.safe_load(block.group(1))
    spec = DatasetSpec(**raw, spec_dir=tmp_path)
    member = next(f for f in spec.features if f.name == "is_member")
    assert member.categories == [0, 1] and all(isinstance(c, int) for c in member.categories)
    assert spec.settings.schedule_end is not None and spec.settings.drift_min_rows == 100
