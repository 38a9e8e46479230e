"""Contact tokens (docs/metadata.md §1, server migration 24).

A client of the new app asks for its contact queue with a kill hash, so no
row names that queue; its KeyPackages carry the account's contact token and
are sealed under it, so the key file alone opens none of them; a claim
presents the token; a device that removes the client names its contact
queue with the kill secret; a handle carries the token sealed under a key
from the handle. Each test plays the client, another user or the operator
(who reads every row with the key file) and checks what the server answers
and that a refusal changes nothing.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64decode
from messenger.api.signing import contact_queue_possession
from messenger.client.handle_box import open_handle_box, seal_handle_box
from messenger.server.at_rest import SealedColumn
from messenger.server.devices import removed_queue_hash
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .client import ApiClient, public_bytes
from .conftest import ServerFactory, TestServer
from .dbtools import TABLES, columns, entries, rows, snapshot

pytestmark = pytest.mark.anyio

GID = b"T" * 32
HYBRID = 0xF001


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _without_nonces(snap: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {k: v for k, v in snap.items() if k != "request_nonces"}


async def _unchanged(server: TestServer) -> dict[str, list[tuple[Any, ...]]]:
    return _without_nonces(await snapshot(server, exclude=()))


def _bare(client: ApiClient) -> ApiClient:
    """``client`` signing without a queue proof."""
    bare = ApiClient(client.http, client.identity, client.clock)
    bare.contact_queue_id, bare.contact_key = client.contact_queue_id, client.contact_key
    return bare


def _kill() -> tuple[bytes, bytes]:
    """A contact queue's kill secret and its hash."""
    secret = os.urandom(32)
    return secret, hashlib.sha256(secret).digest()


async def _client_row(server: TestServer, client_id: str) -> tuple[bytes | None, int]:
    """``(contact_box, contact_killable)`` of a client's row."""

    async def op(tx: Tx) -> tuple[bytes | None, int]:
        row = await tx.fetchone(
            "SELECT contact_box, contact_killable FROM clients WHERE client_id = ?", client_id
        )
        assert row is not None
        return (None if row[0] is None else bytes(row[0])), int(row[1])

    result: tuple[bytes | None, int] = await server.state.db.read(op)
    return result


async def _kill_hash(server: TestServer, queue_id: str) -> bytes | None:
    row = await server.state.db.read(
        lambda tx: tx.fetchone("SELECT kill_hash FROM queues WHERE queue_id = ?", queue_id)
    )
    assert row is not None, "the queue exists"
    return None if row[0] is None else bytes(row[0])


async def _stored(server: TestServer, client_id: str) -> list[tuple[int, int, bytes]]:
    """``(cipher suite, last resort, data)`` of a client's stored KeyPackages."""
    found = await server.state.db.read(
        lambda tx: tx.fetchall(
            "SELECT cipher_suite, last_resort, data FROM key_packages WHERE client_id = ?",
            client_id,
        )
    )
    return sorted((int(s), int(lr), bytes(d)) for s, lr, d in found)


async def _contact_messages(client: ApiClient) -> list[bytes]:
    response = await client.contact_raw("GET", f"{r.QUEUE_MESSAGES}?after=0")
    assert response.status_code == 200, response.text
    return [x.data for x in m.FetchResponse.from_json(response.json()).messages]


async def _new_app(
    client: ApiClient, token: bytes, *, keyed: bool = True
) -> tuple[str, bytes, str]:
    """``client`` as the new app sets itself up: its queue's key (if ``keyed``), its
    contact queue with a kill hash, and one one-time and one last-resort KeyPackage
    with the token naming the contact queue, uploaded without a queue proof;
    ``(contact queue, its kill secret, a contact address)``."""
    if keyed:
        await client.give_queue_key()
    kill, kill_hash = _kill()
    contact = await client.give_contact_queue(kill_hash=kill_hash)
    address = await client.contact_address()
    await _bare(client).upload_key_packages(
        [client.key_package(delivery=address, contact_token=token)],
        client.key_package(delivery=address, contact_token=token),
        contact_proof=client.contact_proof(),
    )
    return contact, kill, address


def _forms(value: str) -> list[bytes]:
    """The ways a stored value could hold an ID: its text, and its raw bytes."""
    return [value.encode(), value.encode().hex().encode(), b64decode(value)]


# -- what the database holds -----------------------------------------------------------


