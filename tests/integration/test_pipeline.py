"""The nightly steps against a real MLflow store and SQL store, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from mlflow import MlflowClient

from jobs.context import Pipeline
from jobs.evaluate import evaluate
from jobs.ingest import ingest
from jobs.promote import promote, rollback
from jobs.train import train
from nightshift import offline, store
from nightshift.settings import Settings, get_settings
from registry import aliases
from tests.conftest import create_pg_database, drop_pg_database, init_home

D1, D2 = date(2013, 2, 10), date(2013, 2, 24)


def quiet(*_: object) -> None:
    pass


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, ingested: Settings, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Settings]:
    """The same settings with MLflow and the SQL store on SQLite files or on fresh PostgreSQL databases."""
    if request.param == "sqlite":
        yield ingested
        return
    tracking, store_url = create_pg_database("ns_mlflow"), create_pg_database("ns_store")
    monkeypatch.setenv("NIGHTSHIFT_MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("NIGHTSHIFT_STORE_URL", store_url)
    get_settings.cache_clear()
    yield init_home(get_settings())
    store.get_engine.cache_clear()
    drop_pg_database(tracking)
    drop_pg_database(store_url)


def versions(s: Settings) -> list[str]:
    client = MlflowClient(s.tracking_uri, s.tracking_uri)
    return sorted(str(v.version) for v in client.search_model_versions("name = 'nightshift-tiny'"))


def test_train_gate_promote_rerun_override_and_rollback(backend: Settings) -> None:
    s = backend
    client = MlflowClient(s.tracking_uri, s.tracking_uri)
    name = "nightshift-tiny"

    first = train(Pipeline(s), D1, actor="test", log=quiet)
    assert aliases.alias_version(client, name, "challenger") == first["version"]
    decision = evaluate(Pipeline(s), D1, first["version"], log=quiet)
    assert decision["label"] == "promoted", decision
    tags = client.get_model_version(name, first["version"]).tags
    for key in ("data_interval", "data_fingerprint", "code_version", "validation_result", "gate_decision",
                "gate_reason", "train_positive_rate"):
        assert tags.get(key), key
    assert "no champion yet" in tags["gate_reasons"]
    promote(Pipeline(s), first["version"], actor="test", log=quiet)
    assert aliases.alias_version(client, name, "champion") == first["version"]
    assert aliases.alias_version(client, name, "challenger") is None

    # A rerun of the same date (data re-ingested, same content) reuses the version: no duplicates.
    ingest(Pipeline(s), D1, log=quiet)
    again = train(Pipeline(s), D1, actor="test", log=quiet)
    assert again["reused"] and again["version"] == first["version"]
    # ...and gating the champion again decides nothing and leaves its recorded decision alone.
    rerun = evaluate(Pipeline(s), D1, again["version"], mode="dry_run", log=quiet)
    assert rerun["label"] == "champion" and not rerun["promote"]
    assert client.get_model_version(name, first["version"]).tags["gate_decision"] == "promoted"
    assert versions(s) == [first["version"]]
    assert len(list(offline.partition_dir(s.offline_dir, "tiny", D1).iterdir())) == 1

    # dry_run decides and records, promotes nothing; the promote step refuses it.
    second = train(Pipeline(s), D2, actor="test", log=quiet)
    dry = evaluate(Pipeline(s), D2, second["version"], mode="dry_run", log=quiet)
    assert dry["label"] == "dry_run" and not dry["promote"]
    assert "vs champion" in client.get_model_version(name, second["version"]).tags["gate_reasons"]
    with pytest.raises(RuntimeError, match="gate decision 'dry_run'"):
        promote(Pipeline(s), second["version"], log=quiet)
    assert aliases.alias_version(client, name, "champion") == first["version"]

    # A manual override needs a reason, which is recorded on the version and in the audit trail.
    with pytest.raises(ValueError, match="override reason"):
        evaluate(Pipeline(s), D2, second["version"], mode="override", override_reason="", log=quiet)
    forced = evaluate(Pipeline(s), D2, second["version"], mode="override", override_reason="INC-7: ship the fix",
                      log=quiet)
    assert forced["promote"]
    assert client.get_model_version(name, second["version"]).tags["override_reason"] == "INC-7: ship the fix"
    promote(Pipeline(s), second["version"], actor="ana", reason="INC-7: ship the fix", log=quiet)
    assert aliases.alias_version(client, name, "champion") == second["version"]
    assert aliases.alias_version(client, name, "previous") == first["version"]

    out = rollback(Pipeline(s), actor="ana", reason="bad canary", log=quiet)
    assert out == {"from_version": second["version"], "to_version": first["version"]}
    assert aliases.alias_version(client, name, "champion") == first["version"]
    assert aliases.alias_version(client, name, "previous") == second["version"]

    history = store.alias_history(store.get_engine(s.store_uri), model_name=name)
    assert [(h["alias"], h["from_version"], h["to_version"]) for h in history[:2]] == [
        ("previous", first["version"], second["version"]), ("champion", second["version"], first["version"])]
    assert "bad canary" in history[0]["reason"] and history[0]["actor"] == "ana"
    assert any(h["reason"] == "INC-7: ship the fix" and h["alias"] == "champion" for h in history)


def test_failed_gate_promotes_nothing_and_says_why(ingested: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    s = ingested
    first = train(Pipeline(s), D1, log=quiet)
    evaluate(Pipeline(s), D1, first["version"], log=quiet)
    promote(Pipeline(s), first["version"], log=quiet)
    # An impossible latency budget makes the operational gate fail for the next candidate.
    monkeypatch.setenv("NIGHTSHIFT_LATENCY_BUDGET_MS", "0.0001")
    get_settings.cache_clear()
    s2 = get_settings()
    second = train(Pipeline(s2), D2, log=quiet)
    lines: list[str] = []
    decision = evaluate(Pipeline(s2), D2, second["version"], log=lines.append)
    assert decision["label"] == "rejected" and not decision["promote"]
    assert "FAIL: predict latency" in lines[-1]
    client = MlflowClient(s.tracking_uri, s.tracking_uri)
    assert "predict latency" in client.get_model_version("nightshift-tiny", second["version"]).tags["gate_reason"]
    with pytest.raises(RuntimeError, match="gate decision 'rejected'"):
        promote(Pipeline(s2), second["version"], log=quiet)
    assert aliases.alias_version(client, "nightshift-tiny", "champion") == first["version"]


def test_too_little_history_is_a_clear_error(settings: Settings) -> None:
    ingest(Pipeline(settings), date(2013, 1, 1), date(2013, 1, 3), log=quiet)
    # The window reaches before the data's first day: the hint says those days do not exist.
    with pytest.raises(ValueError, match=r"needs at least 5; the days before 2013-01-01 \(the start of tiny's "
                                         r"schedule window\) do not exist"):
        train(Pipeline(settings), date(2013, 1, 3), log=quiet)
    # The window lies within the data but was not ingested: the hint gives the command.
    with pytest.raises(ValueError, match=r"needs at least 5; ingest those dates first \(nightshift --dataset tiny "
                                         r"ingest 2013-02-01 --end 2013-02-21\)"):
        train(Pipeline(settings), date(2013, 2, 28), log=quiet)


def test_the_smoke_check_reports_a_model_that_does_not_load(settings: Settings) -> None:
    import pandas as pd

    from jobs.evaluate import smoke_check

    result = smoke_check("models:/nightshift-tiny/7", pd.DataFrame({"x1": [0.5]}), settings)
    assert not result.loaded and "not found" in result.error, result
