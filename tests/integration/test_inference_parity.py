"""One inference path: the same rows score the same through every consumer of a registered model.

Training's evaluation (the MLflow pyfunc the gates load), Spark scoring (the Arrow UDF on local
Spark), and the real-time endpoint's model, both in the endpoint's process and in a process of its
own (rows as JSON bodies bring them), on the tiny dataset and on flights, for an ensemble of networks
(`mlp_members: 3`) and for the other model family (`model_family: gbdt`, HistGradientBoosting).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from jobs.context import Pipeline
from jobs.ingest import ingest
from jobs.score import score
from jobs.train import train
from nightshift import offline
from nightshift.settings import Settings, get_settings
from registry import aliases
from registry.packaging import local_bundle
from registry.tracking import model_uri
from serving.realtime.models import start_model
from tests.conftest import init_home, tiny_env

DATASETS = {
    # dataset: (data date, settings that keep training short; every one a user could set)
    "tiny-ensemble": (date(2013, 2, 10), {"NIGHTSHIFT_MLP_MEMBERS": "3"}),  # the single network: flights
    "tiny-gbdt": (date(2013, 2, 10), {"NIGHTSHIFT_MODEL_FAMILY": "gbdt"}),
    "flights": (date(2013, 2, 15), {"NIGHTSHIFT_DATASET": "flights", "NIGHTSHIFT_TRAIN_DAYS": "10",
                                    "NIGHTSHIFT_HOLDOUT_DAYS": "3", "NIGHTSHIFT_MAX_EPOCHS": "2"}),
}


def quiet(*_: object) -> None:
    pass


@pytest.fixture(params=sorted(DATASETS))
def registered(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[tuple[Pipeline, date]]:
    """A home with a window of the dataset ingested and a freshly trained version made champion."""
    day, extra = DATASETS[request.param]
    env = tiny_env(tmp_path / "home", NIGHTSHIFT_SPARK_MASTER="local[2]", PYSPARK_PYTHON=sys.executable, **extra)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    s: Settings = init_home(get_settings())
    ctx = Pipeline(s)
    ingest(ctx, day - timedelta(days=ctx.settings.train_days + ctx.settings.holdout_days), day, log=quiet)
    version = train(ctx, day, actor="test", log=quiet)["version"]
    # Made champion directly: parity is about scoring, not about whether this short training passes the gates.
    aliases.promote(ctx.client, ctx.engine, name=ctx.model_name, version=version, actor="test", reason="parity")
    yield ctx, day
    get_settings.cache_clear()


def test_every_consumer_scores_the_same_rows_the_same(registered: tuple[Pipeline, date]) -> None:
    ctx, day = registered
    spec = ctx.spec
    frame = offline.read_partition(ctx.settings.offline_dir, spec.name, day).head(200)
    keys = frame[spec.entity_key].astype(str).tolist()
    version = aliases.alias_version(ctx.client, ctx.model_name, aliases.CHAMPION)
    assert version is not None
    # The registered version is the family the settings name, and its bundle holds that family's model.
    family = ctx.client.get_model_version(ctx.model_name, version).tags["model_family"]
    assert family == ctx.settings.model_family
    weights = {"mlp": "mlp.pt", "gbdt": "hgb.joblib"}[family]
    assert (local_bundle(ctx.settings.home, ctx.model_name, version) / weights).exists()
    if family == "mlp":
        saved = torch.load(local_bundle(ctx.settings.home, ctx.model_name, version) / weights, weights_only=True)
        assert saved["config"].get("members", 1) == ctx.settings.mlp_members

    # 1. training's evaluation: the registered pyfunc, as the gates and any MLflow consumer load it
    pyfunc = np.asarray(mlflow.pyfunc.load_model(model_uri(ctx.model_name, version)).predict(frame[spec.raw_inputs]),
                        dtype=np.float32)

    # 2. Spark scoring, as the scoring DAG runs it
    scored = pd.read_parquet(score(ctx, day, run_id="parity", log=quiet)["scored_path"]).set_index("entity_key")
    spark = scored.loc[keys, "score"].to_numpy(dtype=np.float32)

    # 3. the real-time endpoint's model, rows as they arrive in request bodies
    rows = json.loads(frame[[*spec.raw_inputs, spec.entity_key]].to_json(orient="records", double_precision=15))
    bundle = local_bundle(ctx.settings.home, ctx.model_name, version)

    async def realtime(own_process: bool) -> np.ndarray:
        model = start_model(bundle, name=ctx.model_name, version=version, alias="champion", spec=spec, device="cpu",
                            precision="auto", own_process=own_process)
        try:
            return await model.predict(rows)
        finally:
            await model.close()

    in_process = asyncio.run(realtime(own_process=False))
    own_process = asyncio.run(realtime(own_process=True))

    assert len(pyfunc) == len(spark) == len(in_process) == len(own_process) == len(frame) > 0
    for name, scores in (("spark", spark), ("real-time in process", in_process),
                         ("real-time own process", own_process)):
        np.testing.assert_allclose(scores, pyfunc, rtol=0, atol=1e-6, err_msg=f"{name} differs from the pyfunc")
    assert 0.0 < float(pyfunc.std())  # a model that scores everything alike would pass the comparison vacuously

