"""The web framework's own ceiling: bare FastAPI endpoints returning a constant (lookup and real-time baselines)."""

from fastapi import FastAPI

app = FastAPI()
ANSWER = {"entity_key": "K00000000", "score": 0.5, "label": False}


@app.get("/v1/predictions/{entity_key}")
async def constant(entity_key: str) -> dict[str, object]:
    return ANSWER

PREDICTION = {"entity_key": "UA1545-EWR-20130101-0515", "score": 0.5, "label": True,
              "model": {"name": "nightshift-flights", "version": "1"}, "fallback": False, "source": "model"}


@app.post("/v1/predict")
async def constant_prediction() -> dict[str, object]:
    """The real-time bench baseline: a constant answer (the request body is received, not parsed)."""
    return PREDICTION
