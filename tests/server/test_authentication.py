"""Signed requests: forged, tampered, stale and replayed ones get 401 and change nothing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_CLIENT, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP

from . import mls_data
from .client import ApiClient, Identity, send_token_hash
from .conftest import ServerFactory, TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

GROUP = b"auth-test-group"


async def _group(server: TestServer) -> tuple[ApiClient, ApiClient]:
    alice = await server.registered()
    bob = await server.registered()
    await alice.create_group(GROUP)
    await alice.commit(
        GROUP,
        0,
        mls_data.commit(GROUP, 0),
        [alice.me.queue_id, bob.me.queue_id],
        welcome=await alice.welcome_for(bob),
        welcome_to=[bob.me.queue_id],
    )
    return alice, bob


#: A signed route that changes state: sends are sealed (unsigned, docs/metadata.md §3),
#: so the authentication rules are proven on the commits route.
COMMITS = r.group_path(r.GROUP_COMMITS, GROUP)


def _commit_body(alice: ApiClient, bob: ApiClient, tag: bytes = b"commit") -> bytes:
    return m.CommitRequest(
        1,
        mls_data.commit(GROUP, 1, tag),
        (alice.me.queue_id, bob.me.queue_id),
        send_token_hash=send_token_hash(GROUP, 2),
    ).dumps()


async def _refused(server: TestServer, response_code: str, send: object) -> None:
    before = await snapshot(server, exclude=())
    response = await send  # type: ignore[misc]
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == response_code
    assert await snapshot(server, exclude=()) == before


async def test_unsigned_request(server: TestServer) -> None:
    alice, _bob = await _group(server)
    upload = m.UploadKeyPackagesRequest((alice.key_package(),)).dumps()
    await _refused(server, "auth_missing", alice.raw("POST", r.KEY_PACKAGES, upload, signed=False))


async def test_an_unsigned_commit_without_a_send_token_changes_nothing(server: TestServer) -> None:
    """Commits may be sealed (docs/metadata.md §3): unsigned, a commit must carry
    the epoch's send token; without one it is an old app's, and refused whole."""
    alice, bob = await _group(server)
    before = await snapshot(server, exclude=())
    response = await alice.raw("POST", COMMITS, _commit_body(alice, bob), signed=False)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "outdated_client"
    assert await snapshot(server, exclude=()) == before


async def test_signature_by_another_key(server: TestServer) -> None:
    alice, bob = await _group(server)
    forger = ApiClient(
        alice.http,
        Identity(Ed25519PrivateKey.generate(), alice.me.account_id, alice.me.client_id, ""),
    )
    await _refused(server, "auth_invalid", forger.raw("POST", COMMITS, _commit_body(alice, bob)))


async def test_unknown_client(server: TestServer) -> None:
    alice, bob = await _group(server)
    stranger = ApiClient(
        alice.http, Identity(Ed25519PrivateKey.generate(), "", b64encode(b"\x01" * 16), "")
    )
    await _refused(server, "auth_invalid", stranger.raw("POST", COMMITS, _commit_body(alice, bob)))


async def test_tampered_body_path_and_query(server: TestServer) -> None:
    alice, bob = await _group(server)
    body = _commit_body(alice, bob)
    headers = alice.sign("POST", COMMITS, body)
    other_body = _commit_body(alice, bob, b"forged")
    await _refused(
        server,
        "auth_invalid",
        alice.http.post(
            COMMITS, content=other_body, headers={**headers, "content-type": "application/json"}
        ),
    )
    headers = alice.sign("GET", r.QUEUE_MESSAGES + "?after=0", b"")
    await _refused(
        server, "auth_invalid", alice.http.get(r.QUEUE_MESSAGES + "?after=5", headers=headers)
    )
    headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")
    await _refused(server, "auth_invalid", alice.http.get(r.QUEUE_MESSAGES, headers=headers))
    headers = alice.sign("PUT", r.HANDLE, b"")
    await _refused(server, "auth_invalid", alice.http.delete(r.HANDLE, headers=headers))


async def test_malformed_headers(server: TestServer) -> None:
    alice, _ = await _group(server)
    good = alice.sign("GET", r.QUEUE_MESSAGES, b"")
    for name, value in (
        (HEADER_NONCE, b64encode(b"short")),
        (HEADER_TIMESTAMP, "12e3"),
        (HEADER_SIGNATURE, "not base64!"),
        (HEADER_CLIENT, "x"),
    ):
        await _refused(
            server,
            "auth_invalid",
            alice.http.get(r.QUEUE_MESSAGES, headers={**good, name: value}),
        )


async def test_stale_and_future_timestamps(server: TestServer) -> None:
    alice, _ = await _group(server)
    window_ms = server.state.config.timestamp_window_seconds * 1000
    now_ms = int(server.clock() * 1000)
    for ts in (now_ms - window_ms - 5000, now_ms + window_ms + 5000):
        headers = alice.sign("GET", r.QUEUE_MESSAGES, b"", timestamp_ms=ts)
        await _refused(server, "auth_expired", alice.http.get(r.QUEUE_MESSAGES, headers=headers))


async def test_replayed_request_is_refused_and_not_delivered_twice(server: TestServer) -> None:
    alice, bob = await _group(server)
    body = _commit_body(alice, bob)
    headers = {**alice.sign("POST", COMMITS, body), "content-type": "application/json"}
    first = await alice.http.post(COMMITS, content=body, headers=headers)
    assert first.status_code == 200
    # The replay is refused as a replay (before the commit could be stale).
    await _refused(server, "auth_replayed", alice.http.post(COMMITS, content=body, headers=headers))
    fetched = await bob.fetch()
    # Bob joined with the first commit (which went to the old members only,
    # while he got the Welcome): he has exactly one copy of this commit.
    assert len(fetched.messages) == 2
    assert fetched.messages[1].data == m.CommitRequest.loads(body).commit


async def test_replay_is_refused_after_a_restart(
    server_factory: ServerFactory,
) -> None:
    async with server_factory() as server:
        alice = await server.registered()
        headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")
        assert (await alice.http.get(r.KEY_PACKAGE_COUNT, headers=headers)).status_code == 200
    async with server_factory() as server:
        again = await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)
        assert again.status_code == 401
        assert again.json()["error"]["code"] == "auth_replayed"


async def test_websocket_handshake_must_be_signed(server: TestServer) -> None:
    alice, _ = await _group(server)
    target = f"{r.QUEUE_WEBSOCKET}?after=0"
    forged = {**alice.sign("GET", target, b""), HEADER_SIGNATURE: b64encode(b"\x00" * 64)}
    before = await snapshot(server, exclude=())
    for headers in ({}, forged):
        with pytest.raises((WebSocketUpgradeError, WebSocketDisconnect)) as info:
            async with alice.websocket(headers=headers) as ws:
                await ws.next_frame(timeout=2)
        if server.transport == "uvicorn":
            # uvicorn supports denial responses: the typed 401 of any request.
            assert isinstance(info.value, WebSocketUpgradeError)
            assert info.value.response.status_code == 401
        else:
            # The in-process transport cannot send one: the socket is closed (1008).
            assert isinstance(info.value, WebSocketDisconnect)
    assert await snapshot(server, exclude=()) == before
