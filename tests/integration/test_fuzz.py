"""Schemathesis against both services' OpenAPI documents (tests/fuzzing.py): with the API key set and sent, no
case gets a 5xx, every answer's status, content type and body are the ones the document declares, and input the
schema refuses gets a 4xx; without the key every case gets a 401, also as declared.

Bounded and seeded so CI stays fast and reproducible: a failure here reproduces with the same seed, and the
report it prints has a curl command for each failing example.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from nightshift.settings import Settings
from serving import lookup, realtime
from tests.fuzzing import fuzz
from tests.integration.conftest import publish, publish_snapshot, rows, scores

SEED = 20130701
LOOKUP_KEY = "lookup-fuzz-key-0123456789"
REALTIME_KEY = "realtime-fuzz-key-0123456789"


def assert_clean(report: dict[str, Any], least_cases: int) -> None:
    """No 5xx and no failed check in `report`, after at least `least_cases` cases."""
    counts = {label: r["failed_checks"] for label, r in report["operations"].items() if r["failed_checks"]}
    shown = json.dumps({"failed checks": counts, "first examples": report["failures"][:6]}, indent=1)
    assert report["server_errors"] == 0 and report["failures"] == [], \
        f"{report['server_errors']} 5xx, {report['schema_failures']} failing cases of {report['cases']}:\n{shown}"
    assert report["cases"] >= least_cases, report["operations"]


def assert_all_refused(report: dict[str, Any]) -> None:
    """Every case of `report` got a 401 (the liveness probe, open by design, a 200), as the document declares."""
    assert report["failures"] == [], json.dumps(report["failures"][:10], indent=1)
    for label, result in report["operations"].items():
        expected = {200} if label == "GET /healthz" else {401}
        assert set(result["statuses"]) == expected, (label, result["statuses"])


@pytest.mark.parametrize("lookup_settings", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_lookup_api_on_postgres(lookup_settings: Settings) -> None:
    publish(lookup_settings, "run-1", "3", scores(0.4))
    # A small key limit, so that generated batches cross it too.
    s = lookup_settings.model_copy(update={"lookup_api_key": SecretStr(LOOKUP_KEY), "lookup_max_keys": 3})
    assert_clean(fuzz(lookup.create_app(s), max_examples=25, seed=SEED, api_key=LOOKUP_KEY), least_cases=300)
    assert_all_refused(fuzz(lookup.create_app(s), max_examples=3, seed=SEED, api_key=LOOKUP_KEY, send_key=False))


def test_realtime_endpoint(realtime_home: Settings) -> None:
    publish_snapshot(realtime_home, [r["id"] for r in rows(realtime_home, 20)], 0.25)  # the fallback's answers
    # Small limits on rows and body size, so that generated requests cross them too.
    s = realtime_home.model_copy(update={"realtime_api_key": SecretStr(REALTIME_KEY), "realtime_max_delay_ms": 0.5,
                                         "realtime_max_rows": 3, "realtime_max_body_bytes": 1024})
    assert_clean(fuzz(realtime.create_app(s), max_examples=75, seed=SEED, api_key=REALTIME_KEY), least_cases=250)
    assert_all_refused(fuzz(realtime.create_app(s), max_examples=3, seed=SEED, api_key=REALTIME_KEY,
                            send_key=False))
