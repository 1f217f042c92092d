"""The lookup API's request and answer models, and the rendering of single-key answers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi.responses import Response
from pydantic import BaseModel, Field

from serving.http import KEY_MAX, NO_NUL


class ModelRef(BaseModel):
    """The registered model (name, version) that computed a prediction."""

    name: str
    version: str


class SnapshotRef(BaseModel):
    """The prediction snapshot an answer was read from: scoring run, data interval, when scored and published."""

    id: int
    run_id: str
    data_start: date | None
    data_end: date | None
    scored_at: datetime | None
    published_at: datetime | None


class Prediction(BaseModel):
    """One entity's served prediction, with the model and snapshot that produced it."""

    entity_key: str
    score: float
    label: bool
    model: ModelRef
    snapshot: SnapshotRef
    scored_at: datetime | None


class BatchRequest(BaseModel):
    """Entity keys to look up in one call (at most `lookup_max_keys`)."""

    keys: list[Annotated[str, Field(min_length=1, max_length=KEY_MAX, pattern=NO_NUL)]] = Field(min_length=1)


class BatchAnswer(BaseModel):
    """Found predictions (all from one snapshot) and the keys that snapshot does not hold."""

    predictions: list[Prediction]
    missing: list[str]
    snapshot: SnapshotRef | None
    model: ModelRef | None


class Health(BaseModel):
    """Liveness."""

    status: str


class Readiness(BaseModel):
    """Readiness: the store answers and a snapshot is published."""

    status: str  # ok | unavailable
    store: str  # ok | unreachable: <why>
    snapshot: int | str | None = None  # the served snapshot id, or why there is none


class Snapshot(SnapshotRef):
    """The served snapshot's full row."""

    dataset: str
    model_name: str
    model_version: str
    model_run_id: str | None
    row_count: int | None
    status: str


def utc(value: datetime | None) -> datetime | None:
    """The datetime in UTC (SQLite hands back naive datetimes; the store writes UTC)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def snapshot_ref(snap: dict[str, Any]) -> SnapshotRef:
    """The answer's reference to the snapshot it was read from."""
    return SnapshotRef(id=snap["id"], run_id=snap["run_id"], data_start=snap["data_start"], data_end=snap["data_end"],
                       scored_at=utc(snap["scored_at"]), published_at=utc(snap["published_at"]))


def prediction_of(row: dict[str, Any], snap: dict[str, Any]) -> Prediction:
    """A stored row of a snapshot as an answer."""
    return Prediction(entity_key=row["entity_key"], score=round(float(row["score"]), 7), label=bool(row["label"]),
                      model=ModelRef(name=snap["model_name"], version=snap["model_version"]),
                      snapshot=snapshot_ref(snap), scored_at=utc(snap["scored_at"]))


class SingleAnswers:
    """The JSON of single-key answers, with the per-snapshot part rendered once per snapshot.

    Only key, score and label differ between answers from one snapshot; building and validating the
    nested models per request cost more than the store read (bench/lookup_bench.py).
    """

    def __init__(self) -> None:
        self._tails: dict[int, bytes] = {}

    def answer(self, row: Any, snap: dict[str, Any]) -> Response:
        """The JSON answer of one stored row of `snap`."""
        tail = self._tails.get(snap["id"])
        if tail is None:
            full = prediction_of({"entity_key": "", "score": 0.0, "label": False}, snap).model_dump_json()
            tail = self._tails[snap["id"]] = full[full.index(',"model":'):].encode()
        key: str = row["entity_key"]
        # Most keys need no JSON escaping; json.dumps costs more than the rest of the line.
        quoted = f'"{key}"' if key.isascii() and key.isprintable() and '"' not in key and "\\" not in key \
            else json.dumps(key)
        head = f'{{"entity_key":{quoted},"score":{round(float(row["score"]), 7)!r},' \
               f'"label":{"true" if row["label"] else "false"}'
        return Response(head.encode() + tail, media_type="application/json")
