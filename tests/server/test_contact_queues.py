"""Contact queues (docs/metadata.md §5, messenger.server.contact_queues).

Each client may get a second keyed queue, its contact queue, which its
KeyPackages name: a claim hands out its address, and the Welcome arrives
there. Right after joining, the new member commits a self-update that adds
its own queue with a proof by that queue's key over the commit (``join_queue``,
``join_proof``) and drops the contact queue. Each test plays the client,
another user of the server, a member of the group or a removed member who
keeps every key, and checks what the server answers and that a refusal
changes nothing.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.signing import contact_queue_possession
from messenger.server import create_app
from messenger.server.at_rest import SEALED_OVERHEAD
from messenger.server.contact_queues import ContactQueues
from messenger.server.devices import removed_queue_hash
from messenger.server.ids import new_id
from messenger.server.queue_addresses import QueueAddresses
from messenger.server.queue_links import QueueLinks
from messenger.server.state_keys import WRAP_BYTES, StateKeys
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .client import ApiClient, public_bytes, send_token
from .conftest import ServerFactory, TestServer, make_config, postgres_schema, serve
from .dbtools import entries, member_sets, rows, snapshot
from .hub_watch import DEADLINE, subscribers, until

pytestmark = pytest.mark.anyio

GID = b"C" * 32
HID = b"D" * 32


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _without_nonces(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {k: v for k, v in snap.items() if k != "request_nonces"}


def _bare(client: ApiClient) -> ApiClient:
    """``client`` signing without a queue proof (it holds no queue key here)."""
    bare = ApiClient(client.http, client.identity, client.clock)
    bare.contact_queue_id, bare.contact_key = client.contact_queue_id, client.contact_key
    return bare


def _request(client: ApiClient, key: Ed25519PrivateKey) -> m.ContactQueueRequest:
    """A contact queue request for ``key``, its proof made for ``client``."""
    proof = key.sign(contact_queue_possession(client.me.client_id, public_bytes(key)))
    return m.ContactQueueRequest(public_bytes(key), proof)


async def _contact_box(server: TestServer, client_id: str) -> bytes | None:
    async def op(tx: Tx) -> bytes | None:
        row = await tx.fetchone("SELECT contact_box FROM clients WHERE client_id = ?", client_id)
        assert row is not None
        return None if row[0] is None else bytes(row[0])

    result: bytes | None = await server.state.db.read(op)
    return result


async def _queue_keys(server: TestServer, queue_id: str) -> tuple[bytes, bytes | None] | None:
    """``(auth_key, kill_hash)`` of a queue's row (None: no such queue)."""

    async def op(tx: Tx) -> tuple[bytes, bytes | None] | None:
        row = await tx.fetchone(
            "SELECT auth_key, kill_hash FROM queues WHERE queue_id = ?", queue_id
        )
        if row is None:
            return None
        return bytes(row[0]), None if row[1] is None else bytes(row[1])

    result: tuple[bytes, bytes | None] | None = await server.state.db.read(op)
    return result


async def _contact_messages(client: ApiClient, after: int = 0) -> list[m.QueueMessage]:
    """The contact queue's messages, read by a queue request signed by its key."""
    response = await client.contact_raw("GET", f"{r.QUEUE_MESSAGES}?after={after}")
    assert response.status_code == 200, response.text
    return list(m.FetchResponse.from_json(response.json()).messages)


async def _joined_by_contact(
    alice: ApiClient, group_id: bytes, *others: ApiClient, member_keys: bool = False
) -> list[str]:
    """Alice makes ``group_id`` and adds ``others``, each by the queue its claimed
    KeyPackage names (its contact queue if it has one), with a Welcome; the
    member queues of epoch 1."""
    await alice.create_group(group_id, member_keys=member_keys)
    welcome = await alice.welcome_for(*others)
    added = [o.contact_queue_id or o.me.queue_id for o in others]
    queues = [alice.me.queue_id, *added]
    await alice.commit(
        group_id,
        0,
        mls_data.commit(group_id, 0),
        queues,
        welcome=welcome,
        welcome_to=added,
        next_token=member_keys,
    )
    return queues


# -- B: PUT /v1/queue/contact ----------------------------------------------------------


