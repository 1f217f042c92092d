"""The interactive docs of both APIs need no internet: every asset of /docs and /redoc is served by the app itself.

(scripts/docs_screenshots.py renders them in headless Chromium with every outside host unresolvable.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nightshift.settings import Settings


def _lookup(s: Settings) -> Any:
    from serving.lookup import create_app

    return create_app(s)


def _realtime(s: Settings) -> Any:
    from serving.realtime import create_app

    return create_app(s)


@pytest.mark.parametrize("make_app", [_lookup, _realtime], ids=["lookup", "realtime"])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_app(make_app: Callable[[Settings], Any], page: str,
                                                  settings: Settings) -> None:
    client = TestClient(make_app(settings))  # no lifespan: the docs need no model and no store
    html = client.get(page)
    assert html.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
    assets += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html.text)  # Swagger UI's openapi.json
    assert assets, html.text
    outside = [a for a in assets if re.match(r"^(https?:)?//", a)]
    assert not outside, f"{page} loads {outside} from outside the app"
    assert not re.search(r"cdn\.jsdelivr|unpkg\.com|fonts\.googleapis", html.text)
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert len(answer.content) > 1000, asset
    spec = client.get("/openapi.json").json()
    assert spec["paths"], "the document the page renders lists no operations"
