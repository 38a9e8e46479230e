"""Closing never hangs: a client's close and the in-process server's teardown are bounded.

A CI run once hung for good in the teardown of the in-process server: a
client closed while its listener was opening the push socket left the app's
WebSocket session waiting for a message that never came, and the
transport's task group waited for it. These tests pin the fix
(:class:`~tests.client.in_process._HandshakeSafeStream`) and the bound on
:meth:`~messenger.client.MessengerClient.close`.
"""

from __future__ import annotations

import asyncio

import anyio
import httpx
import httpx_ws
import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import messenger.client.client as client_module

from .in_process import InProcessServer, _InProcessTransport

pytestmark = pytest.mark.anyio

#: Generous: only a hang reaches it.
DEADLINE = 20.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_websocket_handshake_cancelled_midway_lets_the_transport_close() -> None:
    entered = asyncio.Event()
    accept = asyncio.Event()
    ended = asyncio.Event()

    async def endpoint(websocket: WebSocket) -> None:
        entered.set()
        await accept.wait()
        try:
            await websocket.accept()
            await websocket.receive_text()
        except (WebSocketDisconnect, anyio.ClosedResourceError):
            pass
        finally:
            ended.set()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    with anyio.fail_after(DEADLINE):
        async with _InProcessTransport(app) as transport:
            http = httpx.AsyncClient(transport=transport, base_url="http://testserver")

            async def connect() -> None:
                async with httpx_ws.aconnect_ws("ws://testserver/ws", http):
                    raise AssertionError("the handshake was to be cancelled")

            connecting = asyncio.create_task(connect())
            await entered.wait()  # the app runs; the client waits for its accept
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
            accept.set()  # the app goes on, and learns that the client went away
            await ended.wait()
    assert ended.is_set()


async def test_closing_a_client_while_it_connects_does_not_hang(
    server: InProcessServer,
) -> None:
    """The case the CI run hit: close() right after start(), during the first connection."""
    for name in ("alice", "bob", "carol"):
        client = await server.client(name)
        await client.start()
        await asyncio.sleep(0)  # the listener starts catching up
        with anyio.fail_after(DEADLINE):
            await client.close()


async def test_close_is_bounded_when_the_transport_does_not_answer(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "_CLOSE_STEP_S", 0.05)
    alice = await server.client("alice")
    await alice.start()
    session = alice._session
    assert session is not None
    never = asyncio.Event()
    real_aclose = session.transport.aclose

    async def stuck_aclose() -> None:
        await never.wait()

    monkeypatch.setattr(session.transport, "aclose", stuck_aclose)
    with anyio.fail_after(DEADLINE):
        await alice.close()
    assert alice._store._closed  # the store was closed after the abandoned step
    await real_aclose()
