"""Sends to one group that arrive together share one transaction, and each
keeps its own checks and answer (``DeliveryService._drain``).

The sends are started with :func:`asyncio.gather` on the service itself, so
they are all waiting before the group's first transaction starts (asyncio
runs tasks in the order they were scheduled): one transaction stores them,
which the tests count, on each backend.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from messenger.api import models as m
from messenger.api.errors import ApiError, ErrorCode
from messenger.mls.content import ContentType, PrivateMessage
from messenger.mls.messages import MLSMessage
from messenger.server.storage import Database, Operation

from . import mls_data
from .client import ApiClient, send_token
from .conftest import ServerFactory, TestServer

pytestmark = pytest.mark.anyio

GID = os.urandom(32)


@pytest.fixture
async def server(server_factory: ServerFactory) -> AsyncIterator[TestServer]:
    async with server_factory(max_queue_length=20) as s:
        yield s


async def _group(server: TestServer, n: int) -> list[ApiClient]:
    """``n`` clients in ``GID`` at epoch 1; the first created it."""
    clients = [await server.registered() for _ in range(n)]
    creator = clients[0]
    await creator.create_group(GID)
    queues = [c.me.queue_id for c in clients]
    await creator.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        queues,
        welcome=await creator.welcome_for(*clients[1:]),
        welcome_to=queues[1:],
    )
    return clients


@contextmanager
def _count_transactions(db: Database) -> Iterator[list[int]]:
    """Count the write transactions ``db`` runs meanwhile."""
    counted = [0]
    original = db.transaction

    async def transaction(op: Operation[object]) -> object:
        counted[0] += 1
        return await original(op)

    db.transaction = transaction  # type: ignore[method-assign,assignment]
    try:
        yield counted
    finally:
        del db.transaction


async def _texts(client: ApiClient) -> list[tuple[int, bytes]]:
    """(seq, plaintext) of the application messages in ``client``'s queue."""
    out = []
    for msg in (await client.fetch(0, limit=1000)).messages:
        body = MLSMessage.from_bytes(msg.data).body
        if isinstance(body, PrivateMessage) and body.content_type is ContentType.APPLICATION:
            out.append((msg.seq, mls_data.decrypt(body.ciphertext)))
    return out


def _send(
    server: TestServer,
    client: ApiClient,
    epoch: int,
    text: bytes,
    key: bytes | None = None,
    *,
    token: bytes | None = None,
) -> Coroutine[Any, Any, m.SendResponse]:
    """The service's sealed send of ``text`` by ``client`` (not yet started).

    It carries the token ``client`` knows for ``epoch`` unless ``token`` is given.
    """
    request = client.sealed(GID, mls_data.application(GID, epoch, text), key)
    if token is not None:
        request = m.SendRequest(request.message, key, token)
    return server.state.delivery.send(GID, request)


async def test_concurrent_sends_share_one_transaction_in_order(server: TestServer) -> None:
    clients = await _group(server, 3)
    texts = [b"m%d" % i for i in range(12)]
    with _count_transactions(server.state.db) as counted:
        answers = await asyncio.gather(
            *(_send(server, clients[i % 3], 1, t) for i, t in enumerate(texts))
        )
    assert counted[0] == 1
    assert all((a.epoch, a.recipients) == (1, 3) for a in answers)
    queues = [await _texts(c) for c in clients]
    # Every member holds every message once, consecutively, in arrival order.
    for queue in queues:
        assert [t for _, t in queue] == texts
        seqs = [s for s, _ in queue]
        assert seqs == list(range(seqs[0], seqs[0] + len(texts)))


async def test_each_send_keeps_its_own_refusal(server: TestServer) -> None:
    alice, bob = await _group(server, 2)
    stranger = await server.registered()
    with _count_transactions(server.state.db) as counted:
        results = await asyncio.gather(
            _send(server, alice, 1, b"first"),
            _send(server, stranger, 1, b"not a member"),
            _send(server, bob, 0, b"stale", token=send_token(GID, 1)),
            _send(server, bob, 0, b"old token"),
            _send(server, bob, 1, b"second"),
            return_exceptions=True,
        )
    assert counted[0] == 1
    first, strange, stale, old_token, second = results
    assert isinstance(strange, ApiError) and strange.code is ErrorCode.UNKNOWN_GROUP
    # Bob was not a member in epoch 0: he cannot know its token.
    assert isinstance(old_token, ApiError) and old_token.code is ErrorCode.UNKNOWN_GROUP
    assert isinstance(stale, ApiError) and stale.code is ErrorCode.STALE_EPOCH
    assert stale.details == {"current_epoch": 1}
    assert isinstance(first, m.SendResponse) and isinstance(second, m.SendResponse)
    for client in (alice, bob):
        assert [t for _, t in await _texts(client)] == [b"first", b"second"]


async def test_a_retry_in_the_same_transaction_as_its_original_is_stored_once(
    server: TestServer,
) -> None:
    alice, bob = await _group(server, 2)
    key = os.urandom(16)
    with _count_transactions(server.state.db) as counted:
        original, retry, other = await asyncio.gather(
            _send(server, alice, 1, b"once", key),
            _send(server, alice, 1, b"once", key),
            _send(server, bob, 1, b"other", os.urandom(16)),
        )
    assert counted[0] == 1
    assert original == retry == other
    # A later retry gets the stored answer, and is not stored either.
    assert await _send(server, alice, 1, b"once", key) == original
    assert [t for _, t in await _texts(bob)] == [b"once", b"other"]


async def test_room_is_counted_across_the_sends_of_one_transaction(server: TestServer) -> None:
    # max_queue_length is 20; Alice's queue holds the commit, Bob's the Welcome.
    alice, bob = await _group(server, 2)
    with _count_transactions(server.state.db) as counted:
        results = await asyncio.gather(
            *(_send(server, alice, 1, b"m%d" % i) for i in range(22)), return_exceptions=True
        )
    assert counted[0] == 1
    stored = [r for r in results if isinstance(r, m.SendResponse)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(stored) == 19
    assert all(r.code is ErrorCode.QUEUE_FULL for r in refused) and len(refused) == 3
    # The first 19 got in; the refusals are the last ones.
    assert all(isinstance(r, m.SendResponse) for r in results[:19])
    assert [t for _, t in await _texts(bob)] == [b"m%d" % i for i in range(19)]


async def test_a_batch_and_single_sends_share_a_transaction(server: TestServer) -> None:
    alice, bob = await _group(server, 2)
    batch = [m.SendRequest(mls_data.application(GID, 1, b"b%d" % i)) for i in range(3)]
    with _count_transactions(server.state.db) as counted:
        await asyncio.gather(
            _send(server, bob, 1, b"before"),
            server.state.delivery.send_batch(
                GID, [alice.sealed(GID, item.message) for item in batch]
            ),
            _send(server, bob, 1, b"after"),
        )
    assert counted[0] == 1
    assert [t for _, t in await _texts(alice)] == [b"before", b"b0", b"b1", b"b2", b"after"]
