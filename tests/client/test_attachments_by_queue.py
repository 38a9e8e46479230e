"""Attachments read with the queue key alone, from the app's side (docs/attachments.md §3).

Against the real server in process, whose wire records every request: once
the server has the queue key, a recipient's download, status and
``fetched`` are queue requests that name no client, while the sender's
upload stays signed (its account's quota). A server that takes no queue
requests on the blob routes (one from before them) gets signed requests
that prove the queue, and the queue itself is still read by queue request.
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

_BLOB_READS = frozenset({r.BLOB, r.BLOB_STATUS, r.BLOB_FETCHED})


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


def _reads(server: InProcessServer) -> list[Exchange]:
    """The recipients' blob requests: downloads, and every status and ``fetched``."""
    return [
        x
        for x in server.wire.exchanges
        if (x.method == "GET" and (_is_blob(x, r.BLOB) or _is_blob(x, r.BLOB_STATUS)))
        or (x.method == "POST" and _is_blob(x, r.BLOB_FETCHED))
    ]


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


async def test_a_recipient_fetches_a_file_naming_no_client(server: InProcessServer) -> None:
    alice, bob, _chat = await _send_one(server)
    (alice_id, _), (_, bob_queue) = _ids(alice), _ids(bob)
    # The sender asks about its own upload by account (signed, no capability).
    reads = [x for x in _reads(server) if x.client != alice_id]
    assert {x.method for x in reads} == {"GET", "POST"}, "downloads and fetched were sent"
    assert all(x.client is None and x.queue == bob_queue for x in reads), reads
    assert all(x.status == 200 for x in reads)
    # The sender's upload is signed by its client (the account's quota), and
    # proves its queue (the uploader is no recipient of its own file).
    uploads = [x for x in server.wire.exchanges if x.method == "PUT" and _is_blob(x, r.BLOB)]
    creates = server.wire.sent("POST", r.BLOBS)
    assert uploads and creates
    assert all(x.client == alice_id and x.queue is not None for x in [*uploads, *creates])


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
        if route.path in _BLOB_READS and route.queue_request
    ]
    assert len(older) == 3
    server.app.router.routes[:0] = older
    alice, bob, chat = await _send_one(server)
    (alice_id, _), (bob_id, bob_queue) = _ids(alice), _ids(bob)
    reads = [x for x in _reads(server) if x.client != alice_id]
    refused = [x for x in reads if x.client is None]
    assert refused and all(x.error == "auth_missing" for x in refused)
    served = [x for x in reads if x.status == 200]
    assert served and all(x.client == bob_id and x.queue == bob_queue for x in served)
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
