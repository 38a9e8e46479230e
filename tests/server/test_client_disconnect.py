"""A client that hangs up in the middle of a request body is not a server fault.

Starlette raises ``ClientDisconnect`` from ``request.stream()``; the route
wrapper must end the request quietly (a debug line, no traceback at error
level) and change nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from messenger.api import routes as r
from messenger.server.app import create_app

from .conftest import make_config

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_body_cut_off_by_a_disconnect_is_not_logged_as_a_failure(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="messenger")
    app = create_app(make_config(tmp_path / "data", database_url), run_sweeper=False)
    route = next(x for x in r.ROUTES if x.method == "POST" and "{" not in x.path)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": route.path,
        "raw_path": route.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "app": app,
    }
    messages = [
        {"type": "http.request", "body": b'{"partial": ', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [400]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR], caplog.text
    assert "client disconnected" in caplog.text
