"""A restore takes over the device: ``POST /v1/clients/takeover`` and the device token.

Two copies of one client (same keys, same IDs) stand for the original and
the copy restored from its backup. Once the restored copy takes the client
over, only requests and WebSockets carrying its device token are served:
the other copy gets ``device_replaced`` (401) and changes nothing, its open
WebSockets are closed and its long polls end.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx_ws import WebSocketDisconnect

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_DEVICE_TOKEN
from messenger.server import create_app, devices
from messenger.server.storage import Tx

from . import mls_data
from .client import ApiClient, Identity, send_token_hash
from .conftest import TestServer, make_config, postgres_schema, serve
from .dbtools import columns, count, rows, seq_base, snapshot
from .hub_watch import DEADLINE, subscribers, until

pytestmark = pytest.mark.anyio

GID = os.urandom(32)


async def _pair(server: TestServer) -> tuple[ApiClient, ApiClient]:
    """Alice and Bob in GID (epoch 1)."""
    alice = await server.registered()
    bob = await server.registered()
    await alice.create_group(GID)
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [alice.me.queue_id, bob.me.queue_id],
        welcome=await alice.welcome_for(bob),
        welcome_to=[bob.me.queue_id],
    )
    return alice, bob


async def _replaced(server: TestServer, request: Any) -> None:
    """``request`` (an awaitable response) gets device_replaced and changes nothing."""
    before = await snapshot(server, exclude=())
    response = await request
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "device_replaced"
    assert await snapshot(server, exclude=()) == before  # not even the request's nonce


async def test_after_a_takeover_only_the_new_copy_is_served(server: TestServer) -> None:
    old, bob = await _pair(server)
    await old.send(GID, mls_data.application(GID, 1, b"before"))
    restored = old.copy()
    token = os.urandom(32)
    await restored.take_over(token)
    token_column = (await columns(server, "clients")).index("device_token_hash")
    assert [
        row[token_column] for row in await rows(server, "clients") if row[0] == old.me.client_id
    ] == [devices.device_token_hash(token)]
    # Sends are sealed (unsigned, docs/metadata.md §3): the device token guards
    # the signed routes, so the old copy is refused on the commits route and
    # the GroupInfo route.
    path = r.group_path(r.GROUP_COMMITS, GID)
    body = m.CommitRequest(
        1,
        mls_data.commit(GID, 1, b"from the old copy"),
        (old.me.queue_id, bob.me.queue_id),
        send_token_hash=send_token_hash(GID, 2),
    )
    put_info = m.GroupInfoRequest(1, mls_data.group_info(GID, 1))
    # The old copy has no token, or another one, or a malformed one.
    await _replaced(server, old.raw("POST", path, body))
    await _replaced(server, old.raw("PUT", r.group_path(r.GROUP_INFO, GID), put_info))
    old.device_token = os.urandom(32)
    await _replaced(server, old.raw("POST", path, body))
    await _replaced(server, old.raw("PUT", r.group_path(r.GROUP_INFO, GID), put_info))
    await _replaced(server, old.raw("GET", r.QUEUE_MESSAGES, headers={HEADER_DEVICE_TOKEN: "!"}))
    await _replaced(server, old.raw("POST", r.ACK, m.AckRequest(10)))
    # The restored copy works; the other clients are not affected.
    await restored.send(GID, mls_data.application(GID, 1, b"from the restored copy"))
    await bob.send(GID, mls_data.application(GID, 1, b"to alice"))
    assert len((await restored.fetch()).messages) == 4  # commit, before, restored's, Bob's
    with pytest.raises(ApiError) as info:
        await old.fetch()
    assert info.value.code is ErrorCode.DEVICE_REPLACED and info.value.status == 401


async def test_a_later_restore_takes_over_again(server: TestServer) -> None:
    original, _ = await _pair(server)
    first, second = original.copy(), original.copy()
    await first.take_over(os.urandom(32))
    await first.key_package_count()
    # The takeover route needs no current token: a second restore is a takeover too.
    token = os.urandom(32)
    await second.take_over(token)
    await second.take_over(token)  # a retry after a lost answer is harmless
    await second.key_package_count()
    with pytest.raises(ApiError) as info:
        await first.key_package_count()
    assert info.value.code is ErrorCode.DEVICE_REPLACED


async def test_the_takeover_route_is_signed_and_for_ones_own_client(server: TestServer) -> None:
    alice, _ = await _pair(server)
    mallory = await server.registered()
    body = m.TakeoverRequest(os.urandom(32))
    before = await snapshot(server, exclude=())
    unsigned = await mallory.raw("POST", r.CLIENT_TAKEOVER, body, signed=False)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "auth_missing"
    # Mallory names Alice's client but can only sign with her own key.
    forger = ApiClient(
        mallory.http,
        Identity(
            Ed25519PrivateKey.generate(),
            alice.me.account_id,
            alice.me.client_id,
            alice.me.queue_id,
        ),
    )
    forged = await forger.raw("POST", r.CLIENT_TAKEOVER, body)
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "auth_invalid"
    assert await snapshot(server, exclude=()) == before
    # Her own takeover concerns her own client only.
    await mallory.take_over(os.urandom(32))
    await alice.send(GID, mls_data.application(GID, 1, b"still alice"))
    bad = await mallory.raw("POST", r.CLIENT_TAKEOVER, {"device_token": b64encode(b"x" * 31)})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_field"


async def test_tokens_are_compared_in_constant_time(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _ = await _pair(server)
    restored = alice.copy()
    token = os.urandom(32)
    await restored.take_over(token)
    compared: list[tuple[bytes, bytes]] = []
    real = devices.hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(devices.hmac, "compare_digest", spy)
    await restored.key_package_count()
    with pytest.raises(ApiError):
        await alice.key_package_count()
    stored = devices.device_token_hash(token)
    assert compared == [(stored, stored), (devices.device_token_hash(b""), stored)]
    # Only the hash is stored, never the token.
    stored_values = [v for row in await rows(server, "clients") for v in row]
    assert stored in stored_values and token not in stored_values


async def test_open_websockets_of_the_old_copy_are_closed(server: TestServer) -> None:
    old, bob = await _pair(server)
    restored = old.copy()
    async with old.websocket(after=0) as ws:
        await until(lambda: subscribers(server.state.hub, old.me.queue_id) == 1, "the socket")
        assert len(await ws.messages(1)) == 1  # the commit
        await restored.take_over(os.urandom(32))
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                await ws.next_frame(timeout=DEADLINE)
        assert (info.value.code, info.value.reason) == (1008, "device_replaced")
    await until(lambda: subscribers(server.state.hub, old.me.queue_id) == 0, "the socket closed")
    # Messages sent now stay for the restored copy; the old copy cannot connect.
    await bob.send(GID, mls_data.application(GID, 1, b"after the takeover"))
    # The old copy's new sockets are closed at once, saying why (a denied
    # handshake's body cannot be read by the client).
    async with old.websocket(after=0) as ws:
        with pytest.raises(WebSocketDisconnect) as refused:
            await ws.next_frame(timeout=DEADLINE)
    assert (refused.value.code, refused.value.reason) == (1008, "device_replaced")
    commit = await seq_base(server, old.me.queue_id) - 1  # before the new message
    async with restored.websocket(after=commit) as ws:
        (pushed,) = await ws.messages(1)
        assert pushed.seq == commit + 1


async def test_a_long_poll_of_the_old_copy_ends_refused(server: TestServer) -> None:
    old, _ = await _pair(server)
    last = (await old.fetch()).messages[-1].seq
    await old.ack(last)
    restored = old.copy()
    poll = asyncio.create_task(old.raw("GET", f"{r.QUEUE_MESSAGES}?after={last}&wait=30"))
    await until(lambda: subscribers(server.state.hub, old.me.queue_id) == 1, "the long poll")
    started = time.monotonic()
    await restored.take_over(os.urandom(32))
    response = await asyncio.wait_for(poll, DEADLINE)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "device_replaced"
    assert time.monotonic() - started < 30  # woken, not timed out


async def test_a_websocket_opened_during_a_takeover_is_checked_again(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The takeover commits after the socket's authentication, before it registers."""
    old, _ = await _pair(server)
    restored = old.copy()
    auth = server.state.auth
    real = auth.authenticate

    async def authenticate_then_takeover(*args: Any, **kwargs: Any) -> Any:
        principal = await real(*args, **kwargs)
        if args[1].startswith(r.QUEUE_WEBSOCKET):
            await restored.take_over(os.urandom(32))
        return principal

    monkeypatch.setattr(auth, "authenticate", authenticate_then_takeover)
    async with old.websocket(after=0) as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.next_frame(timeout=DEADLINE)  # not even the commit: closed at once
    assert (info.value.code, info.value.reason) == (1008, "device_replaced")


