"""Every 405 names the methods its path takes in `Allow` (RFC 9110 §15.5.6), on real uvicorn."""

from __future__ import annotations

import re
from collections import defaultdict

import httpx
from starlette.routing import Route

from api_router.api.routes import routes
from tests.support.stack import Stack


def methods_by_path() -> dict[str, set[str]]:
    """The route table's methods per path, path parameters filled with a sample value
    (Starlette serves HEAD wherever it serves GET)."""
    table: dict[str, set[str]] = defaultdict(set)
    for route in routes():
        assert isinstance(route, Route) and route.methods is not None
        table[re.sub(r"\{[^}]+\}", "x1", route.path)] |= route.methods
    return table


async def test_every_405_lists_the_methods_of_its_path(stack: Stack) -> None:
    gateway = stack.gateway_process(check="healthz")
    table = methods_by_path()
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for path, methods in table.items():
            for wrong in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - methods):
                response = await client.request(wrong, path)
                assert response.status_code == 405, (wrong, path)
                assert response.headers["allow"] == ", ".join(sorted(methods)), (wrong, path)
                assert response.json()["error"]["code"] == "method_not_allowed"
    # Two routes share a path: the answer names both methods, not the first route's only.
    assert table["/v1/admin/keys"] == {"GET", "HEAD", "POST"}