async def test_a_contact_queue_is_a_keyed_spare_sealed_in_the_client_row(
    server: TestServer,
) -> None:
    alice = await server.registered()
    await alice.give_queue_key()
    main = await alice.queue_address()
    await alice.upload_key_packages(
        [alice.key_package(delivery=main), alice.key_package()], alice.key_package(delivery=main)
    )
    spares = {str(row[0]) for row in await rows(server, "spare_queues")}
    contact = await alice.give_contact_queue()
    # A spare like a new client's queue, now out of the pool, with the key and no kill hash.
    assert contact in spares and contact != alice.me.queue_id
    assert contact not in {str(row[0]) for row in await rows(server, "spare_queues")}
    assert alice.contact_key is not None
    assert await _queue_keys(server, contact) == (public_bytes(alice.contact_key), None)
    # The client's row holds it sealed under the key file, bound to the client.
    box = await _contact_box(server, alice.me.client_id)
    assert box is not None and len(box) == SEALED_OVERHEAD + len(contact)
    boxes = ContactQueues(server.state.keys.at_rest_key, QueueLinks(os.urandom(32)))
    assert boxes.queue(alice.me.client_id, box) == contact
    with pytest.raises(StorageError):
        boxes.queue(new_id(), box)
    with pytest.raises(StorageError):  # another server's key file
        ContactQueues(os.urandom(32), QueueLinks(os.urandom(32))).queue(alice.me.client_id, box)
    # No row shows the contact queue next to the client or account, in any form.
    for table in ("clients", "queues", "key_packages", "spare_queues"):
        for row in await rows(server, table):
            shown = " ".join(
                v.hex() + v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in row
            )
            if contact in shown or contact.encode().hex() in shown:
                assert alice.me.client_id not in shown, table
                assert alice.me.account_id not in shown, table
    # The stored KeyPackages stay until new ones name the contact queue, so a claim
    # meanwhile still finds this client.
    count = await alice.key_package_count()
    assert (count.available, count.last_resort) == (2, True)
    # Asking again with the same key is a retry: the same queue, nothing changes.
    before = _without_nonces(await snapshot(server, exclude=()))
    assert await alice.give_contact_queue(alice.contact_key) == contact
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # Another key: the contact queue's key never changes.
    response = await alice.raw(
        "PUT", r.CONTACT_QUEUE, _request(alice, Ed25519PrivateKey.generate())
    )
    assert _error(response) == (409, "key_in_use")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The first upload naming the contact queue drops, in its transaction, every
    # stored KeyPackage that named the main queue (or none), the last resort too.
    contact_address = await alice.contact_address()
    count = await alice.upload_key_packages([alice.key_package(delivery=contact_address)])
    assert (count.available, count.last_resort) == (1, False)


