"""Attachments with the queue key alone, from the app's side (docs/attachments.md §3).

Against the real server in process, whose wire records every request: once
the server has the queue key, every blob request -- the sender's
reservation, parts and status, the recipient's download, status and
``fetched`` -- is a queue request that names no client. A server that takes
no queue requests on the blob routes (one from before them) gets signed
requests that prove the queue, and the queue itself is still read by queue
request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable

import pytest

from messenger.api import routes as r
from messenger.client import MessengerClient
from messenger.client.attachments.crypto import CHUNK_SIZE
from messenger.client.store.attachments import TransferState
from messenger.server import routes as server_routes

from .in_process import Exchange, InProcessServer
from .test_attachments import WAIT, pair, state_is, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _is_blob(x: Exchange, template: str) -> bool:
    prefix, _, suffix = template.partition("{blob_id}")
    return (
        x.path.startswith(prefix)
        and x.path.endswith(suffix)
        and "/" not in x.path[len(prefix) : len(x.path) - len(suffix)]
    )


async def _send_one(server: InProcessServer) -> tuple[MessengerClient, MessengerClient, int]:
    """Alice sends Bob a file and he downloads it and says ``fetched``; Alice,
    Bob and Alice's conversation."""
    alice, bob, chat, bob_chat = await pair(server)
    await alice.send_file(chat, os.urandom(2 * CHUNK_SIZE + 5), name="a.bin")
    await until(state_is(bob, bob_chat, TransferState.DOWNLOADED), "Bob has the file", WAIT)
    await until(_fetched(server), "Bob said fetched")
    return alice, bob, chat


def _ids(client: MessengerClient) -> tuple[str, str]:
    identity = client._require().account.identity
    return identity.client_id, identity.queue_id


def _fetched(server: InProcessServer) -> Callable[[], Awaitable[bool]]:
    """Whether a ``fetched`` was answered 200 (the wire records it after the answer)."""

    async def check() -> bool:
        return any(
            x.method == "POST" and _is_blob(x, r.BLOB_FETCHED) and x.status == 200
            for x in server.wire.exchanges
        )

    return check


async def test_a_file_is_sent_and_fetched_naming_no_client(server: InProcessServer) -> None:
    """Every blob request, the sender's and the recipient's, is a queue request."""
    alice, bob, _chat = await _send_one(server)
    (_, alice_queue), (_, bob_queue) = _ids(alice), _ids(bob)
    blob = [x for x in server.wire.exchanges if x.path.startswith(r.BLOBS)]
    kinds = {(x.method, x.queue) for x in blob}
    # Alice reserved and uploaded (and asked how far it got); Bob downloaded
    # and said fetched.
    assert {("POST", alice_queue), ("PUT", alice_queue), ("GET", bob_queue)} <= kinds
    assert ("POST", bob_queue) in kinds
    assert all(x.client is None and x.status == 200 for x in blob), blob


async def test_a_server_without_blob_queue_requests_gets_signed_ones(
    server: InProcessServer,
) -> None:
    """The blob routes as a server from before took them (signed only): each
    queue request is ``auth_missing``, the app then signs and proves its queue,
    loses nothing, and still reads its queue by queue request."""
    older = [
        server_routes.endpoint(
            dataclasses.replace(route, queue_request=False),
            server_routes._HANDLERS[(route.method, route.path)],
        )
        for route in r.ROUTES
        if route.path.startswith(r.BLOBS) and route.queue_request
    ]
    assert len(older) == 6
    server.app.router.routes[:0] = older
    alice, bob, chat = await _send_one(server)
    ids = {_ids(c)[0]: _ids(c)[1] for c in (alice, bob)}
    blob = [x for x in server.wire.exchanges if x.path.startswith(r.BLOBS)]
    refused = [x for x in blob if x.client is None]
    assert refused and all(x.error == "auth_missing" for x in refused)
    served = [x for x in blob if x.status == 200]
    assert {x.client for x in served} == set(ids), "both signed their blob requests"
    assert all(x.queue == ids[x.client] for x in served if x.client is not None)
    bob_queue = _ids(bob)[1]
    # The refusals were of the blob routes only: Bob still reads his queue by
    # queue request, and a message after the file arrives so.
    assert bob._require().transport.reads_by_queue
    mark = len(server.wire.exchanges)
    await alice.send_text(chat, "and a text")
    await alice.flush(WAIT)
    await bob.sync()
    fetches = [
        x
        for x in server.wire.exchanges[mark:]
        if x.path == r.QUEUE_MESSAGES and x.queue == bob_queue
    ]
    assert fetches and all(x.client is None and x.status == 200 for x in fetches)
