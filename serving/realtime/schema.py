"""Request and answer models of the real-time endpoint, derived from the dataset spec.

A row holds the spec's raw inputs (what a caller must send: the features that are not derived,
plus the derive hook's inputs) and, optionally, the entity key. Numerics are finite JSON numbers
(not booleans, not numeric strings) or null (the fitted preprocessing imputes nulls) within the
spec's [min, max] when it gives them;
categoricals with a closed set of categories accept only those (or null); open-set categoricals
accept any string of at most `max_chars` characters without a NUL byte. Unknown fields are refused,
so a typo gets a 422 that names the field (and the range or set it must lie in) instead of a
silently imputed value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from nightshift.spec import DatasetSpec
from serving.http import KEY_MAX, NO_NUL


def row_model(spec: DatasetSpec, max_chars: int = 200) -> type[BaseModel]:
    """The pydantic model of one input row of `spec` (open-set text at most `max_chars` long)."""
    if "rows" in (*spec.raw_inputs, spec.entity_key):
        raise ValueError(f"spec {spec.name}: an input named 'rows' clashes with the endpoint's multi-row form")
    kinds = {f.name: f for f in spec.features}
    fields: dict[str, Any] = {}
    for name in spec.raw_inputs:
        feature = kinds.get(name)
        if feature is not None and feature.kind == "categorical":
            if feature.categories:
                kind: Any = Literal[tuple(feature.categories)]  # type: ignore[misc]
                fields[name] = (kind | None, Field(..., description=f"categorical: {_categories(feature.categories)}"))
            else:
                fields[name] = (str | None, Field(..., max_length=max_chars, pattern=NO_NUL,
                                                  description=f"categorical: {_categories(None)}"))
        else:
            low, high = (feature.min, feature.max) if feature is not None else (None, None)
            where = f" in [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]" \
                if low is not None or high is not None else ""
            # strict: a JSON number or null, as the schema says; never `true` or "1.5" read as a number
            fields[name] = (float | None, Field(..., strict=True, allow_inf_nan=False, ge=low, le=high,
                                                description=f"numeric{where} (null: imputed)"))
    fields[spec.entity_key] = (str | None, Field(None, min_length=1, max_length=KEY_MAX, pattern=NO_NUL,
                                                 description="optional entity key: canary split and fallback"))
    config = ConfigDict(extra="forbid", title=f"{spec.name} row")
    return create_model(f"{spec.name.title()}Row", __config__=config, **fields)  # type: ignore[call-overload,no-any-return]


def rows_model(spec: DatasetSpec, row: type[BaseModel], max_rows: int) -> type[BaseModel]:
    """The pydantic model of a multi-row request: {"rows": [row, ...]} with 1..max_rows rows."""
    return create_model(f"{spec.name.title()}Rows", __config__=ConfigDict(extra="forbid"),  # type: ignore[call-overload,no-any-return]
                        rows=(list[row], Field(..., min_length=1, max_length=max_rows)))  # type: ignore[valid-type]


def _categories(values: list[str | int] | None) -> str:
    return ", ".join(map(str, values)) if values else "any text (unseen values map to the unknown bucket)"


class ModelRef(BaseModel):
    """The registered model (name, version) that computed a score."""

    name: str
    version: str


class Answer(BaseModel):
    """One row's prediction, and what answered it."""

    entity_key: str | None = None
    score: float
    label: bool
    model: ModelRef
    fallback: bool = Field(description="true when the model could not answer and the batch prediction did")
    source: Literal["model", "prediction_store"]
    snapshot_id: int | None = Field(None, description="the prediction snapshot a fallback answer came from")


class Answers(BaseModel):
    """The predictions of a multi-row request, in request order."""

    predictions: list[Answer]