async def test_a_contact_queue_needs_the_proof_of_a_key_no_queue_has(server: TestServer) -> None:
    alice, mallory = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await mallory.give_queue_key()
    await mallory.give_contact_queue()
    key = Ed25519PrivateKey.generate()
    before = _without_nonces(await snapshot(server, exclude=()))
    # A proof made for another client (Mallory's own request, replayed as Alice's)
    # or by another key than the one asked for: proof_invalid.
    other = _request(mallory, key)
    assert _error(await alice.raw("PUT", r.CONTACT_QUEUE, other)) == (400, "proof_invalid")
    wrong_key = m.ContactQueueRequest(
        public_bytes(key), _request(alice, Ed25519PrivateKey.generate()).proof
    )
    assert _error(await alice.raw("PUT", r.CONTACT_QUEUE, wrong_key)) == (400, "proof_invalid")
    # A key that a queue has already: Alice's own main queue's, Mallory's contact queue's.
    assert alice.queue_key is not None and mallory.contact_key is not None
    for taken in (alice.queue_key, mallory.contact_key):
        response = await alice.raw("PUT", r.CONTACT_QUEUE, _request(alice, taken))
        assert _error(response) == (409, "key_in_use")
    # Unsigned: the route is the signing client's.
    unsigned = await alice.raw("PUT", r.CONTACT_QUEUE, _request(alice, key), signed=False)
    assert _error(unsigned) == (401, "auth_missing")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The route needs no queue proof (it names the client's contact queue only).
    assert await _bare(alice).give_contact_queue(key)


async def test_a_removed_or_replaced_device_gets_no_contact_queue(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    kill = await laptop.give_queue_key()
    await alice.give_queue_key()
    await alice.call(
        "DELETE", r.client_path(laptop.me.client_id), m.RemoveClientRequest(kill), m.Empty
    )
    before = _without_nonces(await snapshot(server, exclude=()))
    response = await laptop.raw(
        "PUT", r.CONTACT_QUEUE, _request(laptop, Ed25519PrivateKey.generate())
    )
    assert _error(response) == (401, "device_removed")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # A copy taken over by a restored one (a queue without a key of its own).
    carol = await server.registered()
    contact = await carol.give_contact_queue()
    restored = carol.copy()
    await restored.take_over(os.urandom(32))
    before = _without_nonces(await snapshot(server, exclude=()))
    response = await carol.raw(
        "PUT", r.CONTACT_QUEUE, _request(carol, Ed25519PrivateKey.generate())
    )
    assert _error(response) == (401, "device_replaced")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The takeover kept the contact queue: the restored copy holds its key.
    assert await restored.give_contact_queue(carol.contact_key) == contact
    assert (await restored.contact_raw("GET", r.QUEUE_MESSAGES + "?after=0")).status_code == 200


# -- C: reading the contact queue ----------------------------------------------------


async def test_the_contact_queue_is_read_acked_and_pushed_by_its_key_alone(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await bob.give_queue_key()
    await bob.give_contact_queue()
    await _joined_by_contact(alice, GID, bob)
    # The Welcome is in the contact queue, not in the queue Bob reads his groups from.
    (welcome,) = await _contact_messages(bob)
    assert (await bob.fetch()).messages == ()
    # A delivery address by queue request names the contact queue.
    response = await bob.contact_raw("GET", r.QUEUE_ADDRESS)
    address = m.QueueAddressResponse.from_json(response.json()).address
    assert server.state.addresses.resolve(address) == bob.contact_queue_id
    acked = await bob.contact_raw("POST", r.ACK, m.AckRequest(welcome.seq))
    assert m.AckResponse.from_json(acked.json()).deleted == 1
    assert bob.contact_queue_id is not None
    contact = bob.contact_queue_id
    target = f"{r.QUEUE_WEBSOCKET}?after={welcome.seq}"
    async with bob.websocket(
        after=welcome.seq, headers=bob.contact_headers("GET", target, b"")
    ) as ws:
        await until(lambda: subscribers(server.state.hub, contact) == 1, "the socket")
        await alice.send(GID, mls_data.application(GID, 1, b"first"))
        (pushed,) = await ws.messages(1)
        assert (await ws.ack(pushed.seq)).deleted == 1
    poll = asyncio.create_task(
        bob.contact_raw("GET", f"{r.QUEUE_MESSAGES}?after={pushed.seq}&wait=30")
    )
    await until(lambda: subscribers(server.state.hub, contact) == 1, "the poll")
    await alice.send(GID, mls_data.application(GID, 1, b"second"))
    polled = await asyncio.wait_for(poll, DEADLINE)
    assert polled.status_code == 200
    assert len(m.FetchResponse.from_json(polled.json()).messages) == 1


async def test_queue_requests_to_the_contact_queue_need_its_key(server: TestServer) -> None:
    alice, bob, mallory = [await server.registered() for _ in range(3)]
    for client in (alice, bob, mallory):
        await client.give_queue_key()
    await bob.give_contact_queue()
    await mallory.give_contact_queue()
    await _joined_by_contact(alice, GID, bob)
    before = await snapshot(server, exclude=())
    fetch = r.QUEUE_MESSAGES + "?after=0"
    assert bob.queue_key is not None and mallory.queue_key is not None
    assert mallory.contact_key is not None
    # Bob's main queue key, and another user's keys, sign nothing for his contact queue.
    for key in (bob.queue_key, mallory.queue_key, mallory.contact_key):
        assert _error(await bob.contact_raw("GET", fetch, key=key)) == (401, "auth_invalid")
        ack = await bob.contact_raw("POST", r.ACK, m.AckRequest(99), key=key)
        assert _error(ack) == (401, "auth_invalid")
        assert _error(await bob.contact_raw("GET", r.QUEUE_ADDRESS, key=key)) == (
            401,
            "auth_invalid",
        )
        target = f"{r.QUEUE_WEBSOCKET}?after=0"
        with pytest.raises((WebSocketUpgradeError, WebSocketDisconnect)):
            async with bob.websocket(
                headers=bob.contact_headers("GET", target, b"", key=key)
            ) as ws:
                await ws.next_frame(timeout=DEADLINE)
    # Nor does a signed request prove the contact queue with another key.
    posing = bob.as_contact()
    posing.queue_key = mallory.contact_key
    assert _error(await posing.raw("GET", fetch)) == (401, "auth_invalid")
    assert await snapshot(server, exclude=()) == before
    assert len(await _contact_messages(bob)) == 1, "the Welcome waits"


# -- D: removing a device --------------------------------------------------------------


async def test_removing_a_device_removes_its_contact_queue(server: TestServer) -> None:
    alice, bob = await server.registered(), await server.registered()
    laptop = await alice.add_client()
    await alice.give_queue_key()
    kill = await laptop.give_queue_key()
    contact = await laptop.give_contact_queue()
    await _joined_by_contact(bob, GID, laptop)
    (welcome_payload,) = [p for q, _, p in await entries(server) if q == contact]
    target = f"{r.QUEUE_WEBSOCKET}?after=0"
    fetch = f"{r.QUEUE_MESSAGES}?after=0"
    async with laptop.websocket(headers=laptop.contact_headers("GET", target, b"")) as ws:
        (pushed,) = await ws.messages(1)  # the Welcome: the socket is serving
        welcome_seq = pushed.seq
        poll = asyncio.create_task(
            laptop.contact_raw("GET", f"{r.QUEUE_MESSAGES}?after={welcome_seq}&wait=30")
        )
        await until(lambda: subscribers(server.state.hub, contact) == 2, "the poll")
        path = r.client_path(laptop.me.client_id)
        await alice.call("DELETE", path, m.RemoveClientRequest(kill), m.Empty)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                await ws.next_frame(timeout=DEADLINE)
        assert (closed.value.code, closed.value.reason) == (1008, "device_removed")
        assert _error(await asyncio.wait_for(poll, DEADLINE)) == (401, "device_removed")
    # The queue, its entries and the message only it held are gone; its tombstone stays.
    assert await _queue_keys(server, contact) is None
    assert contact not in {q for q, _, _ in await entries(server)}
    assert welcome_payload not in {row[0] for row in await rows(server, "payloads")}
    tombstone = removed_queue_hash(server.state.keys.removed_client_key, contact)
    assert (tombstone,) in await rows(server, "removed_clients")
    before = _without_nonces(await snapshot(server, exclude=()))
    for method, route, body in (
        ("GET", fetch, None),
        ("POST", r.ACK, m.AckRequest(welcome_seq)),
        ("GET", r.QUEUE_ADDRESS, None),
    ):
        assert _error(await laptop.contact_raw(method, route, body)) == (401, "device_removed")
    async with laptop.websocket(headers=laptop.contact_headers("GET", target, b"")) as ws:
        with pytest.raises(WebSocketDisconnect) as refused:
            await ws.next_frame(timeout=DEADLINE)
    assert (refused.value.code, refused.value.reason) == (1008, "device_removed")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # The group still lists the contact queue until a commit drops it: skipped.
    assert contact in (await member_sets(server))[GID]
    assert (await bob.send(GID, mls_data.application(GID, 1, b"still here"))).recipients == 1


async def test_a_removal_closes_contact_queue_sockets_on_every_instance(tmp_path: Path) -> None:
    """Two server instances on one PostgreSQL: the removal goes through one, the
    socket the contact queue's key opened is on the other."""
    async with postgres_schema() as dsn:
        config = make_config(tmp_path / "shared", dsn)
        app_a = create_app(config, run_sweeper=False)
        app_b = create_app(config, run_sweeper=False)
        async with serve(app_a, "uvicorn", time.time) as a, serve(app_b, "uvicorn", time.time) as b:
            alice = await a.registered()
            laptop = await alice.add_client()
            kill = await laptop.give_queue_key()
            contact = await laptop.give_contact_queue()
            on_b = laptop.copy()
            on_b.http = b.http
            target = f"{r.QUEUE_WEBSOCKET}?after=0"
            async with on_b.websocket(headers=on_b.contact_headers("GET", target, b"")) as ws:
                await until(lambda: subscribers(b.state.hub, contact) == 1, "the socket")
                path = r.client_path(laptop.me.client_id)
                await alice.call("DELETE", path, m.RemoveClientRequest(kill), m.Empty)
                with pytest.raises(WebSocketDisconnect) as closed:
                    while True:
                        await ws.next_frame(timeout=DEADLINE)
                assert (closed.value.code, closed.value.reason) == (1008, "device_removed")
            response = await on_b.contact_raw("GET", r.QUEUE_MESSAGES + "?after=0")
            assert _error(response) == (401, "device_removed")


# -- E: KeyPackages that name the contact queue ---------------------------------------


async def test_key_packages_name_the_contact_queue_or_the_proven_queue(server: TestServer) -> None:
    alice, mallory = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await mallory.give_queue_key()
    bare = _bare(alice)
    main = await alice.queue_address()
    # No proof and no contact queue: the upload must prove the queue, as before.
    before = _without_nonces(await snapshot(server, exclude=()))
    response = await bare.raw(
        "POST", r.KEY_PACKAGES, m.UploadKeyPackagesRequest((alice.key_package(delivery=main),))
    )
    assert _error(response) == (401, "auth_missing")
    await alice.give_contact_queue()
    await mallory.give_contact_queue()
    bare = _bare(alice)
    contact = await alice.contact_address()
    theirs = await mallory.contact_address()
    before = _without_nonces(await snapshot(server, exclude=()))
    # Without a proof, every leaf must name the contact queue.
    for delivery in (main, None, theirs):
        upload = m.UploadKeyPackagesRequest(
            (alice.key_package(delivery=contact), alice.key_package(delivery=delivery))
        )
        assert _error(await bare.raw("POST", r.KEY_PACKAGES, upload)) == (401, "auth_missing")
    # With the proof, a leaf naming another user's queue is refused whole.
    upload = m.UploadKeyPackagesRequest(
        (alice.key_package(delivery=contact), alice.key_package(delivery=theirs))
    )
    assert _error(await alice.raw("POST", r.KEY_PACKAGES, upload)) == (400, "invalid_message")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    # Naming the contact queue needs no proof; naming the proven queue is as before.
    count = await bare.upload_key_packages(
        [alice.key_package(delivery=contact)], alice.key_package(delivery=contact)
    )
    assert (count.available, count.last_resort) == (1, True)
    assert (await alice.upload_key_packages([alice.key_package(delivery=main)])).available == 2


async def test_a_claim_hands_out_the_contact_queue_and_its_welcome_arrives_there(
    server: TestServer,
) -> None:
    """A client whose row still names its queue (no key of its own) with a
    contact queue: the claim evidence's target is the contact queue, so the
    Welcome goes there, and the claim token adds no other queue."""
    alice, bob = await server.registered(), await server.registered()
    contact = await bob.give_contact_queue()
    await bob.upload_key_packages([bob.key_package(delivery=await bob.contact_address())])
    await alice.create_group(GID)
    (claimed,) = (await alice.claim(bob.me.account_id)).key_packages
    assert server.state.addresses.resolve(claimed.queue_id) == contact
    welcome = mls_data.welcome([mls_data.key_package_ref(claimed.key_package)])
    before = await snapshot(server)
    # The token is evidence for the contact queue only, not for Bob's queue.
    with pytest.raises(ApiError) as refused:
        await alice.commit(
            GID,
            0,
            mls_data.commit(GID, 0),
            [alice.me.queue_id, bob.me.queue_id],
            welcome=welcome,
            welcome_to=[bob.me.queue_id],
        )
    assert refused.value.code is ErrorCode.MEMBER_NOT_CLAIMED
    assert await snapshot(server) == before
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [alice.me.queue_id, claimed.queue_id],
        welcome=welcome,
        welcome_to=[claimed.queue_id],
    )
    assert [x.data for x in await _contact_messages(bob)] == [welcome]
    assert (await bob.fetch()).messages == ()
    # A KeyPackage of his without an address still goes to the queue his row names.
    await bob.upload_key_packages([bob.key_package()])
    (plain,) = (await alice.claim(bob.me.account_id)).key_packages
    assert plain.queue_id == bob.me.queue_id


# -- F: joining a queue by proof in a commit --------------------------------------------


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "signed"])
async def test_a_member_moves_from_its_contact_queue_to_its_queue_with_one_commit(
    server: TestServer, sealed: bool
) -> None:
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await bob.give_queue_key()
    contact = await bob.give_contact_queue()
    await _joined_by_contact(alice, GID, bob, member_keys=True)
    (welcome,) = await _contact_messages(bob)
    move = mls_data.commit(GID, 1, b"bob's self-update")
    main = await bob.queue_address()
    committer = bob if sealed else bob.as_contact()  # a signed commit proves a member queue
    answer = await committer.commit(
        GID,
        1,
        move,
        [alice.me.queue_id, main],
        join_queue=main,
        join_proof=bob.join_proof(GID, 1, move),
        sealed=sealed,
        next_token=True,
    )
    assert answer.epoch == 2
    # The commit went to the members of epoch 1, the contact queue among them.
    assert [x.data for x in await _contact_messages(bob, welcome.seq)] == [move]
    assert (await bob.fetch()).messages == ()
    assert [x.data for x in (await alice.fetch()).messages][-1] == move
    # The member set is Alice's queue and Bob's own; dropping the contact queue
    # was a removal: one wrap, under epoch 2's token, and earlier tokens open nothing.
    row = await server.state.db.read(
        lambda tx: tx.fetchone(
            "SELECT state_keys, members_box FROM mls_groups WHERE group_id = ?", GID
        )
    )
    assert row is not None and len(bytes(row[0])) == WRAP_BYTES
    keys = StateKeys(server.state.keys.at_rest_key)
    data_key = keys.open(GID, bytes(row[0]), send_token(GID, 2))
    assert data_key is not None
    opened = server.state.member_sets.open(GID, bytes(row[1]), data_key)
    assert sorted(opened) == sorted([alice.me.queue_id, bob.me.queue_id])
    assert all(keys.open(GID, bytes(row[0]), send_token(GID, e)) is None for e in (0, 1))
    # Later sends reach Bob's queue, not the contact queue.
    hello = mls_data.application(GID, 2, b"hello")
    assert (await alice.send(GID, hello)).recipients == 2
    assert [x.data for x in (await bob.fetch()).messages] == [hello]
    assert [x.data for x in await _contact_messages(bob, welcome.seq)] == [move]
    assert contact not in opened