async def test_a_takeover_closes_sockets_on_every_instance(tmp_path: Path) -> None:
    """Two server instances on one PostgreSQL: the takeover goes through one, the
    old copy's WebSocket is open on the other."""
    async with postgres_schema() as dsn:
        config = make_config(tmp_path / "shared", dsn)
        app_a = create_app(config, run_sweeper=False)
        app_b = create_app(config, run_sweeper=False)
        async with serve(app_a, "uvicorn", time.time) as a, serve(app_b, "uvicorn", time.time) as b:
            old = await a.registered()
            on_b = ApiClient(b.http, old.identity, old.clock)
            async with on_b.websocket(after=0) as ws:
                await until(lambda: subscribers(b.state.hub, old.me.queue_id) == 1, "the socket")
                await old.copy().take_over(os.urandom(32))
                with pytest.raises(WebSocketDisconnect) as info:
                    while True:
                        await ws.next_frame(timeout=DEADLINE)
                assert info.value.reason == "device_replaced"
            assert await count(b, "clients") == 1


async def test_sockets_are_checked_again_after_a_lost_listen_connection(
    server: TestServer,
) -> None:
    """A takeover another process made while this one's LISTEN was down was not heard;
    when the connection is back (a ``*`` notification) every open socket is checked."""
    old, bob = await _pair(server)
    restored = old.copy()
    token = os.urandom(32)
    restored.device_token = token
    commit = await seq_base(server, old.me.queue_id)
    async with (
        old.websocket(after=commit) as old_ws,
        restored.websocket(after=commit) as new_ws,
    ):
        await until(lambda: subscribers(server.state.hub, old.me.queue_id) == 2, "both sockets")

        async def taken_over_elsewhere(tx: Tx) -> None:
            await tx.execute(
                "UPDATE clients SET device_token_hash = ? WHERE client_id = ?",
                devices.device_token_hash(token),
                old.me.client_id,
            )

        await server.state.db.transaction(taken_over_elsewhere)
        server.state.devices.on_notification("*")
        with pytest.raises(WebSocketDisconnect) as info:
            await old_ws.next_frame(timeout=DEADLINE)
        assert info.value.reason == "device_replaced"
        await bob.send(GID, mls_data.application(GID, 1, b"for the restored copy"))
        (pushed,) = await new_ws.messages(1)
        assert pushed.seq == commit + 1
