"""The web framework's own ceiling: constant answers, no work (lookup and real-time baselines).

`app`: bare FastAPI endpoints (the issues' baseline). `starlette_app`: the same answers from plain
Starlette routes, the floor under the two hot routes, which the lookup API and the real-time
endpoint serve as Starlette routes (serving/http.py).
"""

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

app = FastAPI()
ANSWER = {"entity_key": "K00000000", "score": 0.5, "label": False}
PREDICTION = {"entity_key": "UA1545-EWR-20130101-0515", "score": 0.5, "label": True,
              "model": {"name": "nightshift-flights", "version": "1"}, "fallback": False, "source": "model"}


@app.get("/v1/predictions/{entity_key}")
async def constant(entity_key: str) -> dict[str, object]:
    return ANSWER


@app.post("/v1/predict")
async def constant_prediction() -> dict[str, object]:
    """The real-time bench baseline: a constant answer (the request body is received, not parsed)."""
    return PREDICTION


async def _constant(_request: Request) -> JSONResponse:
    return JSONResponse(ANSWER)


async def _constant_prediction(_request: Request) -> JSONResponse:
    return JSONResponse(PREDICTION)


starlette_app = Starlette(routes=[Route("/v1/predictions/{entity_key}", _constant, methods=["GET"]),
                                  Route("/v1/predict", _constant_prediction, methods=["POST"])])