async def _refused(committer: ApiClient, code: ErrorCode, *args: Any, **kwargs: Any) -> None:
    """``committer.commit(*args, **kwargs)`` is refused with ``code``."""
    with pytest.raises(ApiError) as refused:
        await committer.commit(*args, **kwargs)
    assert refused.value.code is code, refused.value


async def test_join_proofs_that_do_not_stand_for_the_commit_change_nothing(
    server_factory: ServerFactory,
) -> None:
    # Three messages a minute towards a queue (as many as Alice's commits need):
    # refusals that spent the group's budget would leave none for Bob's move.
    async with server_factory(sender_messages_per_queue_per_minute=3) as server:
        alice, bob, mallory, carol = [await server.registered() for _ in range(4)]
        for client in (alice, bob, mallory, carol):
            await client.give_queue_key()
        dave = await server.registered()  # his queue has no key of its own
        await bob.give_contact_queue()
        members = await _joined_by_contact(alice, GID, bob, mallory)
        await _joined_by_contact(mallory, HID, bob)
        bob_main, carol_main = await bob.queue_address(), await carol.queue_address()
        dave_main = await dave.queue_address()
        # Bob's genuine proof for his move at epoch 1, captured by Mallory.
        bob_move = mls_data.commit(GID, 1, b"bob moves")
        captured = bob.join_proof(GID, 1, bob_move)
        mine = mls_data.commit(GID, 1, b"mallory's")
        nowhere = new_id()  # a queue ID that no queue has
        assert mallory.queue_key is not None and bob.contact_key is not None
        before = await snapshot(server)
        attempts: list[tuple[ApiClient, ErrorCode, tuple[Any, ...], dict[str, Any]]] = [
            # Mallory adds Carol's queue with a proof by her own key, and Dave's
            # queue (no key of its own) likewise.
            *(
                (
                    mallory,
                    ErrorCode.PROOF_INVALID,
                    (GID, 1, mine, [*members, victim]),
                    {"join_queue": victim, "join_proof": mallory.join_proof(GID, 1, mine)},
                )
                for victim in (carol_main, dave_main)
            ),
            # Bob's captured proof, on Mallory's commit and in another group.
            (
                mallory,
                ErrorCode.PROOF_INVALID,
                (GID, 1, mine, [*members, bob_main]),
                {"join_queue": bob_main, "join_proof": captured},
            ),
            (
                mallory,
                ErrorCode.PROOF_INVALID,
                (
                    HID,
                    1,
                    mls_data.commit(HID, 1),
                    [mallory.me.queue_id, bob.contact_queue_id, bob_main],
                ),
                {"join_queue": bob_main, "join_proof": captured},
            ),
            # A proof by the contact queue's key for the main queue.
            (
                bob,
                ErrorCode.PROOF_INVALID,
                (GID, 1, bob_move, [alice.me.queue_id, mallory.me.queue_id, bob_main]),
                {
                    "join_queue": bob_main,
                    "join_proof": bob.join_proof(GID, 1, bob_move, key=bob.contact_key),
                },
            ),
            # The join queue not among the members; half of the pair; an address
            # of another server; a queue that does not exist.
            (
                bob,
                ErrorCode.INVALID_FIELD,
                (GID, 1, bob_move, members),
                {"join_queue": bob_main, "join_proof": captured},
            ),
            (
                bob,
                ErrorCode.INVALID_FIELD,
                (GID, 1, bob_move, [alice.me.queue_id, mallory.me.queue_id, bob_main]),
                {"join_queue": bob_main},
            ),
            (
                bob,
                ErrorCode.INVALID_FIELD,
                (GID, 1, bob_move, [alice.me.queue_id, mallory.me.queue_id, bob_main]),
                {"join_proof": captured},
            ),
            (
                bob,
                ErrorCode.INVALID_FIELD,
                (GID, 1, bob_move, [*members, bob_main]),
                {
                    "join_queue": QueueAddresses(os.urandom(32)).issue(bob.me.queue_id),
                    "join_proof": captured,
                },
            ),
            (
                bob,
                ErrorCode.UNKNOWN_QUEUE,
                (GID, 1, bob_move, [*members, nowhere]),
                {"join_queue": nowhere, "join_proof": captured},
            ),
        ]
        for committer, code, args, kwargs in attempts:
            await _refused(committer, code, *args, sealed=True, **kwargs)
        # Join fields on an external commit (signed, as external commits are).
        external = mls_data.external_commit(GID, 1)
        await _refused(
            bob,
            ErrorCode.INVALID_FIELD,
            GID,
            1,
            external,
            [*members, bob_main],
            join_queue=bob_main,
            join_proof=bob.join_proof(GID, 1, external),
        )
        assert await snapshot(server) == before
        # The group moves on (a signed commit of Alice's): the proof of epoch 1
        # stands for nothing at epoch 2, on any commit.
        await alice.commit(GID, 1, mls_data.commit(GID, 1, b"alice's"), members)
        before = await snapshot(server)
        later = mls_data.commit(GID, 2, b"mallory's")
        await _refused(
            mallory,
            ErrorCode.PROOF_INVALID,
            GID,
            2,
            later,
            [*members, bob_main],
            join_queue=bob_main,
            join_proof=captured,
            sealed=True,
        )
        assert await snapshot(server) == before
        # Bob's own proof for his own commit moves him, with the group's budget intact.
        bob_move = mls_data.commit(GID, 2, b"bob moves")
        after_move = [alice.me.queue_id, mallory.me.queue_id, bob_main]
        answer = await bob.commit(
            GID,
            2,
            bob_move,
            after_move,
            join_queue=bob_main,
            join_proof=bob.join_proof(GID, 2, bob_move),
            sealed=True,
        )
        assert answer == m.CommitResponse(3, 3)
        # Alice removes Mallory, who keeps every key and token: her own queue's
        # valid proof does not bring her back.
        await alice.commit(GID, 3, mls_data.commit(GID, 3), after_move[::2])
        before = await snapshot(server)
        comeback = mls_data.commit(GID, 4, b"mallory's comeback")
        mallory_main = await mallory.queue_address()
        for token, expected in (
            (send_token(GID, 3), "stale_epoch"),
            (send_token(GID, 2), "unknown_group"),
        ):
            request = m.CommitRequest(
                4,
                comeback,
                (*after_move[::2], mallory_main),
                token=token,
                join_queue=mallory_main,
                join_proof=mallory.join_proof(GID, 4, comeback),
            )
            response = await mallory.raw(
                "POST", r.group_path(r.GROUP_COMMITS, GID), request, signed=False
            )
            assert _error(response)[1] == expected
        # Signed, her queue is no member's: a stranger's answer.
        await _refused(
            mallory,
            ErrorCode.UNKNOWN_GROUP,
            GID,
            4,
            comeback,
            [*after_move[::2], mallory_main],
            join_queue=mallory_main,
            join_proof=mallory.join_proof(GID, 4, comeback),
        )
        assert await snapshot(server) == before


