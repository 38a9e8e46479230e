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

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.fields import b64decode
from messenger.api.signing import HEADER_CLIENT, HEADER_NONCE, HEADER_SIGNATURE
from messenger.server.authentication import nonce_digest, queue_nonce_digest

from .blob_tools import (
    access_header,
    code,
    group_of,
    padded,
    recipients,
    remove,
    store,
    upload,
)
from .client import ApiClient
from .conftest import TestServer
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


async def test_the_creators_status_without_a_capability_stays_signed(server: TestServer) -> None:
    """The creator asks about its upload by account (a signed request); a queue
    request carries no account, so without the capability it is ``not_found``."""
    alice, bob = await server.registered(), await server.registered()
    await alice.give_queue_key()
    group = await group_of(alice, bob)
    blob_id, _access = await upload(alice, group, padded(5_000))
    signed = await alice.raw("GET", r.blob_path(r.BLOB_STATUS, blob_id))
    assert signed.status_code == 200
    by_queue = await _by_queue(alice, blob_id, "status", None)
    assert (by_queue.status_code, code(by_queue)) == (404, "not_found")


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
