"""A long poll ends when nobody waits for it any more (messenger/server/routes.py).

Every app long-polls its contact queue beside its push socket
(docs/metadata.md §1), so a long poll must not outlive its reason: when the
client hangs up, the server stops waiting for it (the subscription goes at
once, not when the wait runs out), and when the server shuts down, a long
poll under way answers (empty) instead of holding uvicorn's graceful
shutdown until it is cancelled with an error. Both over a real uvicorn on a
loopback socket, the way the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from messenger.server.app import create_app
from messenger.server.cli import UvicornServer, uvicorn_config
from messenger.server.state import ServerState

from .client import ApiClient
from .conftest import make_config

pytestmark = pytest.mark.anyio

#: Longer than any test here waits for: a poll that ends did not time out.
LONG_WAIT = 60
DEADLINE = 30.0


async def _until(check: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _running(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[UvicornServer, str]]:
    app = create_app(make_config(tmp_path / "data", database_url), run_sweeper=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = UvicornServer(uvicorn_config(app, "127.0.0.1", port), app.state.server.hub)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _until(lambda: server.started or task.done(), "uvicorn to start")
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def _state(server: UvicornServer) -> ServerState:
    state: ServerState = server.config.app.state.server
    return state


async def _polling(url: str) -> tuple[ApiClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(base_url=url, timeout=LONG_WAIT + 30)
    client = ApiClient(http)
    await client.register()
    return client, http


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_long_poll_ends_when_its_client_hangs_up(database_url: str, tmp_path: Path) -> None:
    async with _running(tmp_path, database_url) as (server, url):
        hub = _state(server).hub
        client, http = await _polling(url)
        poll = asyncio.create_task(client.fetch(wait=LONG_WAIT))
        await _until(lambda: hub.subscriber_count == 1, "the long poll to wait")
        poll.cancel()  # the app closes, or its connection drops
        with contextlib.suppress(asyncio.CancelledError):
            await poll
        await http.aclose()
        await _until(lambda: hub.subscriber_count == 0, "the server to stop waiting")
        # The server goes on serving.
        other, other_http = await _polling(url)
        try:
            assert (await other.fetch()).messages == ()
        finally:
            await other_http.aclose()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_long_poll_answers_when_the_server_shuts_down(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with _running(tmp_path, database_url) as (server, url):
        hub = _state(server).hub
        client, http = await _polling(url)
        try:
            poll = asyncio.create_task(client.fetch(wait=LONG_WAIT))
            await _until(lambda: hub.subscriber_count == 1, "the long poll to wait")
            server.should_exit = True  # as SIGTERM does
            answer = await poll
            assert answer.messages == () and not answer.more
        finally:
            await http.aclose()
    assert not [x for x in caplog.records if "graceful shutdown" in x.getMessage()]
