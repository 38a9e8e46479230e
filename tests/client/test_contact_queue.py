"""The contact queue, from the client's side (messenger/client/contact_queue.py).

Against the real server app in process, whose wire records every request:
once a client's queue has its key, the client gets a contact queue; its
KeyPackages name that queue (every one the server stores), and their
uploads prove no queue; a Welcome arrives there, the new member moves its
leaf to its own queue with one commit that proves it, and from then on the
group's messages reach the own queue, not the contact queue. A server from
before contact queues leaves the client as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION
from messenger.client import MessengerClient
from messenger.client.contact_tokens import own_token
from messenger.client.errors import NetworkError, ServerRejectedError
from messenger.client.net.http import Transport
from messenger.client.store.settings import CONTACT_CURSOR, CONTACT_KEY_PACKAGES_OWED
from messenger.mls.extensions import find_extension
from messenger.server.mls_frames import key_package_delivery

from .helpers import account_id, texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _ids(client: MessengerClient) -> tuple[str, str]:
    identity = client._require().account.identity
    return identity.client_id, identity.queue_id


def _contact(client: MessengerClient) -> str:
    contact = client._require().contact
    assert contact is not None, "the client has a contact queue"
    return contact.queue_id


async def _stored_key_package_queues(
    server: InProcessServer, client: MessengerClient
) -> list[str | None]:
    """The queue each KeyPackage the server keeps for ``client`` names (opened with
    its account's contact token: docs/metadata.md §1)."""
    state = server.state
    client_id = client._require().account.client_id
    token = own_token(client._require().account)

    async def op(tx: Any) -> list[Any]:
        rows = await tx.fetchall("SELECT data FROM key_packages WHERE client_id = ?", client_id)
        return [row[0] for row in rows]

    stored = await state.db.read(op)
    queues: list[str | None] = []
    for data in stored:
        address = key_package_delivery(state.key_packages._opened(client_id, data, token))
        queues.append(None if address is None else state.addresses.resolve(address))
    return queues


async def _entries(server: InProcessServer, queue_id: str) -> int:
    async def op(tx: Any) -> int:
        row = await tx.fetchone("SELECT COUNT(*) FROM queue_entries WHERE queue_id = ?", queue_id)
        return int(row[0])

    count: int = await server.state.db.read(op)
    return count


def _own_leaf_queue(server: InProcessServer, client: MessengerClient, group: Any) -> str | None:
    """The queue ``client``'s leaf in ``group`` names, as the server resolves it."""
    own = group.member(group.leaf_index)
    found = find_extension(own.extensions, DELIVERY_QUEUE_EXTENSION)
    assert found is not None
    return server.state.addresses.resolve(bytes(found.extension_data).decode("ascii"))


async def test_key_packages_name_the_contact_queue_and_a_new_member_moves_off_it(
    server: InProcessServer,
) -> None:
    alice, bob = await server.client("alice"), await server.client("bob")
    mark = len(server.wire.exchanges)
    for client in (alice, bob):
        await client.sync()
    bob_client, bob_queue = _ids(bob)
    contact = _contact(bob)
    assert contact != bob_queue
    made = server.wire.sent("PUT", r.CONTACT_QUEUE)
    assert [x.status for x in made] == [200, 200]
    # Every KeyPackage the server keeps names the contact queue, none the own queue,
    # and the uploads after the contact queue showed the server no queue at all.
    stored = await _stored_key_package_queues(server, bob)
    assert stored and set(stored) == {contact}
    put = next(i for i, x in enumerate(server.wire.exchanges[mark:]) if x.path == r.CONTACT_QUEUE)
    uploads = [
        x
        for x in server.wire.exchanges[mark + put :]
        if x.path == r.KEY_PACKAGES and x.client == bob_client
    ]
    assert uploads and all(x.status == 200 and x.queue is None for x in uploads)

    # Alice adds Bob: the Welcome and the first message reach the contact queue.
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "hello")
    await alice.flush(FLUSH)
    assert await _entries(server, contact) >= 2
    assert await _entries(server, bob_queue) == 0
    moves_before = len(server.wire.sent("POST", r.group_path(r.GROUP_COMMITS, chat.group_id)))
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["hello"]
    # Bob moved his leaf to his own queue with one commit, which the server took.
    await bob.flush(FLUSH)
    commits = server.wire.sent("POST", r.group_path(r.GROUP_COMMITS, chat.group_id))
    assert len(commits) == moves_before + 1 and commits[-1].status == 200
    # It proved both queues: its own (join) and the contact queue it left (leave).
    sent = m.CommitRequest.loads(commits[-1].body)
    assert sent.join_proof is not None and sent.leave_proof is not None
    assert sent.join_queue is not None and sent.leave_queue is not None
    assert server.state.addresses.resolve(sent.join_queue) == bob_queue
    assert server.state.addresses.resolve(sent.leave_queue) == contact
    bob_group = await bob._require().epochs.get(chat.group_id)
    assert bob_group is not None
    assert _own_leaf_queue(server, bob, bob_group) == bob_queue
    # Bob reads the echo of his move from the contact queue and acks both queues.
    await bob.sync()
    pipeline = bob._pipeline
    assert pipeline is not None
    await pipeline.contact_acks.flush()
    await pipeline.acks.flush()
    assert await _entries(server, contact) == 0

    # Alice learns of the move; from now on the group's messages reach Bob's own
    # queue, and his contact queue gets nothing.
    await alice.sync()
    await alice.send_text(chat.id, "after the move")
    await alice.flush(FLUSH)
    assert await _entries(server, contact) == 0
    assert await _entries(server, bob_queue) >= 1
    await bob.sync()
    assert await texts(bob, view.conversation.id) == ["hello", "after the move"]
    await bob.send_text(view.conversation.id, "hi back")
    await bob.flush(FLUSH)
    await alice.sync()
    assert await texts(alice, chat.id) == ["hello", "after the move", "hi back"]


