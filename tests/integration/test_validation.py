"""Data tests: every corrupted partition of the catalogue (tests/corruptions.py) stops the run at validation
with a message naming the column and the problem; a clean day passes and keeps its own Data Docs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from jobs.context import Pipeline
from jobs.ingest import ingest
from jobs.validate import validate
from nightshift import offline
from nightshift.settings import Settings, get_settings
from tests.conftest import init_home, tiny_env
from tests.corruptions import CASES, DAYS, Corruption, home_env
from validation.suite import ValidationFailed

DAY = DAYS["tiny"]


def _fresh_home(env: dict[str, str], days: list[date], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    s = init_home(get_settings())
    for day in days:
        ingest(Pipeline(s), day, log=lambda *_: None)
    return s


@pytest.fixture
def home(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh home on the case's dataset with the case's day ingested."""
    case: Corruption = request.param
    yield _fresh_home(home_env(case.dataset, tmp_path), [case.day], monkeypatch)
    get_settings.cache_clear()


@pytest.mark.parametrize("home", CASES, ids=[c.name for c in CASES], indirect=True)
def test_corrupted_partition_fails_with_named_expectation(home: Settings, request: pytest.FixtureRequest) -> None:
    case: Corruption = request.node.callspec.params["home"]
    ctx = Pipeline(home)
    good = offline.read_partition(home.offline_dir, ctx.dataset, case.day)
    validate(ctx, case.day, log=lambda *_: None)  # the clean day passes: the corruption is what fails it
    offline.write_partition(home.offline_dir, ctx.dataset, case.day, case.corrupt(good))
    with pytest.raises(ValidationFailed) as err:
        validate(ctx, case.day, log=lambda *_: None)
    message = str(err.value)
    for text in case.named:
        assert text in message, message
    assert "Data Docs:" in message


def test_the_catalogue_holds_at_least_20_distinct_cases() -> None:
    assert len(CASES) >= 20 and len({c.name for c in CASES}) == len(CASES)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _sections(page: str) -> dict[str, list[str]]:
    """A Data Docs validation page's sections (by heading: Overview, then one per column) -> the text of each
    row marked failed (GX's red cross)."""
    out = {}
    for section in page.split('class="ge-section')[1:]:
        heading = re.search(r"<h5[^>]*>\s*(.*?)\s*</h5>", section, re.S)
        rows = section.split("<tr")[1:]
        out[heading.group(1) if heading else ""] = [_text("<tr" + row) for row in rows if "fa-times" in row]
    return out


def _validation_page(index: Path) -> str:
    """The one validation result page under the Data Docs of `index`, checked to be tiny's run of DAY."""
    pages = list(index.parent.glob("validations/*/*/*/*.html"))
    assert len(pages) == 1, pages  # this validation's docs only, not a shared site's history
    assert pages[0].relative_to(index.parent).parts[1:3] == ("tiny_suite", f"tiny-{DAY}")
    return pages[0].read_text()


def test_clean_partition_passes_and_keeps_data_docs(ingested: Settings) -> None:
    out = validate(Pipeline(ingested), DAY, log=lambda *_: None)
    assert out["passed"] and out["summary"].startswith("passed:")
    index = Path(out["docs"])
    assert index.name == "index.html" and index.is_relative_to(ingested.home / "gx" / "tiny" / DAY.isoformat())
    html = index.read_text()
    assert "'_expectation_suite_name_sort': 'tiny_suite'" in html and f"'run_name': 'tiny-{DAY}'" in html
    assert "'_validation_success_text': 'Success'" in html
    page = _validation_page(index)
    assert "Run Name" in page and f"tiny-{DAY}" in page and "Status: Succeeded" in _text(page)
    assert not any(_sections(page).values())  # no expectation marked failed


def test_failed_partition_data_docs_show_the_failed_expectation(ingested: Settings) -> None:
    good = offline.read_partition(ingested.offline_dir, "tiny", DAY)
    offline.write_partition(ingested.offline_dir, "tiny", DAY, good.assign(x2=42.0))
    with pytest.raises(ValidationFailed) as err:
        validate(Pipeline(ingested), DAY, log=lambda *_: None)
    index = Path(str(err.value).rsplit("Data Docs: ", 1)[1].strip())
    html = index.read_text()
    assert f"'run_name': 'tiny-{DAY}'" in html and "'_validation_success_text': 'Failed'" in html
    page = _validation_page(index)
    assert "Status: Failed" in _text(page)
    failed = {heading: rows for heading, rows in _sections(page).items() if rows}
    # in x2's section, and nowhere else, the one failed expectation: its rule and the observed 1
    assert set(failed) == {"x2"}, failed
    assert len(failed["x2"]) == 1 and "not one value all day" in failed["x2"][0], failed
    assert failed["x2"][0].split()[-1] == "1", failed


def test_event_times_from_csv_text_are_stored_as_timestamps_and_utc_ones_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    day = DAYS["orders"]
    s = _fresh_home(home_env("orders", tmp_path), [day], monkeypatch)
    stored = offline.read_partition(s.offline_dir, "orders", day)
    assert str(stored["ordered_at"].dtype).startswith("datetime64[") and stored["ordered_at"].dt.tz is None
    assert validate(Pipeline(s), day, log=lambda *_: None)["passed"]
    # Zone-aware but in UTC (one clock, nothing to misread) and on the day in UTC: they pass too.
    utc = stored.assign(ordered_at=stored["ordered_at"].dt.tz_localize("UTC"))
    offline.write_partition(s.offline_dir, "orders", day, utc)
    assert validate(Pipeline(s), day, log=lambda *_: None)["passed"]
    get_settings.cache_clear()


def test_real_flights_days_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A storm day (over half the flights cancelled: labels null), a summer day, the last day of the window; each
    has constant features the spec allows (the weekday; no rain; full visibility) and its departures as event
    times."""
    days = [date(2013, 2, 8), date(2013, 6, 30), date(2013, 12, 30)]
    s = _fresh_home(tiny_env(tmp_path / "home", NIGHTSHIFT_DATASET="flights"), days, monkeypatch)
    for day in days:
        out = validate(Pipeline(s), day, log=lambda *_: None)
        assert out["passed"], out
    get_settings.cache_clear()
