"""Queues with keys of their own (docs/metadata.md §1, messenger.server.queue_links).

Once a client gives its queue a key, no row of the database joins the
client to its queue, not even for the holder of the key file: the client
proves its queue on each request with the queue key, and its account's
devices name the queue with its kill secret to remove the device. Each test
plays the operator reading the database, another user presenting someone's
queue, or a device removing another, and checks that a refusal changes
nothing.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_QUEUE, HEADER_QUEUE_SIGNATURE, queue_key_possession
from messenger.server.queue_links import QueueLinks

from . import mls_data
from .client import ApiClient, public_bytes
from .conftest import TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

GID = b"Q" * 32


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _without_nonces(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {k: v for k, v in snap.items() if k != "request_nonces"}


async def _client_row(server: TestServer, client_id: str) -> tuple[Any, Any]:
    async def op(tx: Any) -> tuple[Any, Any]:
        row = await tx.fetchone(
            "SELECT queue_box, legacy_queue_id FROM clients WHERE client_id = ?", client_id
        )
        assert row is not None
        return row[0], row[1]

    result: tuple[Any, Any] = await server.state.db.read(op)
    return result


async def _queue_row(server: TestServer, queue_id: str) -> tuple[bytes | None, bytes | None]:
    async def op(tx: Any) -> tuple[bytes | None, bytes | None]:
        row = await tx.fetchone(
            "SELECT auth_key, kill_hash FROM queues WHERE queue_id = ?", queue_id
        )
        if row is None:
            return None, None
        return (
            None if row[0] is None else bytes(row[0]),
            None if row[1] is None else bytes(row[1]),
        )

    result: tuple[bytes | None, bytes | None] = await server.state.db.read(op)
    return result


async def test_a_queue_with_its_own_key_is_joined_to_no_client_row(server: TestServer) -> None:
    alice, bob = await server.registered(), await server.registered()
    queue = alice.me.queue_id
    box, _legacy = await _client_row(server, alice.me.client_id)
    assert box is not None, "linked, sealed under the key file, until the key is given"
    kill = await alice.give_queue_key()
    # The operator, with the key file, finds no link: the row holds no queue.
    assert await _client_row(server, alice.me.client_id) == (None, None)
    links = QueueLinks(server.state.keys.at_rest_key)
    assert links.queue(alice.me.client_id, None, None) is None
    auth_key, kill_hash = await _queue_row(server, queue)
    assert alice.queue_key is not None and auth_key == public_bytes(alice.queue_key)
    assert kill_hash == hashlib.sha256(kill).digest()
    # Everything that needs the queue works with the proof: addresses, KeyPackages
    # (the claim finds the queue in the leaf), the Welcome to it, fetch and ack.
    await bob.start_group(GID, alice)
    fetched = await alice.fetch()
    assert len(fetched.messages) == 1  # the Welcome
    assert (await alice.ack(fetched.messages[-1].seq)).deleted == 1
    async with alice.websocket() as socket:
        await bob.send(GID, mls_data.application(GID, 1, b"hi"))
        (pushed,) = await socket.messages(1)
        assert pushed.seq > fetched.messages[-1].seq
    # Giving the same key again (a retry) changes nothing.
    assert alice.queue_key is not None
    again = m.QueueKeyRequest(
        public_bytes(alice.queue_key),
        hashlib.sha256(kill).digest(),
        alice.queue_key.sign(queue_key_possession(queue, hashlib.sha256(kill).digest())),
    )
    await alice.call("PUT", r.QUEUE_KEY, again, m.Empty)


async def test_requests_that_do_not_prove_the_queue_are_refused_and_change_nothing(
    server: TestServer,
) -> None:
    alice, mallory = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await mallory.give_queue_key()
    await alice.upload_key_packages([alice.key_package(delivery=await alice.queue_address())])
    carol = await server.registered()  # her queue has no key of its own
    before = _without_nonces(await snapshot(server, exclude=()))
    fetch = r.QUEUE_MESSAGES + "?after=0"

    # No proof: the server does not know Alice's queue, so it cannot serve it.
    bare = ApiClient(alice.http, alice.identity, alice.clock)
    assert _error(await bare.raw("GET", fetch)) == (401, "auth_missing")
    assert _error(await bare.raw("POST", r.ACK, m.AckRequest(5))) == (401, "auth_missing")
    assert _error(await bare.raw("GET", r.QUEUE_ADDRESS)) == (401, "auth_missing")

    # Mallory names Alice's queue: with her own queue key, with a signature of
    # another request, with half the headers; and Alice's proof with no key.
    assert mallory.queue_key is not None
    posing = ApiClient(mallory.http, mallory.identity, mallory.clock)
    posing.queue_key = mallory.queue_key
    assert posing.identity is not None
    posing.identity = type(posing.identity)(
        posing.identity.key,
        posing.identity.account_id,
        posing.identity.client_id,
        alice.me.queue_id,
        posing.identity.credential,
    )
    assert _error(await posing.raw("GET", fetch)) == (401, "auth_invalid")
    other_request = alice.sign("GET", r.QUEUE_ADDRESS, b"")
    headers = {
        HEADER_QUEUE: alice.me.queue_id,
        HEADER_QUEUE_SIGNATURE: other_request[HEADER_QUEUE_SIGNATURE],
    }
    assert _error(await bare.raw("GET", fetch, headers=headers)) == (401, "auth_invalid")
    half = {HEADER_QUEUE: alice.me.queue_id}
    assert _error(await bare.raw("GET", fetch, headers=half)) == (401, "auth_invalid")
    forged = {
        HEADER_QUEUE: alice.me.queue_id,
        HEADER_QUEUE_SIGNATURE: b64encode(Ed25519PrivateKey.generate().sign(b"x")),
    }
    assert _error(await bare.raw("GET", fetch, headers=forged)) == (401, "auth_invalid")
    # A queue that has no key of its own cannot be proven at all.
    unkeyed = {
        HEADER_QUEUE: carol.me.queue_id,
        HEADER_QUEUE_SIGNATURE: other_request[HEADER_QUEUE_SIGNATURE],
    }
    assert _error(await bare.raw("GET", fetch, headers=unkeyed)) == (401, "auth_invalid")
    assert _without_nonces(await snapshot(server, exclude=())) == before


async def test_a_queue_key_is_given_once_and_only_with_its_proof(server: TestServer) -> None:
    alice = await server.registered()
    key = Ed25519PrivateKey.generate()
    kill_hash = os.urandom(32)
    wrong = m.QueueKeyRequest(
        public_bytes(key), kill_hash, key.sign(queue_key_possession("another", kill_hash))
    )
    before = _without_nonces(await snapshot(server, exclude=()))
    response = await alice.raw("PUT", r.QUEUE_KEY, wrong)
    assert _error(response) == (400, "proof_invalid")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    await alice.give_queue_key()
    # Another key for the same queue: refused, the first one stays.
    assert alice.queue_key is not None
    first = public_bytes(alice.queue_key)
    other = Ed25519PrivateKey.generate()
    request = m.QueueKeyRequest(
        public_bytes(other),
        kill_hash,
        other.sign(queue_key_possession(alice.me.queue_id, kill_hash)),
    )
    assert _error(await alice.raw("PUT", r.QUEUE_KEY, request)) == (409, "key_in_use")
    assert (await _queue_row(server, alice.me.queue_id))[0] == first


async def test_a_device_is_removed_by_its_queue_kill_secret(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    mallory = await server.registered()
    await alice.give_queue_key()
    kill = await laptop.give_queue_key()
    path = r.client_path(laptop.me.client_id)
    before = _without_nonces(await snapshot(server, exclude=()))
    # Without the kill secret, or with one that names no queue: nothing happens.
    response = await alice.raw("DELETE", path)
    assert _error(response) == (400, "invalid_field")
    response = await alice.raw("DELETE", path, m.RemoveClientRequest(os.urandom(32)))
    assert _error(response) == (400, "invalid_field")
    # Another account's device, even with the right secret: not found.
    response = await mallory.raw("DELETE", path, m.RemoveClientRequest(kill))
    assert _error(response) == (404, "not_found")
    assert _without_nonces(await snapshot(server, exclude=())) == before
    await alice.call("DELETE", path, m.RemoveClientRequest(kill), m.Empty)
    assert await _queue_row(server, laptop.me.queue_id) == (None, None), "the queue is gone"
    assert _error(await laptop.raw("GET", r.QUEUE_MESSAGES + "?after=0")) == (
        401,
        "device_removed",
    )


async def test_giving_the_key_drops_the_key_packages_that_name_no_address(
    server: TestServer,
) -> None:
    """Once no row names the queue, a KeyPackage whose leaf names no delivery
    address could not be claimed (the server could not find where its Welcome
    goes): it goes with the giving of the key; those with an address stay."""
    alice, bob = await server.registered(), await server.registered()
    addressed = alice.key_package(delivery=await alice.queue_address())
    await alice.upload_key_packages(
        [alice.key_package(), addressed, alice.key_package()], alice.key_package()
    )
    count = await alice.key_package_count()
    assert (count.available, count.last_resort) == (3, True)
    await alice.give_queue_key()
    count = await alice.key_package_count()
    assert (count.available, count.last_resort) == (1, False)
    (claimed,) = (await bob.claim(alice.me.account_id)).key_packages
    assert claimed.key_package == addressed and not claimed.last_resort
    # The client uploads new ones, with its address.
    await alice.upload_key_packages([], alice.key_package(delivery=await alice.queue_address()))
    assert (await alice.key_package_count()).last_resort
