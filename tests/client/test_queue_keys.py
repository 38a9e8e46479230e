"""This client's queue key, from the client's side (messenger/client/queue_keys.py).

Against the real server app in process, whose wire records every request:
a client gives its queue a key once it syncs, after which no row of the
server's database names its queue, the signed requests that need the
queue prove it (and no others), and groups are made by queue request;
conversations go on as before; a device of the account removes another
with that device's kill secret; and a server from before queue keys, or
from before queue requests of a kind, leaves the client working as it did.
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
#: The routes that take queue requests (signed by the queue key alone).
_QUEUE_ROUTES = frozenset({r.QUEUE_MESSAGES, r.ACK, r.QUEUE_ADDRESS, r.QUEUE_WEBSOCKET})


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


async def test_a_client_gives_its_queue_a_key_and_proves_it_where_the_server_needs_it(
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
    queues = {_ids(c)[0]: _ids(c)[1] for c in (alice, bob)}
    # A signed request proves the queue only where the server needs it, and
    # the claim does not, nor a KeyPackage upload, whose leaves name the contact
    # queue (tests/client/test_contact_queue.py); the group is made by queue
    # request, naming no client.
    assert ("POST", r.CLAIM_KEY_PACKAGES) in {(x.method, x.path) for x in signed}
    assert all(
        x.queue
        == (
            queues[x.client]
            if r.proves_queue(x.method, x.path) and x.path != r.KEY_PACKAGES
            else None
        )
        for x in signed
        if x.client is not None
    )
    made = [x for x in server.wire.exchanges[start:] if (x.method, x.path) == ("POST", r.GROUPS)]
    assert made and all(
        x.client is None and x.queue == queues[_ids(alice)[0]] and x.status == 200 for x in made
    )
    # The queue is read and acknowledged with queue requests: no client named.
    pipeline = bob._pipeline
    assert pipeline is not None
    await pipeline.acks.flush()
    await pipeline.contact_acks.flush()  # the Welcome came by the contact queue
    reads = [x for x in server.wire.exchanges[start:] if x.path in _QUEUE_ROUTES]
    assert {x.path for x in reads} >= {r.QUEUE_MESSAGES, r.ACK}
    contacts = {c._require().contact.queue_id for c in (alice, bob) if c._require().contact}
    assert len(contacts) == 2
    assert all(x.client is None and x.queue in {*queues.values(), *contacts} for x in reads)
    assert all(x.status == 200 for x in reads)
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


async def test_a_server_that_takes_no_queue_requests_is_read_with_signed_ones(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server with queue keys from before queue requests answers one as an
    unsigned request (``auth_missing``): the client reads its queue with signed
    requests from then on, and loses nothing."""
    from messenger.server import routes as server_routes
    from messenger.server import websocket as server_websocket

    async def no_contact_queues(self: Transport, request: object) -> str:
        raise ServerRejectedError("not_found")  # they came after queue requests

    monkeypatch.setattr(server_routes, "is_queue_request", lambda headers: False)
    monkeypatch.setattr(server_websocket, "is_queue_request", lambda headers: False)
    monkeypatch.setattr(Transport, "contact_queue", no_contact_queues)
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    assert await _linked_queue(server, _ids(bob)[0]) is None, "the key was given"
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "read anyway")
    await alice.flush(FLUSH)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["read anyway"]
    refused = [x for x in server.wire.exchanges if x.client is None and x.path in _QUEUE_ROUTES]
    assert refused and all(x.error == "auth_missing" for x in refused)
    assert not bob._require().transport.reads_by_queue
    fetches = server.wire.sent("GET", r.QUEUE_MESSAGES)
    assert fetches[-1].client == _ids(bob)[0] and fetches[-1].status == 200