async def test_no_stored_row_joins_the_contact_queue_to_its_client(server: TestServer) -> None:
    alice = await server.registered()
    token = os.urandom(32)
    contact, _kill_secret, _address = await _new_app(alice, token)
    # No contact box; the row says only that the contact queue has a kill hash.
    assert await _client_row(server, alice.me.client_id) == (None, 1)
    assert await _kill_hash(server, contact) is not None
    # Every KeyPackage is sealed under the token: 0x02, and the key file does not
    # open it, whatever its first byte says.
    stored = await _stored(server, alice.me.client_id)
    assert [(s, lr) for s, lr, _ in stored] == [(1, 0), (1, 1)]
    sealed = SealedColumn(server.state.keys.at_rest_key, "key_packages.data")
    for _suite, _last, data in stored:
        assert data[:1] == b"\x02"
        for attempt in (data, b"\x01" + data[1:]):
            with pytest.raises(StorageError):
                sealed.open(alice.me.client_id.encode(), attempt)
    # No stored value holds the contact queue (but its own queue row) or the token.
    for table in TABLES:
        names = await columns(server, table)
        for row in await rows(server, table):
            values = dict(zip(names, row, strict=True))
            if table == "queues" and values["queue_id"] == contact:
                values.pop("queue_id")
                shown = b" ".join(
                    v if isinstance(v, bytes) else str(v).encode() for v in values.values()
                )
                for ident in (alice.me.client_id, alice.me.account_id):
                    assert not any(f in shown for f in _forms(ident)), table
            for value in values.values():
                if isinstance(value, str):
                    value = value.encode()
                if not isinstance(value, bytes):
                    continue
                assert not any(f in value for f in _forms(contact)), (table, values)
                assert token not in value and token.hex().encode() not in value, table


# -- claims ----------------------------------------------------------------------------


async def test_a_claim_without_the_token_or_with_another_changes_nothing(
    server_factory: ServerFactory,
) -> None:
    # One one-time KeyPackage an hour for the target: refused claims that kept
    # their allowance would leave the good claim the last-resort one.
    async with server_factory(one_time_key_packages_per_target_per_hour=1) as server:
        alice, bob = await server.registered(), await server.registered()
        token = os.urandom(32)
        await _new_app(bob, token)
        await alice.create_group(GID)
        before = await _unchanged(server)
        for wrong in (None, os.urandom(32)):
            request = m.ClaimKeyPackagesRequest(bob.me.account_id, None, wrong)
            response = await alice.raw("POST", r.CLAIM_KEY_PACKAGES, request)
            assert _error(response) == (403, "contact_token_invalid")
            assert response.json()["error"]["message"]
            assert await _unchanged(server) == before  # key_packages, claim_evidence
        (claimed,) = (await alice.claim(bob.me.account_id, contact_token=token)).key_packages
        assert not claimed.last_resort
        assert len(await rows(server, "claim_evidence")) == 1
        assert [lr for _s, lr, _d in await _stored(server, bob.me.client_id)] == [1]
        # Only the last resort is left: it opens with the token alone too.
        with pytest.raises(ApiError) as refused:
            await alice.claim(bob.me.account_id)
        assert refused.value.code is ErrorCode.CONTACT_TOKEN_INVALID
        (last,) = (await alice.claim(bob.me.account_id, contact_token=token)).key_packages
        assert last.last_resort


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
async def test_a_claim_with_the_token_gets_its_welcome_to_the_contact_queue(
    server: TestServer, keyed: bool
) -> None:
    """``unkeyed``: the client's row still names its queue (no key of its own),
    its contact queue none: the Welcome goes where the leaf says."""
    alice, bob = await server.registered(), await server.registered()
    token = os.urandom(32)
    contact, _kill_secret, _address = await _new_app(bob, token, keyed=keyed)
    await alice.create_group(GID)
    (claimed,) = (await alice.claim(bob.me.account_id, contact_token=token)).key_packages
    assert server.state.addresses.resolve(claimed.queue_id) == contact
    welcome = mls_data.welcome([mls_data.key_package_ref(claimed.key_package)])
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [alice.me.queue_id, claimed.queue_id],
        welcome=welcome,
        welcome_to=[claimed.queue_id],
    )
    assert await _contact_messages(bob) == [welcome]
    assert (await bob.fetch()).messages == ()