async def test_a_server_from_before_contact_queues_leaves_the_client_as_it_was(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def not_there(self: Transport, request: object) -> str:
        raise ServerRejectedError("not_found")

    monkeypatch.setattr(Transport, "contact_queue", not_there)
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    assert bob._require().contact is None
    bob_client, bob_queue = _ids(bob)
    stored = await _stored_key_package_queues(server, bob)
    assert stored and set(stored) == {bob_queue}
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "still here")
    await alice.flush(FLUSH)
    await bob.sync()
    (view,) = await bob.conversations()
    assert await texts(bob, view.conversation.id) == ["still here"]
    # No move: the leaf named the own queue all along.
    assert not [
        x
        for x in server.wire.sent("POST", r.group_path(r.GROUP_COMMITS, chat.group_id))
        if x.client == bob_client
    ]


async def test_asking_again_keeps_the_same_contact_queue(server: InProcessServer) -> None:
    bob = await server.client("bob")
    await bob.sync()
    first = _contact(bob)
    # A lost answer: the key was kept before it was sent, so the retry gets the same queue.
    session = bob._require()
    private, queue_id = await bob._store.run(lambda s: s.settings.contact_queue())
    assert private is not None and queue_id == first
    await bob._store.transaction(lambda s: s.settings.set_contact_queue(private, None))
    session.contact = None
    await bob.sync()
    assert _contact(bob) == first
    assert [x.status for x in server.wire.sent("PUT", r.CONTACT_QUEUE)] == [200, 200]


async def test_a_server_restored_without_the_contact_queue_gets_a_new_one(
    server: InProcessServer,
) -> None:
    """A server restored from a backup made before the contact queue was made
    refuses the contact key (``auth_invalid``): the app forgets the queue, goes on
    reading its own, and asks for a new contact queue at its next set-up, whose
    KeyPackages then reach it again."""
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    lost = _contact(bob)
    bob_client, _queue = _ids(bob)
    first = await alice.create_group("First", [await account_id(bob)])
    await alice.send_text(first.id, "before")
    await alice.flush(FLUSH)
    await bob.sync()  # the Welcome came by the contact queue: its cursor moved
    assert await bob._store.run(lambda s: s.settings.get(CONTACT_CURSOR)) is not None

    async def restore(tx: Any) -> None:  # as the backup had it: a spare, no key, no link
        await tx.execute(
            "UPDATE clients SET contact_box = NULL, contact_killable = 0 WHERE client_id = ?",
            bob_client,
        )
        await tx.execute(
            "UPDATE queues SET auth_key = NULL, kill_hash = NULL WHERE queue_id = ?", lost
        )

    await server.state.db.transaction(restore)
    mark = len(server.wire.exchanges)
    await bob.sync()  # the contact queue's catch-up is refused; the own queue is read
    refused = [x for x in server.wire.exchanges[mark:] if x.queue == lost and x.status != 200]
    assert refused and {x.error for x in refused} == {"auth_invalid"}
    assert bob._require().contact is None
    # The next queue counts from an origin of its own: the old cursor goes too.
    assert await bob._store.run(lambda s: s.settings.get(CONTACT_CURSOR)) is None
    await bob.sync()  # the next set-up asks again
    found = _contact(bob)
    assert found != lost
    stored = await _stored_key_package_queues(server, bob)
    assert stored and set(stored) == {found}
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.send_text(chat.id, "found again")
    await alice.flush(FLUSH)
    await bob.sync()
    views = [v for v in await bob.conversations() if v.name == "Two"]
    assert len(views) == 1
    assert await texts(bob, views[0].conversation.id) == ["found again"]


