"""The hostile server itself: it serves its routes and records what it received."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from tests.hostile.servers import TOKEN, HostileServer

pytestmark = pytest.mark.anyio


async def test_serves_routes_and_records_requests() -> None:
    async def teapot(request: web.Request) -> web.StreamResponse:
        return web.Response(status=418, text="short and stout")

    async with HostileServer() as server:
        server.route("GET", "/Pot", teapot)
        async with aiohttp.ClientSession() as session:
            async with session.get(server.url + "/pot?id=1") as response:
                assert response.status == 418
            async with session.post(server.url + "/connect/token", data=b"x=1") as response:
                assert (await response.json())["access_token"] == TOKEN
            async with session.get(server.url + "/elsewhere") as response:
                assert response.status == 404
    assert [(r.method, r.path, r.query) for r in server.received] == [
        ("GET", "/pot", "id=1"),
        ("POST", "/connect/token", ""),
        ("GET", "/elsewhere", ""),
    ]
    assert server.requests_to("/CONNECT/token")[0].body == b"x=1"
