"""This client's queue key, from the client's side (messenger/client/queue_keys.py).

Against the real server app in process, whose wire records every request:
a client gives its queue a key once it syncs, after which no row of the
server's database names its queue and every signed request proves the
queue; conversations go on as before; a device of the account removes
another with that device's kill secret; and a server from before queue
keys leaves the client working as it did.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from messenger.api import routes as r
from messenger.client import MessengerClient
from messenger.client.errors import NetworkError, ServerRejectedError
from messenger.client.net.http import Transport
from messenger.client.queue_keys import queue_kill

from .helpers import account_id, texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _linked_queue(server: InProcessServer, client_id: str) -> Any:
    """What the server's row of ``client_id`` holds of its queue (None: nothing)."""

    async def op(tx: Any) -> Any:
        row = await tx.fetchone(
            "SELECT queue_box, legacy_queue_id FROM clients WHERE client_id = ?", client_id
        )
        assert row is not None
        return row[0] if row[0] is not None else row[1]

    return await server.state.db.read(op)


async def _queue_key(server: InProcessServer, queue_id: str) -> tuple[Any, Any]:
    async def op(tx: Any) -> tuple[Any, Any]:
        row = await tx.fetchone(
            "SELECT auth_key, kill_hash FROM queues WHERE queue_id = ?", queue_id
        )
        assert row is not None
        return row[0], row[1]

    result: tuple[Any, Any] = await server.state.db.read(op)
    return result


def _ids(client: MessengerClient) -> tuple[str, str]:
    identity = client._require().account.identity
    return identity.client_id, identity.queue_id


async def test_a_client_gives_its_queue_a_key_and_proves_it_on_every_request(
    server: InProcessServer,
) -> None:
    alice, bob = await server.client("alice"), await server.client("bob")
    for client in (alice, bob):
        client_id, queue_id = _ids(client)
        assert await _linked_queue(server, client_id) is not None
        await client.sync()
        assert await _linked_queue(server, client_id) is None, "no row names the queue"
        auth_key, kill_hash = await _queue_key(server, queue_id)
        private = client._require().account.identity.account_private_key
        assert private is not None and auth_key is not None
        assert bytes(kill_hash) == hashlib.sha256(queue_kill(private, client_id)).digest()
        _key, given = await client._store.run(lambda s: s.settings.queue_key())
        assert given
    puts = server.wire.sent("PUT", r.QUEUE_KEY)
    assert [x.status for x in puts] == [200, 200]
    start = server.wire.exchanges.index(puts[-1])
    # The conversation goes on: claims find Bob's queue in his KeyPackage's leaf.
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "hello")
    await alice.flush(FLUSH)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["hello"]
    signed = [x for x in server.wire.exchanges[start:] if x.client is not None]
    assert signed, "signed requests were sent"
    queues = {_ids(c)[0]: _ids(c)[1] for c in (alice, bob)}
    assert all(x.queue == queues[x.client] for x in signed if x.client is not None)
    # Nothing is given twice.
    await alice.sync()
    assert len(server.wire.sent("PUT", r.QUEUE_KEY)) == 2


async def test_a_server_from_before_queue_keys_leaves_the_client_as_it_was(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_there(self: Transport, request: object) -> None:
        raise ServerRejectedError("not_found")

    monkeypatch.setattr(Transport, "give_queue_key", not_there)
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    assert await _linked_queue(server, _ids(bob)[0]) is not None
    _key, given = await bob._store.run(lambda s: s.settings.queue_key())
    assert not given
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "still here")
    await alice.flush(FLUSH)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["still here"]


def test_a_kill_secret_is_the_accounts_and_the_devices() -> None:
    first, second = bytes(32), bytes([1]) * 32
    assert len(queue_kill(first, "client-a")) == 32
    assert queue_kill(first, "client-a") == queue_kill(first, "client-a")
    assert queue_kill(first, "client-a") != queue_kill(first, "client-b")
    assert queue_kill(first, "client-a") != queue_kill(second, "client-a")


async def test_an_app_that_starts_offline_syncs_while_its_key_waits(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving the key needs the server; the app's start does not wait for it: the
    listener, the outbox and the maintenance start, and the listener gives the key
    once it connects."""

    async def offline(self: Transport, request: object) -> None:
        raise NetworkError("the server cannot be reached")

    alice = await server.client("alice")
    with monkeypatch.context() as patch:
        patch.setattr(Transport, "give_queue_key", offline)
        await alice.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(alice._tasks) < 5:  # start, expiry, listener, outbox, maintenance, …
            assert loop.time() < deadline, "the sync tasks did not start"
            await asyncio.sleep(0.01)
    assert await _linked_queue(server, _ids(alice)[0]) is not None
    await alice.sync()  # connected: the key is given
    assert await _linked_queue(server, _ids(alice)[0]) is None