async def test_own_devices_claim_with_the_token(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    token = os.urandom(32)
    await _new_app(laptop, token)
    before = await _unchanged(server)
    response = await alice.raw(
        "POST", r.CLAIM_KEY_PACKAGES, m.ClaimKeyPackagesRequest(alice.me.account_id)
    )
    assert _error(response) == (403, "contact_token_invalid")
    assert await _unchanged(server) == before
    (claimed,) = (await alice.claim(alice.me.account_id, contact_token=token)).key_packages
    assert claimed.client_id == laptop.me.client_id and not claimed.last_resort


# -- uploads ---------------------------------------------------------------------------


async def test_a_malformed_or_mixed_token_is_refused_whole(server: TestServer) -> None:
    alice = await server.registered()
    await alice.give_queue_key()
    _, kill_hash = _kill()
    await alice.give_contact_queue(kill_hash=kill_hash)
    address = await alice.contact_address()
    token = os.urandom(32)
    good = alice.key_package(delivery=address, contact_token=token)
    before = await _unchanged(server)
    for bad in (b"", os.urandom(31), os.urandom(33)):
        malformed = alice.key_package(delivery=address, contact_token=bad)
        for key_packages, last_resort in (([malformed], None), ([], malformed)):
            request = m.UploadKeyPackagesRequest(
                tuple(key_packages), last_resort, alice.contact_proof()
            )
            response = await alice.raw("POST", r.KEY_PACKAGES, request)
            assert _error(response) == (400, "invalid_message"), response.text
    # One leaf without the token, or with another one.
    for other in (
        alice.key_package(delivery=address),
        alice.key_package(delivery=address, contact_token=os.urandom(32)),
    ):
        request = m.UploadKeyPackagesRequest((good, other), None, alice.contact_proof())
        assert _error(await alice.raw("POST", r.KEY_PACKAGES, request)) == (
            400,
            "invalid_message",
        )
    assert await _unchanged(server) == before


async def test_a_contact_proof_by_another_key_or_for_another_client_is_refused(
    server: TestServer,
) -> None:
    alice, mallory = await server.registered(), await server.registered()
    token = os.urandom(32)
    for client in (alice, mallory):
        await client.give_queue_key()
        await client.give_contact_queue(kill_hash=_kill()[1])
    address = await alice.contact_address()
    theirs = await mallory.contact_address()
    assert mallory.contact_key is not None
    mallorys_for_alice = mallory.contact_key.sign(
        contact_queue_possession(mallory.me.client_id, public_bytes(mallory.contact_key))
    )
    before = await _unchanged(server)
    attempts: list[tuple[str, bytes, tuple[int, str]]] = [
        # A key that is not the contact queue's; Mallory's proof (made for her client).
        (address, alice.contact_proof(Ed25519PrivateKey.generate()), (400, "invalid_field")),
        (address, mallorys_for_alice, (400, "invalid_field")),
        # Alice's own proof, for a leaf naming Mallory's contact queue.
        (theirs, alice.contact_proof(), (400, "invalid_field")),
    ]
    for client in (alice, _bare(alice)):
        for delivery, proof, expected in attempts:
            request = m.UploadKeyPackagesRequest(
                (alice.key_package(delivery=delivery, contact_token=token),), None, proof
            )
            assert _error(await client.raw("POST", r.KEY_PACKAGES, request)) == expected
    # A good proof does not let another leaf name Mallory's queue.
    mixed = m.UploadKeyPackagesRequest(
        (
            alice.key_package(delivery=address, contact_token=token),
            alice.key_package(delivery=theirs, contact_token=token),
        ),
        None,
        alice.contact_proof(),
    )
    assert _error(await alice.raw("POST", r.KEY_PACKAGES, mixed)) == (400, "invalid_message")
    assert _error(await _bare(alice).raw("POST", r.KEY_PACKAGES, mixed)) == (401, "auth_missing")
    # Without any proof, the contact queue is no queue of the client's.
    plain = m.UploadKeyPackagesRequest((alice.key_package(delivery=address, contact_token=token),))
    assert _error(await _bare(alice).raw("POST", r.KEY_PACKAGES, plain)) == (401, "auth_missing")
    assert await _unchanged(server) == before


async def test_the_first_token_upload_drops_what_the_key_file_opens_in_its_suites(
    server: TestServer,
) -> None:
    """An app from before stored KeyPackages naming its contact queue, sealed under
    the key file; updated, it moves the queue and uploads KeyPackages with the token."""
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    await alice.give_contact_queue()
    address = await alice.contact_address()
    await _bare(alice).upload_key_packages(
        [alice.key_package(delivery=address), alice.key_package(delivery=address)],
        alice.key_package(delivery=address),
    )
    await _bare(alice).upload_key_packages(
        [alice.key_package(delivery=address, suite_id=HYBRID)],
        alice.key_package(delivery=address, suite_id=HYBRID),
    )
    await alice.give_contact_queue(alice.contact_key, kill_hash=_kill()[1])
    token = os.urandom(32)
    # Suite 1 only: its KeyPackages sealed under the key file go, last resort too;
    # the hybrid suite's stay until an upload of that suite.
    count = await _bare(alice).upload_key_packages(
        [alice.key_package(delivery=address, contact_token=token)],
        contact_proof=alice.contact_proof(),
    )
    assert count.suites == (
        m.SuiteKeyPackageCount(1, 1, False),
        m.SuiteKeyPackageCount(HYBRID, 1, True),
    )
    stored = await _stored(server, alice.me.client_id)
    assert sorted((s, d[:1]) for s, _lr, d in stored) == [
        (1, b"\x02"),
        (HYBRID, b"\x01"),
        (HYBRID, b"\x01"),
    ]
    # Those the key file opens are claimed as before, a token given or not.
    for given in (None, os.urandom(32)):
        claimed = await bob.claim(alice.me.account_id, (HYBRID,), contact_token=given)
        assert claimed.key_packages[0].last_resort is (given is not None)
        resolved = server.state.addresses.resolve(claimed.key_packages[0].queue_id)
        assert resolved == alice.contact_queue_id
    # A second upload in suite 1 keeps the first (the server cannot open it to
    # check its address again), and one in the hybrid suite replaces its rows.
    await _bare(alice).upload_key_packages(
        [alice.key_package(delivery=address, contact_token=token)],
        alice.key_package(delivery=address, contact_token=token, suite_id=HYBRID),
        contact_proof=alice.contact_proof(),
    )
    stored = await _stored(server, alice.me.client_id)
    assert sorted((s, lr, d[:1]) for s, lr, d in stored) == [
        (1, 0, b"\x02"),
        (1, 0, b"\x02"),
        (HYBRID, 1, b"\x02"),
    ]


async def test_a_new_accounts_first_key_packages_go_when_the_contact_queue_comes(
    server: TestServer,
) -> None:
    """A new account uploads KeyPackages with the token before it has a contact
    queue: they name its own queue. The first upload naming the contact queue
    opens them with its token and drops them (else a claim would hand out the
    queue the client reads its groups from), and drops one sealed under a token
    the account no longer has (no claimer could open it)."""
    alice, bob = await server.registered(), await server.registered()
    token = os.urandom(32)
    await alice.give_queue_key()
    own = await alice.queue_address()
    await alice.upload_key_packages(
        [alice.key_package(delivery=own, contact_token=token)],
        alice.key_package(delivery=own, contact_token=token),
    )
    await alice.upload_key_packages([alice.key_package(delivery=own, contact_token=os.urandom(32))])
    assert len(await _stored(server, alice.me.client_id)) == 3
    await alice.give_contact_queue(kill_hash=_kill()[1])
    address = await alice.contact_address()
    await _bare(alice).upload_key_packages(
        [alice.key_package(delivery=address, contact_token=token)],
        alice.key_package(delivery=address, contact_token=token),
        contact_proof=alice.contact_proof(),
    )
    stored = await _stored(server, alice.me.client_id)
    assert [(lr, d[:1]) for _s, lr, d in stored] == [(0, b"\x02"), (1, b"\x02")]
    for _ in range(2):  # the one-time KeyPackage, then the last resort
        (claimed,) = (await bob.claim(alice.me.account_id, contact_token=token)).key_packages
        assert server.state.addresses.resolve(claimed.queue_id) == alice.contact_queue_id


async def test_giving_the_queue_key_keeps_key_packages_sealed_under_the_token(
    server: TestServer,
) -> None:
    """A client whose queue gets its key after its token KeyPackages were stored:
    the rows the server cannot open stay (their address was checked)."""
    alice, bob = await server.registered(), await server.registered()
    token = os.urandom(32)
    await _new_app(bob, token, keyed=False)
    await bob.give_queue_key()
    assert len(await _stored(server, bob.me.client_id)) == 2
    (claimed,) = (await alice.claim(bob.me.account_id, contact_token=token)).key_packages
    assert server.state.addresses.resolve(claimed.queue_id) == bob.contact_queue_id


# -- PUT /v1/queue/contact with a kill hash --------------------------------------------


async def test_a_contact_queue_from_before_moves_with_a_kill_hash(server: TestServer) -> None:
    alice = await server.registered()
    main_kill = await alice.give_queue_key()
    contact = await alice.give_contact_queue()
    box, killable = await _client_row(server, alice.me.client_id)
    assert box is not None and killable == 0
    kill, kill_hash = _kill()
    # Another key, with a kill hash: key_in_use, nothing changes.
    before = await _unchanged(server)
    with pytest.raises(ApiError) as refused:
        await alice.give_contact_queue(Ed25519PrivateKey.generate(), kill_hash=kill_hash)
    assert refused.value.code is ErrorCode.KEY_IN_USE
    assert await _unchanged(server) == before
    # The same key with a kill hash: the same queue, the link dropped.
    assert await alice.give_contact_queue(alice.contact_key, kill_hash=kill_hash) == contact
    assert await _client_row(server, alice.me.client_id) == (None, 1)
    assert await _kill_hash(server, contact) == kill_hash
    # A retry answers the same queue; another key, or another kill hash, is key_in_use.
    before = await _unchanged(server)
    assert await alice.give_contact_queue(alice.contact_key, kill_hash=kill_hash) == contact
    assert await alice.give_contact_queue(alice.contact_key) == contact
    for key, other_hash in (
        (Ed25519PrivateKey.generate(), kill_hash),
        (Ed25519PrivateKey.generate(), None),
        (alice.contact_key, _kill()[1]),
    ):
        assert key is not None
        proof = key.sign(contact_queue_possession(alice.me.client_id, public_bytes(key)))
        request = m.ContactQueueRequest(public_bytes(key), proof, other_hash)
        assert _error(await alice.raw("PUT", r.CONTACT_QUEUE, request)) == (409, "key_in_use")
    assert await _unchanged(server) == before
    # The device removing it names the queue with the kill secret.
    laptop = await alice.add_client()
    await laptop.give_queue_key()
    await laptop.call(
        "DELETE",
        r.client_path(alice.me.client_id),
        m.RemoveClientRequest(main_kill, kill),
        m.Empty,
    )
    tombstone = removed_queue_hash(server.state.keys.removed_client_key, contact)
    assert (tombstone,) in await rows(server, "removed_clients")


async def test_a_kill_hash_another_queue_has_is_key_in_use(server: TestServer) -> None:
    alice, bob, carol = [await server.registered() for _ in range(3)]
    main_kill = await alice.give_queue_key()
    _kill_secret, kill_hash = _kill()
    await alice.give_contact_queue(kill_hash=kill_hash)
    await carol.give_contact_queue()  # from before: its box
    before = await _unchanged(server)
    for taken in (kill_hash, hashlib.sha256(main_kill).digest()):
        for client in (bob, carol):
            key = Ed25519PrivateKey.generate() if client is bob else carol.contact_key
            assert key is not None
            proof = key.sign(contact_queue_possession(client.me.client_id, public_bytes(key)))
            request = m.ContactQueueRequest(public_bytes(key), proof, taken)
            assert _error(await client.raw("PUT", r.CONTACT_QUEUE, request)) == (
                409,
                "key_in_use",
            )
    assert await _unchanged(server) == before
    # The possession proof is checked first: a bad one is proof_invalid.
    key = Ed25519PrivateKey.generate()
    request = m.ContactQueueRequest(public_bytes(key), os.urandom(64), _kill()[1])
    assert _error(await bob.raw("PUT", r.CONTACT_QUEUE, request)) == (400, "proof_invalid")
    assert await _unchanged(server) == before


# -- removing a device -----------------------------------------------------------------


async def test_removing_a_device_names_its_contact_queue_with_the_kill_secret(
    server: TestServer,
) -> None:
    alice, bob = await server.registered(), await server.registered()
    laptop = await alice.add_client()
    await alice.give_queue_key()
    token = os.urandom(32)
    main_kill = await laptop.give_queue_key()
    kill, kill_hash = _kill()
    contact = await laptop.give_contact_queue(kill_hash=kill_hash)
    address = await laptop.contact_address()
    await _bare(laptop).upload_key_packages(
        [laptop.key_package(delivery=address, contact_token=token)],
        contact_proof=laptop.contact_proof(),
    )
    # A Welcome waits in the contact queue.
    await bob.create_group(GID)
    (claimed,) = (await bob.claim(alice.me.account_id, contact_token=token)).key_packages
    welcome = mls_data.welcome([mls_data.key_package_ref(claimed.key_package)])
    await bob.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [bob.me.queue_id, claimed.queue_id],
        welcome=welcome,
        welcome_to=[claimed.queue_id],
    )
    assert contact in {q for q, _, _ in await entries(server)}
    path = r.client_path(laptop.me.client_id)
    before = await _unchanged(server)
    for contact_kill in (None, os.urandom(32), main_kill):
        response = await alice.raw("DELETE", path, m.RemoveClientRequest(main_kill, contact_kill))
        assert _error(response) == (400, "invalid_field"), response.text
        assert response.json()["error"]["details"]["field"] == "contact_kill"
    assert await _unchanged(server) == before
    await alice.call("DELETE", path, m.RemoveClientRequest(main_kill, kill), m.Empty)
    assert contact not in {str(row[0]) for row in await rows(server, "queues")}
    assert laptop.me.queue_id not in {str(row[0]) for row in await rows(server, "queues")}
    assert contact not in {q for q, _, _ in await entries(server)}
    tombstone = removed_queue_hash(server.state.keys.removed_client_key, contact)
    assert (tombstone,) in await rows(server, "removed_clients")
    assert await _stored(server, laptop.me.client_id) == []
    assert _error(await laptop.contact_raw("GET", f"{r.QUEUE_MESSAGES}?after=0")) == (
        401,
        "device_removed",
    )