async def test_a_move_that_proves_the_contact_queue_is_not_a_removal(
    server: TestServer,
) -> None:
    """With ``leave_queue`` and ``leave_proof`` (the contact key's signature over
    the same commit) the contact queue's going is the committer's own move: the
    state keys are extended, so earlier epochs' tokens, such as the members'
    rejoin boxes hold, still open the group's state (docs/metadata.md §1)."""
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await bob.give_queue_key()
    await bob.give_contact_queue()
    await _joined_by_contact(alice, GID, bob, member_keys=True)
    contact = await bob.contact_address()
    move = mls_data.commit(GID, 1, b"bob's self-update")
    main = await bob.queue_address()
    answer = await bob.commit(
        GID,
        1,
        move,
        [alice.me.queue_id, main],
        join_queue=main,
        join_proof=bob.join_proof(GID, 1, move),
        leave_queue=contact,
        leave_proof=bob.leave_proof(GID, 1, move),
        sealed=True,
        next_token=True,
    )
    assert answer.epoch == 2
    row = await server.state.db.read(
        lambda tx: tx.fetchone(
            "SELECT state_keys, members_box FROM mls_groups WHERE group_id = ?", GID
        )
    )
    assert row is not None and len(bytes(row[0])) > WRAP_BYTES  # wraps added, none dropped
    keys = StateKeys(server.state.keys.at_rest_key)
    for epoch in (1, 2):
        data_key = keys.open(GID, bytes(row[0]), send_token(GID, epoch))
        assert data_key is not None, f"epoch {epoch}'s token opens the state"
    opened = server.state.member_sets.open(GID, bytes(row[1]), data_key)
    assert sorted(opened) == sorted([alice.me.queue_id, bob.me.queue_id])