async def test_a_new_set_that_could_not_go_up_is_sent_at_the_next_set_up(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops while the first KeyPackages naming the contact queue
    go up: the set is owed (a setting), and the next set-up sends it, so the
    server does not keep KeyPackages naming the client's own queue."""
    bob = await server.client("bob")
    _bob_client, bob_queue = _ids(bob)
    real = Transport.upload_key_packages
    failures = [NetworkError("the connection dropped (test)")]

    async def flaky(self: Transport, *args: Any, **kwargs: Any) -> Any:
        if failures and self.signer is not None and bob._require().contact is not None:
            raise failures.pop()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Transport, "upload_key_packages", flaky)
    await bob.sync()
    contact = _contact(bob)
    assert not failures, "the new set's upload failed once"
    assert await bob._store.run(lambda s: s.settings.get(CONTACT_KEY_PACKAGES_OWED)) is True
    assert set(await _stored_key_package_queues(server, bob)) == {bob_queue}
    await bob.sync()
    assert await bob._store.run(lambda s: s.settings.get(CONTACT_KEY_PACKAGES_OWED)) is None
    assert set(await _stored_key_package_queues(server, bob)) == {contact}


async def test_a_successor_welcome_read_before_its_reinit_waits_in_the_contact_queue(
    server: InProcessServer,
) -> None:
    """The two queues are not ordered with each other: the Welcome to a
    reinitialised group's successor (contact queue) can be read before the
    ReInit commit (the client's own queue). It is not skipped: the contact
    queue's cursor stays before it, and it is read again once the queue moved on."""
    alice, bob = await server.client("alice"), await server.client("bob")
    await alice.sync()
    await bob.sync()
    bob_client, _queue = _ids(bob)

    async def only_suite_one(tx: Any) -> None:  # as an app from before the hybrid suite
        await tx.execute(
            "DELETE FROM key_packages WHERE client_id = ? AND cipher_suite != 1", bob_client
        )

    await server.state.db.transaction(only_suite_one)
    chat = await alice.create_conversation(await account_id(bob))  # in suite 1
    pool = bob._pool
    assert pool is not None
    await pool.replenish()  # Bob's app makes hybrid KeyPackages again
    await alice.send_text(chat.id, "one")
    await alice.flush(FLUSH)
    await bob.sync()
    await bob.flush(FLUSH)  # Bob's move
    await alice.sync()
    await bob.sync()  # the move's echo, from the contact queue
    (view,) = await bob.conversations()
    classic = await bob.cipher_suite(view.conversation.id)
    await alice.upgrade_encryption(chat.id)  # the ReInit, then the new group's Welcome
    await alice.flush(FLUSH)
    assert await alice.cipher_suite(chat.id) != classic
    pipeline = bob._pipeline
    assert pipeline is not None
    before = await pipeline.cursor(contact=True)
    await pipeline._catch_up(contact=True)  # the contact queue alone, first
    assert await pipeline.cursor(contact=True) == before, "the Welcome was left for later"
    assert await bob.cipher_suite(view.conversation.id) == classic
    await bob.sync()  # the queue (the ReInit), then the contact queue (the Welcome)
    assert await bob.cipher_suite(view.conversation.id) == await alice.cipher_suite(chat.id)
    await alice.send_text(chat.id, "two")
    await alice.flush(FLUSH)
    await bob.sync()
    assert await texts(bob, view.conversation.id) == ["one", "two"]
