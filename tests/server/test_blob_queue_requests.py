"""An attachment read with the queue key alone (docs/attachments.md §3, docs/metadata.md §1).

A recipient downloads a blob, asks how much of it the server holds and says
``fetched`` with **queue requests**: signed by its queue's key, naming no
client, so the live server does not see which client fetches which group's
files. The recipient check is unchanged: the capability, the group's token
where its state is sealed under the members' keys, and the reading queue
in the group's member set. Each attack below is another user (or an
ex-member) presenting a queue request it should not be able to make; the
refusal changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import OCTET_STREAM, padme
from messenger.api.fields import b64decode
from messenger.api.signing import HEADER_CLIENT, HEADER_NONCE, HEADER_SIGNATURE
from messenger.server.authentication import nonce_digest, queue_nonce_digest

from .blob_tools import (
    access_header,
    access_pair,
    code,
    create,
    created,
    group_of,
    padded,
    put,
    recipients,
    remove,
    store,
    upload,
)
from .client import ApiClient
from .conftest import ServerFactory, TestServer
from .dbtools import rows

pytestmark = pytest.mark.anyio

_NOT_FOUND = (404, "not_found")


def _blob(blob_id: bytes, kind: str) -> tuple[str, str]:
    """The method and target of a recipient's request of ``kind`` about ``blob_id``."""
    if kind == "download":
        return "GET", r.blob_path(r.BLOB, blob_id) + "?offset=0"
    if kind == "status":
        return "GET", r.blob_path(r.BLOB_STATUS, blob_id)
    return "POST", r.blob_path(r.BLOB_FETCHED, blob_id)


