"""Queue requests: the queue read with its own key alone (docs/metadata.md §1).

Once a queue has a key of its own, reading it (fetch, long poll, push),
acknowledging it and asking for a delivery address of it take a **queue
request**: the queue ID, a timestamp, a nonce and the queue key's signature
over :func:`~messenger.api.signing.queue_request`, and no client ID. Each
test below either reads the queue that way and checks that nothing of the
request names the client, or plays another user (or a removed device)
presenting a queue request it should not be able to make, and checks that
the refusal changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64decode, b64encode
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_QUEUE_SIGNATURE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
)
from messenger.server.authentication import nonce_digest, queue_nonce_digest
from messenger.server.routes import queue_limit_key

from . import mls_data
from .conftest import ServerFactory, TestServer
from .dbtools import rows, snapshot
from .hub_watch import DEADLINE, subscribers, until

pytestmark = pytest.mark.anyio

GID = b"R" * 32


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _without_nonces(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {k: v for k, v in snap.items() if k != "request_nonces"}


async def _nonce_hashes(server: TestServer) -> set[bytes]:
    return {bytes(row[0]) for row in await rows(server, "request_nonces")}


async def test_a_queue_is_read_acked_and_pushed_with_its_key_alone(server: TestServer) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await bob.start_group(GID, alice)
    fetch = r.QUEUE_MESSAGES + "?after=0"
    headers = alice.queue_headers("GET", fetch, b"")
    assert HEADER_CLIENT not in headers and HEADER_SIGNATURE not in headers
    response = await alice.queue_raw("GET", fetch, headers=headers)
    assert response.status_code == 200, response.json()
    (welcome,) = m.FetchResponse.from_json(response.json()).messages
    # The stored nonce is keyed by the queue: no digest a client's ID makes.
    nonce = headers[HEADER_NONCE]
    stored = await _nonce_hashes(server)
    key = server.state.keys.request_nonce_key
    raw_nonce = b64decode(nonce)
    assert queue_nonce_digest(key, alice.me.queue_id, raw_nonce) in stored
    assert nonce_digest(key, alice.me.client_id, raw_nonce) not in stored
    # A delivery address, the ack, and the push socket take queue requests too.
    address = await alice.queue_raw("GET", r.QUEUE_ADDRESS)
    assert address.status_code == 200
    assert server.state.addresses.resolve(
        m.QueueAddressResponse.from_json(address.json()).address
    ) == (alice.me.queue_id)
    acked = await alice.queue_raw("POST", r.ACK, m.AckRequest(welcome.seq))
    assert acked.status_code == 200 and m.AckResponse.from_json(acked.json()).deleted == 1
    target = f"{r.QUEUE_WEBSOCKET}?after={welcome.seq}"
    async with alice.websocket(
        after=welcome.seq, headers=alice.queue_headers("GET", target, b"")
    ) as socket:
        await until(lambda: subscribers(server.state.hub, alice.me.queue_id) == 1, "the socket")
        await bob.send(GID, mls_data.application(GID, 1, b"hi"))
        (pushed,) = await socket.messages(1)
        assert (await socket.ack(pushed.seq)).deleted == 1
    # A long poll by queue request waits and answers like a signed one.
    poll = asyncio.create_task(
        alice.queue_raw("GET", f"{r.QUEUE_MESSAGES}?after={pushed.seq}&wait=30")
    )
    await until(lambda: subscribers(server.state.hub, alice.me.queue_id) == 1, "the poll")
    await bob.send(GID, mls_data.application(GID, 1, b"again"))
    polled = await asyncio.wait_for(poll, DEADLINE)
    assert polled.status_code == 200
    assert len(m.FetchResponse.from_json(polled.json()).messages) == 1


async def test_queue_requests_that_do_not_verify_are_refused_and_change_nothing(
    server: TestServer,
) -> None:
    alice, bob, mallory = [await server.registered() for _ in range(3)]
    carol = await server.registered()  # her queue has no key of its own
    await alice.give_queue_key()
    await mallory.give_queue_key()
    await bob.start_group(GID, alice)
    fetch = r.QUEUE_MESSAGES + "?after=0"
    used = alice.queue_headers("GET", fetch, b"")
    assert (await alice.queue_raw("GET", fetch, headers=used)).status_code == 200
    before = await snapshot(server, exclude=())

    attempts: list[tuple[str, dict[str, str], tuple[int, str]]] = []
    # Mallory signs a queue request for Alice's queue with her own queue key.
    assert mallory.queue_key is not None
    attempts.append(
        (
            "GET",
            alice.queue_headers("GET", fetch, b"", key=mallory.queue_key),
            (401, "auth_invalid"),
        )
    )
    # A captured queue request, sent again.
    attempts.append(("GET", used, (401, "auth_replayed")))
    # The queue proof of one of Alice's signed requests is not a queue request's
    # signature (a prefix of its own), nor is her client signature.
    signed = alice.sign("GET", fetch, b"")
    attempts.append(
        (
            "GET",
            {**used, HEADER_QUEUE_SIGNATURE: signed[HEADER_QUEUE_SIGNATURE]},
            (401, "auth_invalid"),
        )
    )
    attempts.append(
        ("GET", {**used, HEADER_QUEUE_SIGNATURE: signed[HEADER_SIGNATURE]}, (401, "auth_invalid"))
    )
    # Signed for another target (a later cursor) and sent for this one.
    later = alice.queue_headers("GET", r.QUEUE_MESSAGES + "?after=9", b"")
    attempts.append(("GET", later, (401, "auth_invalid")))
    # Outside the window, malformed, half the headers.
    stale = alice.queue_headers("GET", fetch, b"", timestamp_ms=int(server.clock() * 1000) - 10**9)
    attempts.append(("GET", stale, (401, "auth_expired")))
    fresh = alice.queue_headers("GET", fetch, b"")
    attempts.append(("GET", {**fresh, HEADER_NONCE: "short"}, (401, "auth_invalid")))
    attempts.append(("GET", {**fresh, HEADER_TIMESTAMP: "-1"}, (401, "auth_invalid")))
    half = {k: v for k, v in alice.queue_headers("GET", fetch, b"").items() if k != HEADER_NONCE}
    attempts.append(("GET", half, (401, "auth_missing")))
    for method, headers, expected in attempts:
        assert _error(await alice.queue_raw(method, fetch, headers=headers)) == expected, headers
    # A queue that has no key of its own takes no queue request, whatever signs it.
    loose = carol.queue_headers("GET", fetch, b"", key=Ed25519PrivateKey.generate())
    assert _error(await carol.queue_raw("GET", fetch, headers=loose)) == (401, "auth_invalid")
    # Mallory acks Alice's queue with her own key: refused, the Welcome stays.
    assert mallory.queue_key is not None
    forged_ack = alice.queue_headers("POST", r.ACK, m.AckRequest(99).dumps(), key=mallory.queue_key)
    response = await alice.queue_raw("POST", r.ACK, m.AckRequest(99), headers=forged_ack)
    assert _error(response) == (401, "auth_invalid")
    # A route that does not take queue requests answers as to an unsigned one.
    response = await alice.queue_raw("GET", r.KEY_PACKAGE_COUNT)
    assert _error(response) == (401, "auth_missing")
    # A push socket whose handshake is Mallory's queue request for Alice's queue.
    target = f"{r.QUEUE_WEBSOCKET}?after=0"
    forged_ws = alice.queue_headers("GET", target, b"", key=mallory.queue_key)
    with pytest.raises((WebSocketUpgradeError, WebSocketDisconnect)):
        async with alice.websocket(headers=forged_ws) as ws:
            await ws.next_frame(timeout=DEADLINE)
    assert await snapshot(server, exclude=()) == before


async def test_a_removed_devices_queue_requests_get_device_removed(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    await alice.give_queue_key()
    kill = await laptop.give_queue_key()
    # A signed request with the queue proof: the server caches the client and key.
    assert (await laptop.raw("GET", r.KEY_PACKAGE_COUNT)).status_code == 200
    target = f"{r.QUEUE_WEBSOCKET}?after=0"
    async with laptop.websocket(headers=laptop.queue_headers("GET", target, b"")) as ws:
        await until(lambda: subscribers(server.state.hub, laptop.me.queue_id) == 1, "the socket")
        poll = asyncio.create_task(laptop.queue_raw("GET", f"{r.QUEUE_MESSAGES}?after=0&wait=30"))
        await until(lambda: subscribers(server.state.hub, laptop.me.queue_id) == 2, "the poll")
        path = r.client_path(laptop.me.client_id)
        await alice.call("DELETE", path, m.RemoveClientRequest(kill), m.Empty)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                await ws.next_frame(timeout=DEADLINE)
        assert (closed.value.code, closed.value.reason) == (1008, "device_removed")
        polled = await asyncio.wait_for(poll, DEADLINE)
        assert _error(polled) == (401, "device_removed")
    before = _without_nonces(await snapshot(server, exclude=()))
    fetch = r.QUEUE_MESSAGES + "?after=0"
    assert _error(await laptop.queue_raw("GET", fetch)) == (401, "device_removed")
    assert _error(await laptop.queue_raw("POST", r.ACK, m.AckRequest(1))) == (
        401,
        "device_removed",
    )
    # Its signed requests too, though this process forgot the queue's key (the
    # queue requests above found it gone) while it still caches the client.
    assert _error(await laptop.raw("GET", r.KEY_PACKAGE_COUNT)) == (401, "device_removed")
    async with laptop.websocket(headers=laptop.queue_headers("GET", target, b"")) as ws:
        with pytest.raises(WebSocketDisconnect) as refused:
            await ws.next_frame(timeout=DEADLINE)
    assert (refused.value.code, refused.value.reason) == (1008, "device_removed")
    # Every route that takes queue requests (making a group, every blob route)
    # answers so too, before it reads a body.
    filler = b64encode(os.urandom(16))
    for route in r.ROUTES:
        if not route.queue_request:
            continue
        target = route.path.replace("{group_id}", filler).replace("{blob_id}", filler)
        headers = laptop.queue_headers(route.method, target, b"")
        answer = await laptop.http.request(route.method, target, headers=headers)
        assert _error(answer) == (401, "device_removed"), route.path
    assert _without_nonces(await snapshot(server, exclude=())) == before


async def test_a_device_whose_queue_has_its_key_is_not_taken_over(server: TestServer) -> None:
    alice = await server.registered()
    await alice.give_queue_key()
    before = _without_nonces(await snapshot(server, exclude=()))
    response = await alice.raw("POST", r.CLIENT_TAKEOVER, m.TakeoverRequest(os.urandom(32)))
    assert _error(response) == (409, "key_in_use")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The device goes on as before, with and without its device token.
    assert (await alice.queue_raw("GET", r.QUEUE_MESSAGES + "?after=0")).status_code == 200
    assert (await alice.raw("GET", r.KEY_PACKAGE_COUNT)).status_code == 200


async def test_queue_requests_spend_the_queues_budget(server_factory: ServerFactory) -> None:
    async with server_factory(account_requests_per_minute=4) as server:
        alice = await server.registered()
        await alice.give_queue_key()
        fetch = r.QUEUE_MESSAGES + "?after=0"
        codes = [(await alice.queue_raw("GET", fetch)).status_code for _ in range(6)]
        assert codes[:4] == [200] * 4 and codes[-1] == 429, codes
        # The account's own budget is another one: its signed requests pass.
        assert (await alice.raw("GET", r.KEY_PACKAGE_COUNT)).status_code == 200
        # A queue's budget is kept under a key that no account ID can take.
        assert queue_limit_key(alice.me.queue_id).startswith("queue ")
        assert " " not in alice.me.account_id