async def test_a_server_restored_without_the_key_is_read_signed_and_given_it_again(
    server: InProcessServer,
) -> None:
    """A server restored from a backup made before the queue had its key refuses
    the queue's requests (``auth_invalid``): the client reads with signed requests
    (the restored row names its queue), loses nothing, and gives the same key
    again at its next sync."""
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    client_id, queue_id = _ids(bob)
    key_before, _kill = await _queue_key(server, queue_id)
    assert key_before is not None
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "before the restore")
    await alice.flush(FLUSH)

    # The restore: Bob's queue has no key, his row names it again (sealed), and
    # the restarted server has nothing cached.
    box = server.state.queue_links.seal(client_id, queue_id)

    async def restore(tx: Any) -> None:
        await tx.execute(
            "UPDATE queues SET auth_key = NULL, kill_hash = NULL WHERE queue_id = ?", queue_id
        )
        await tx.execute("UPDATE clients SET queue_box = ? WHERE client_id = ?", box, client_id)

    await server.state.db.transaction(restore)
    server.state.auth._queue_keys.clear()
    server.state.auth._clients.clear()
    mark = len(server.wire.exchanges)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["before the restore"]
    refused = [x for x in server.wire.exchanges[mark:] if x.client is None and x.status != 200]
    assert refused and {x.error for x in refused} == {"auth_invalid"}
    contact = bob._require().contact
    assert contact is not None
    reads = [x for x in server.wire.sent("GET", r.QUEUE_MESSAGES) if x.queue != contact.queue_id]
    assert reads[-1].client == client_id  # the queue (not the contact queue) read signed
    # The next sync gives the same key again; the queue is read by it once more.
    await bob.sync()
    key_after, _kill = await _queue_key(server, queue_id)
    assert key_after is not None and bytes(key_after) == bytes(key_before)
    assert await _linked_queue(server, client_id) is None
    await alice.send_text(chat.id, "after the restore")
    await alice.flush(FLUSH)
    mark = len(server.wire.exchanges)
    await bob.sync()
    assert (await texts(bob, view.conversation.id))[-1] == "after the restore"
    reads = [x for x in server.wire.exchanges[mark:] if x.path == r.QUEUE_MESSAGES]
    assert reads and all(x.client is None and x.status == 200 for x in reads)


async def test_the_key_packages_the_server_drops_with_the_key_are_made_again_at_once(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Giving the key drops the KeyPackages whose leaf names no address (made by
    an app from before addresses): the app uploads new ones right away, so a
    claim finds this device before the next maintenance."""
    from messenger.server.key_packages import KeyPackages

    async def drop_all(self: KeyPackages, tx: Any, client_id: str) -> int:
        # As if every stored one were from before delivery addresses.
        return await tx.execute("DELETE FROM key_packages WHERE client_id = ?", client_id)

    monkeypatch.setattr(KeyPackages, "drop_unreachable", drop_all)
    alice, bob = await server.client("alice"), await server.client("bob")
    mark = len(server.wire.exchanges)
    await bob.sync()
    assert await _linked_queue(server, _ids(bob)[0]) is None, "the key was given"
    after_key = server.wire.exchanges[mark:]
    put = next(i for i, x in enumerate(after_key) if x.path == r.QUEUE_KEY)
    uploads = [x for x in after_key[put:] if x.path == r.KEY_PACKAGES and x.status == 200]
    assert uploads, "new KeyPackages went up right after the key"
    count = await bob._require().transport.key_package_count()
    assert count.available > 0 and count.last_resort
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "found you")
    await alice.flush(FLUSH)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["found you"]


async def test_a_server_that_makes_no_group_by_queue_request_gets_a_signed_one(
    server: InProcessServer,
) -> None:
    """``POST /v1/groups`` as a server from before took it (signed only): the
    queue request is ``auth_missing``, the app signs and proves its queue, the
    conversation goes on, and the queue is still read by queue request."""
    import dataclasses

    from messenger.server import routes as server_routes

    (route,) = [x for x in r.ROUTES if (x.method, x.path) == ("POST", r.GROUPS)]
    assert route.queue_request
    server.app.router.routes.insert(
        0,
        server_routes.endpoint(
            dataclasses.replace(route, queue_request=False),
            server_routes._HANDLERS[("POST", r.GROUPS)],
        ),
    )
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    mark = len(server.wire.exchanges)
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "made anyway")
    await alice.flush(FLUSH)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["made anyway"]
    made = [x for x in server.wire.exchanges[mark:] if (x.method, x.path) == ("POST", r.GROUPS)]
    # Refused once; then signed (the kind is remembered for the session).
    assert (made[0].client, made[0].error) == (None, "auth_missing")
    assert made[1:] and all((x.client, x.queue, x.status) == (*_ids(alice), 200) for x in made[1:])
    assert alice._require().transport.reads_by_queue