async def _by_queue(
    client: ApiClient,
    blob_id: bytes,
    kind: str,
    access: bytes | None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """``client``'s queue request of ``kind`` (no client named), with ``access``."""
    method, target = _blob(blob_id, kind)
    signed = client.queue_headers(method, target, b"") if headers is None else headers
    all_headers = {**access_header(access), **signed}
    return await client.http.request(method, target, headers=all_headers)


async def test_a_recipient_reads_a_blob_with_its_queue_key_alone(server: TestServer) -> None:
    alice, bob, carol = [await server.registered() for _ in range(3)]
    for client in (bob, carol):
        await client.give_queue_key()
    group = await group_of(alice, bob, carol)
    data = padded(100_000)
    blob_id, access = await upload(alice, group, data)

    status = await _by_queue(bob, blob_id, "status", access)
    assert status.status_code == 200, status.text
    assert m.BlobStatus.from_json(status.json()) == m.BlobStatus(len(data), len(data), True)
    method, target = _blob(blob_id, "download")
    headers = bob.queue_headers(method, target, b"")
    assert HEADER_CLIENT not in headers and HEADER_SIGNATURE not in headers
    got = await _by_queue(bob, blob_id, "download", access, headers=headers)
    assert got.status_code == 200 and got.content == data
    # The stored nonce is the queue's: no digest a client's ID makes.
    key = server.state.keys.request_nonce_key
    nonce = b64decode(headers[HEADER_NONCE])
    stored = {bytes(row[0]) for row in await rows(server, "request_nonces")}
    assert queue_nonce_digest(key, bob.me.queue_id, nonce) in stored
    assert nonce_digest(key, bob.me.client_id, nonce) not in stored
    # Bob's fetched takes his queue off; Carol's (a signed request, as an app
    # from before sends) deletes the blob.
    assert (await _by_queue(bob, blob_id, "fetched", access)).status_code == 200
    assert await recipients(server, alice, bob, carol) == {(blob_id, carol.me.queue_id)}
    answer = await carol.raw(
        "POST", r.blob_path(r.BLOB_FETCHED, blob_id), headers=access_header(access)
    )
    assert answer.status_code == 200, answer.text
    assert await rows(server, "blobs") == [] and await rows(server, "blob_fetchers") == []


async def test_queue_requests_for_a_blob_that_are_not_a_recipients_are_refused(
    server: TestServer,
) -> None:
    """Mallory holds the capability (a member forwarded the message) and a queue
    key of her own, but her queue is not in the group; Bob's captured request
    replayed; Bob's request with another blob's capability; no capability; a
    request of hers signed with Bob's queue named: each refused, nothing changes."""
    alice, bob, carol, mallory = [await server.registered() for _ in range(4)]
    for client in (bob, mallory):
        await client.give_queue_key()
    group = await group_of(alice, bob, carol)
    blob_id, access = await upload(alice, group, padded(5_000))
    other_id, _other_access = await upload(alice, group, padded(5_000))
    assert mallory.queue_key is not None
    before = await store(server)

    attempts: list[tuple[str, httpx.Response, tuple[int, str]]] = []
    for kind in ("download", "status", "fetched"):
        method, target = _blob(blob_id, kind)
        forged = bob.queue_headers(method, target, b"", key=mallory.queue_key)
        attempts += [
            (f"mallory, {kind}", await _by_queue(mallory, blob_id, kind, access), _NOT_FOUND),
            (f"no capability, {kind}", await _by_queue(bob, blob_id, kind, None), _NOT_FOUND),
            (f"other blob, {kind}", await _by_queue(bob, other_id, kind, access), _NOT_FOUND),
            (
                f"bob's queue, mallory's key, {kind}",
                await _by_queue(bob, blob_id, kind, access, headers=forged),
                (401, "auth_invalid"),
            ),
        ]
    for what, response, expected in attempts:
        assert (response.status_code, code(response)) == expected, what
    assert await store(server) == before
    # Bob's own fetched, then the same request captured and replayed.
    method, target = _blob(blob_id, "fetched")
    used = bob.queue_headers(method, target, b"")
    assert (await _by_queue(bob, blob_id, "fetched", access, headers=used)).status_code == 200
    after_bob = await store(server)
    assert after_bob != before
    replay = await _by_queue(bob, blob_id, "fetched", access, headers=used)
    assert (replay.status_code, code(replay)) == (401, "auth_replayed")
    assert await store(server) == after_bob


async def test_a_removed_member_cannot_read_a_blob_by_queue_request(server: TestServer) -> None:
    """Removed after the upload (its queue still a recipient row), Bob's queue key
    and the capability fetch nothing: his queue is not in the member set now."""
    alice, bob, carol = [await server.registered() for _ in range(3)]
    await bob.give_queue_key()
    group = await group_of(alice, bob, carol)
    blob_id, access = await upload(alice, group, padded(5_000))
    await remove(alice, group, 1, keep=[carol])
    before = await store(server)
    for kind in ("download", "status", "fetched"):
        response = await _by_queue(bob, blob_id, kind, access)
        assert (response.status_code, code(response)) == (404, "not_found"), kind
    assert await store(server) == before


async def _queue_upload(client: ApiClient, group_id: bytes, data: bytes) -> tuple[bytes, bytes]:
    """``client`` reserves and uploads a blob with queue requests; its ID and capability."""
    access, access_hash = access_pair()
    created = await client.queue_raw(
        "POST", r.BLOBS, m.CreateBlobRequest(group_id, len(data), access_hash)
    )
    assert created.status_code == 200, created.text
    blob_id = m.CreateBlobResponse.from_json(created.json()).blob_id
    response = await _put_by_queue(client, blob_id, 0, data)
    assert response.status_code == 200, response.text
    return blob_id, access


async def _put_by_queue(
    client: ApiClient, blob_id: bytes, offset: int, data: bytes
) -> httpx.Response:
    target = f"{r.blob_path(r.BLOB, blob_id)}?offset={offset}"
    headers = {"content-type": OCTET_STREAM, **client.queue_headers("PUT", target, data)}
    return await client.http.request("PUT", target, content=data, headers=headers)


async def test_a_blob_reserved_by_queue_request_is_the_queues(server: TestServer) -> None:
    """Alice's queue reserves, uploads, asks about and withdraws blobs naming no
    client; the recipients leave her queue out."""
    alice, bob, carol = [await server.registered() for _ in range(3)]
    for client in (alice, bob):
        await client.give_queue_key()
    group = await group_of(alice, bob, carol)
    data = padded(20_000)
    blob_id, access = await _queue_upload(alice, group, data)
    assert await recipients(server, alice, bob, carol) == {
        (blob_id, bob.me.queue_id),
        (blob_id, carol.me.queue_id),
    }
    # The owner's status needs no capability; Bob downloads as before.
    status = await _by_queue(alice, blob_id, "status", None)
    assert m.BlobStatus.from_json(status.json()) == m.BlobStatus(len(data), len(data), True)
    got = await _by_queue(bob, blob_id, "download", access)
    assert got.content == data
    # The owner withdraws a second blob by queue request.
    second, _ = await _queue_upload(alice, group, padded(5_000))
    target = r.blob_path(r.BLOB, second)
    gone = await alice.http.request(
        "DELETE", target, headers=alice.queue_headers("DELETE", target, b"")
    )
    assert gone.status_code == 200, gone.text
    assert second not in {bytes(row[0]) for row in await rows(server, "blobs")}


async def test_only_the_owner_of_a_blob_may_upload_ask_or_withdraw_it(
    server: TestServer,
) -> None:
    """A blob Alice's queue reserved is that queue's: Mallory's queue (a member of
    the group) and Alice's laptop (her account, another queue) may not add a
    part, ask its status as its owner or withdraw it, by queue request or
    signed. Each is ``not_found``, and nothing changes. Alice's own signed
    request, which proves her queue, may."""
    alice, bob, mallory = [await server.registered() for _ in range(3)]
    laptop = await alice.add_client()
    for client in (alice, mallory, laptop):
        await client.give_queue_key()
    group = await group_of(alice, bob, mallory, laptop)
    size = padme(1000)
    created_blob = await alice.queue_raw(
        "POST", r.BLOBS, m.CreateBlobRequest(group, size, access_pair()[1])
    )
    blob_id = m.CreateBlobResponse.from_json(created_blob.json()).blob_id
    target = r.blob_path(r.BLOB, blob_id)
    before = await store(server)
    refusals = []
    for other in (mallory, laptop):
        refusals += [
            await _put_by_queue(other, blob_id, 0, os.urandom(size)),
            await put(other, blob_id, 0, os.urandom(size)),
            await _by_queue(other, blob_id, "status", None),
            await other.raw("GET", r.blob_path(r.BLOB_STATUS, blob_id)),
            await other.http.request(
                "DELETE", target, headers=other.queue_headers("DELETE", target, b"")
            ),
            await other.raw("DELETE", target),
        ]
    for response in refusals:
        assert (response.status_code, code(response)) == _NOT_FOUND, response.request.url
    assert await store(server) == before
    # Alice's signed requests prove her queue: she is the owner.
    assert (await put(alice, blob_id, 0, os.urandom(size))).status_code == 200
    assert (await alice.raw("DELETE", target)).status_code == 200


async def test_a_blob_from_before_is_its_accounts(server: TestServer) -> None:
    """A blob whose owner is an account (reserved before queues owned blobs) is
    still its account's by signed request, and no queue's."""
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    group = await group_of(alice, bob)
    blob_id = await created(alice, group, padme(1000), access_pair()[1])
    await _as_account_owned(server, blob_id, alice.me.account_id)
    by_queue = await _by_queue(alice, blob_id, "status", None)
    assert (by_queue.status_code, code(by_queue)) == _NOT_FOUND
    signed = await alice.raw("GET", r.blob_path(r.BLOB_STATUS, blob_id))
    assert signed.status_code == 200, signed.text
    assert (await alice.raw("DELETE", r.blob_path(r.BLOB, blob_id))).status_code == 200


async def _as_account_owned(server: TestServer, blob_id: bytes, account_id: str) -> None:
    """Make ``blob_id``'s row name its owner as rows from before did: the account."""
    key = server.state.blobs._owner_key
    owner = hmac.new(key, account_id.encode(), hashlib.sha256).digest()

    async def op(tx: Any) -> None:
        await tx.execute("UPDATE blobs SET owner_hash = ? WHERE blob_id = ?", owner, blob_id)

    await server.state.db.transaction(op)


async def test_each_queue_has_its_own_quota(server_factory: ServerFactory) -> None:
    """The quota is the reserving queue's: Alice's phone at its quota does not
    stop her laptop; a signed reservation that proves the phone's queue counts
    with its queue requests."""
    async with server_factory(blob_quota_bytes=padme(3000)) as server:
        alice, bob = await server.registered(), await server.registered()
        laptop = await alice.add_client()
        for client in (alice, laptop):
            await client.give_queue_key()
        group = await group_of(alice, bob, laptop)
        size = padme(3000)

        async def reserve(client: ApiClient) -> httpx.Response:
            request = m.CreateBlobRequest(group, size, access_pair()[1])
            return await client.queue_raw("POST", r.BLOBS, request)

        assert (await reserve(alice)).status_code == 200
        for over in (await reserve(alice), await create(alice, group, size, access_pair()[1])):
            assert (over.status_code, code(over)) == (507, "quota_exceeded")
        assert (await reserve(laptop)).status_code == 200


async def test_a_signed_request_without_a_proof_is_told_to_show_its_queue(
    server: TestServer,
) -> None:
    """A keyed client's signed download without its queue proof: the server cannot
    tell whether its queue is a recipient, so ``auth_missing``, before anything."""
    alice, bob = await server.registered(), await server.registered()
    await bob.give_queue_key()
    group = await group_of(alice, bob)
    blob_id, access = await upload(alice, group, padded(5_000))
    key, bob.queue_key = bob.queue_key, None  # sign without the proof
    try:
        for kind in ("download", "status", "fetched"):
            method, target = _blob(blob_id, kind)
            response = await bob.raw(method, target, headers=access_header(access))
            assert (response.status_code, code(response)) == (401, "auth_missing"), kind
    finally:
        bob.queue_key = key