async def test_leave_proofs_that_do_not_stand_for_a_move_change_nothing(
    server: TestServer,
) -> None:
    """A member disguises a removal as its own move: it drops another member's
    queue with a leave proof by its own key, or with no key's; leaves a queue
    without moving, keeps the left queue listed, names a queue outside the
    group, or uses a join proof as the leave proof. Each is refused and
    nothing changes."""
    alice, bob, mallory, outsider = [await server.registered() for _ in range(4)]
    for client in (alice, bob, mallory, outsider):
        await client.give_queue_key()
    await bob.give_contact_queue()
    await mallory.give_contact_queue()
    members = await _joined_by_contact(alice, GID, bob, mallory, member_keys=True)
    bob_contact = await bob.contact_address()
    mallory_contact = await mallory.contact_address()
    mallory_main = await mallory.queue_address()
    mine = mls_data.commit(GID, 1, b"mallory moves, and drops bob")
    join = {"join_queue": mallory_main, "join_proof": mallory.join_proof(GID, 1, mine)}
    without_bob = [alice.me.queue_id, mallory_main]
    before = await snapshot(server)
    attempts: list[tuple[ErrorCode, list[str], dict[str, Any]]] = [
        # Bob's contact queue "left" with Mallory's contact key, or with her main key.
        (
            ErrorCode.PROOF_INVALID,
            without_bob,
            {**join, "leave_queue": bob_contact, "leave_proof": mallory.leave_proof(GID, 1, mine)},
        ),
        (
            ErrorCode.PROOF_INVALID,
            without_bob,
            {
                **join,
                "leave_queue": bob_contact,
                "leave_proof": mallory.leave_proof(GID, 1, mine, key=mallory.queue_key),
            },
        ),
        # Her own contact queue, proved with a join proof (another statement).
        (
            ErrorCode.PROOF_INVALID,
            [alice.me.queue_id, bob.contact_queue_id or "", mallory_main],
            {
                **join,
                "leave_queue": mallory_contact,
                "leave_proof": mallory.join_proof(GID, 1, mine, key=mallory.contact_key),
            },
        ),
        # A leave without a move; half of the pair; the left queue still listed;
        # a queue that is not in the group.
        (
            ErrorCode.INVALID_FIELD,
            [alice.me.queue_id, bob.contact_queue_id or ""],
            {"leave_queue": mallory_contact, "leave_proof": mallory.leave_proof(GID, 1, mine)},
        ),
        (
            ErrorCode.INVALID_FIELD,
            [alice.me.queue_id, bob.contact_queue_id or "", mallory_main],
            {**join, "leave_queue": mallory_contact},
        ),
        (
            ErrorCode.INVALID_FIELD,
            [*members, mallory_main],
            {
                **join,
                "leave_queue": mallory_contact,
                "leave_proof": mallory.leave_proof(GID, 1, mine),
            },
        ),
        (
            ErrorCode.INVALID_FIELD,
            [alice.me.queue_id, bob.contact_queue_id or "", mallory_main],
            {
                **join,
                "leave_queue": await outsider.queue_address(),
                "leave_proof": mallory.leave_proof(GID, 1, mine, key=outsider.queue_key),
            },
        ),
    ]
    for code, listed, fields in attempts:
        await _refused(mallory, code, GID, 1, mine, listed, sealed=True, next_token=True, **fields)
    assert await snapshot(server) == before