# -- handles ---------------------------------------------------------------------------


async def _handle_box(server: TestServer, account_id: str) -> bytes | None:
    row = await server.state.db.read(
        lambda tx: tx.fetchone(
            "SELECT handle_contact_box FROM accounts WHERE account_id = ?", account_id
        )
    )
    assert row is not None
    return None if row[0] is None else bytes(row[0])


async def test_a_handle_carries_the_contact_box(server: TestServer) -> None:
    alice, bob = await server.registered(), await server.registered()
    token = os.urandom(32)
    box = seal_handle_box(token, "alice.contact")
    await alice.set_handle("alice.contact", box)
    found = await bob.lookup("alice.contact")
    assert found == m.HandleLookupResponse(alice.me.account_id, box)
    assert found.contact_box is not None
    assert open_handle_box(found.contact_box, "alice.contact") == token
    # The same handle again without a box, or a new handle: none kept.
    await alice.set_handle("alice.contact")
    assert (await bob.lookup("alice.contact")).contact_box is None
    await alice.set_handle("alice.contact", box)
    await alice.set_handle("alice.other")
    assert (await bob.lookup("alice.other")).contact_box is None
    assert await _handle_box(server, alice.me.account_id) is None
    # Removing the handle removes its box.
    await alice.set_handle("alice.other", seal_handle_box(token, "alice.other"))
    await alice.call("DELETE", r.HANDLE, None, m.Empty)
    assert await _handle_box(server, alice.me.account_id) is None
    with pytest.raises(ApiError) as gone:
        await bob.lookup("alice.other")
    assert gone.value.code is ErrorCode.UNKNOWN_ACCOUNT
    # A box of the wrong length: invalid_field, nothing changes.
    before = await _unchanged(server)
    for size in (60, 62):
        body = m.SetHandleRequest("alice.third").to_json()
        body["contact_box"] = mls_data.b64(os.urandom(size))
        response = await alice.raw("PUT", r.HANDLE, body)
        assert _error(response) == (400, "invalid_field")
    assert await _unchanged(server) == before


async def test_a_registration_carries_the_handles_contact_box(server: TestServer) -> None:
    """A new account gives its handle's box with the registration (one request,
    and a lookup gives the token from the start); a box without a handle is
    ``invalid_field`` and registers nothing."""
    token = os.urandom(32)
    box = seal_handle_box(token, "carol.new")
    carol = await server.registered(handle="carol.new", contact_box=box)
    assert await _handle_box(server, carol.me.account_id) == box
    found = await (await server.registered()).lookup("carol.new")
    assert found.contact_box is not None
    assert open_handle_box(found.contact_box, "carol.new") == token
    before = await _unchanged(server)
    with pytest.raises(ApiError) as refused:
        await server.registered(contact_box=box)
    assert refused.value.code is ErrorCode.INVALID_FIELD
    assert await _unchanged(server) == before
