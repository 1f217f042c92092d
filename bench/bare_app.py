"""The web framework's own ceiling: a bare FastAPI endpoint returning a constant (lookup bench baseline)."""

from fastapi import FastAPI

app = FastAPI()
ANSWER = {"entity_key": "K00000000", "score": 0.5, "label": False}


@app.get("/v1/predictions/{entity_key}")
async def constant(entity_key: str) -> dict[str, object]:
    return ANSWER
