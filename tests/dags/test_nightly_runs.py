"""`nightly` and `scoring` run with dag.test(): a clean day promotes a champion whose predictions are
then served for every entity; a corrupted day stops at validation and changes nothing served."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from mlflow import MlflowClient

from jobs.context import Pipeline
from jobs.ingest import ingest
from nightshift.settings import Settings
from nightshift.spec import load_spec
from registry import aliases
from tests.dags.conftest import run_dag


def test_clean_day_promotes_then_corrupted_day_stops_at_validation(airflow_home: Path, ingested: Settings,
                                                                   tmp_path: Path) -> None:
    home = ingested.home
    client = MlflowClient(ingested.tracking_uri, ingested.tracking_uri)

    ok = run_dag(airflow_home, home, "nightly", "2013-02-10")
    assert ok["state"] == "success", ok["log"][-4000:]
    assert ok["tasks"] == dict.fromkeys(["ingest", "validate", "train", "evaluate", "promote"], "success")
    champion = aliases.alias_version(client, "nightshift-tiny", "champion")
    assert champion == "1"
    assert "gate decision: promoted" in ok["log"]

    # scoring (what the champion asset triggers) publishes a snapshot the lookup API serves in full.
    scored = run_dag(airflow_home, home, "scoring", "2013-02-10")
    assert scored["state"] == "success", scored["log"][-4000:]
    assert scored["tasks"] == {"score": "success", "publish": "success"}
    served = assert_lookup_serves_every_entity(ingested, model_version=champion)

    # The source now carries a bad day: duplicate keys and a flood of out-of-range values on 2013-02-20.
    spec = load_spec("tiny")
    source = pd.read_csv(spec.spec_dir / "../data/tiny.csv")
    bad = source["day"] == "2013-02-20"
    source.loc[bad, "x1"] = 1e6
    source.loc[bad, "id"] = "dup"
    source.to_csv(tmp_path / "tiny-bad.csv", index=False)
    raw = yaml.safe_load((spec.spec_dir / "tiny.yaml").read_text())
    raw["source"] = {"path": str(tmp_path / "tiny-bad.csv"), "format": "csv"}
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    (spec_dir / "tiny.yaml").write_text(yaml.safe_dump(raw))

    failed = run_dag(airflow_home, home, "nightly", "2013-02-20", NIGHTSHIFT_SPEC_DIR=str(spec_dir))
    assert failed["state"] == "failed"
    assert failed["tasks"]["ingest"] == "success"
    assert failed["tasks"]["validate"] == "failed"
    assert {failed["tasks"][t] for t in ("train", "evaluate", "promote")} == {"upstream_failed"}
    assert "expect_column_values_to_be_unique on column 'id'" in failed["log"]
    assert "expect_column_values_to_be_between on column 'x1'" in failed["log"]
    # Nothing new was registered or promoted; the champion is the one from before.
    assert aliases.alias_version(client, "nightshift-tiny", "champion") == champion
    assert len(client.search_model_versions("name = 'nightshift-tiny'")) == 1

    assert assert_lookup_serves_every_entity(ingested, model_version=champion) == served  # unchanged

    # Putting the good data back and rerunning the day succeeds (the partition is replaced, not appended).
    ingest(Pipeline(ingested), pd.Timestamp("2013-02-20").date(), log=lambda *_: None)
    again = run_dag(airflow_home, home, "nightly", "2013-02-20")
    assert again["state"] == "success", again["log"][-4000:]


def assert_lookup_serves_every_entity(s: Settings, *, model_version: str) -> int:
    """Every entity of the scoring scope is answered by the lookup API; returns the served snapshot id."""
    from fastapi.testclient import TestClient

    from serving.lookup import create_app

    keys = pd.read_csv(load_spec("tiny").spec_dir / "../data/tiny.csv")["id"].astype(str).tolist()
    with TestClient(create_app(s)) as client:
        current = client.get("/v1/snapshots/current").json()
        assert current["row_count"] == len(keys) == 5400 and current["model_version"] == model_version
        found: dict[str, dict] = {}
        for i in range(0, len(keys), 1000):
            answer = client.post("/v1/predictions/batch", json={"keys": keys[i:i + 1000]})
            assert answer.status_code == 200, answer.text
            found.update({p["entity_key"]: p for p in answer.json()["predictions"]})
        assert set(found) == set(keys)
        one = client.get(f"/v1/predictions/{keys[0]}").json()
        assert one["model"]["version"] == model_version and 0 <= one["score"] <= 1
    return int(current["id"])


def test_dry_run_param_records_but_skips_promote(airflow_home: Path, ingested: Settings) -> None:
    out = run_dag(airflow_home, ingested.home, "nightly", "2013-02-10", conf={"gate_mode": "dry_run"})
    assert out["state"] == "success"
    assert out["tasks"]["evaluate"] == "success" and out["tasks"]["promote"] == "skipped"
    assert "not promoted: gate decision dry_run" in out["log"]
    client = MlflowClient(ingested.tracking_uri, ingested.tracking_uri)
    assert aliases.alias_version(client, "nightshift-tiny", "champion") is None
    assert client.get_model_version("nightshift-tiny", "1").tags["gate_decision"] == "dry_run"


def test_runs_for_a_date_outside_the_schedule_fail_naming_the_window(airflow_home: Path, settings: Settings) -> None:
    # tiny's spec schedules 2013-01-01..2013-03-31: a run for 2013-06-01 runs nothing and fails saying so,
    # instead of "succeeding" with no task run.
    for kind in ("nightly", "drift"):
        out = run_dag(airflow_home, settings.home, kind, "2013-06-01")
        assert out["state"] == "failed", out["log"][-3000:]
        first = "ingest" if kind == "nightly" else "check"
        assert out["tasks"][first] == "failed"
        assert f"2013-06-01 is outside the schedule of {kind}__tiny: 2013-01-01..2013-03-31" in out["log"]
