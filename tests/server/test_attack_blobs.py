"""Attacks on the blob store (docs/attachments.md §3, docs/threat-model.md).

The attacker is another user of the same server, or a member removed from
the group (RFC 9420 §12.1.3), sending any bytes to any blob route. Every
refusal about someone else's blob is the same ``404 not_found``, byte for
byte, as for a blob ID that does not exist (a guess), so the answers do not
tell which blobs exist; and each attempt changes nothing: not a row, not a
recipient, not a byte of a file.
"""

from __future__ import annotations

import os

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import BLOB_ID_BYTES, MAX_BLOB_PART_BYTES, OCTET_STREAM, padme
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64encode

from .blob_tools import (
    access_pair,
    blob_file,
    code,
    create,
    created,
    delete,
    fetched,
    get,
    group_of,
    padded,
    put,
    remove,
    status,
    store,
    upload,
)
from .client import ApiClient
from .conftest import ServerFactory, TestServer

pytestmark = pytest.mark.anyio


def _same_404(response: httpx.Response, reference: httpx.Response) -> None:
    assert reference.status_code == 404 and code(reference) == "not_found"
    assert (response.status_code, response.json()) == (404, reference.json())


async def _scene(server: TestServer) -> tuple[ApiClient, ApiClient, ApiClient, bytes]:
    """Alice and Bob share a group; Mallory is another user of the server."""
    alice = await server.registered()
    bob = await server.registered()
    mallory = await server.registered()
    group = await group_of(alice, bob)
    await group_of(mallory)  # Mallory has groups of her own
    return alice, bob, mallory, group


async def test_a_stranger_cannot_create_a_blob_for_someone_elses_group(
    server: TestServer,
) -> None:
    _, _, mallory, group = await _scene(server)
    _, access_hash = access_pair()
    before = await store(server)
    missing = await create(mallory, os.urandom(32), padme(1000), access_hash)
    assert (missing.status_code, code(missing)) == (404, "unknown_group")
    response = await create(mallory, group, padme(1000), access_hash)
    assert (response.status_code, response.json()) == (404, missing.json())
    assert await store(server) == before


async def test_a_stranger_cannot_upload_to_someone_elses_blob(server: TestServer) -> None:
    alice, bob, mallory, group = await _scene(server)
    data = padded(4000)
    _, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    await put(alice, blob_id, 0, data[:1000])
    guess = await put(mallory, os.urandom(BLOB_ID_BYTES), 0, b"x")
    before = await store(server)
    for attacker in (mallory, bob):  # a member of the group is not the creator either
        for offset in (0, 1000, 5):
            _same_404(await put(attacker, blob_id, offset, b"evil" * 10), guess)
        _same_404(await delete(attacker, blob_id), guess)
        _same_404(await status(attacker, blob_id), guess)
    assert await store(server) == before
    assert blob_file(server, blob_id).read_bytes() == data[:1000]


async def test_downloads_need_membership_and_the_capability(server: TestServer) -> None:
    alice, bob, mallory, group = await _scene(server)
    data = padded(3000)
    blob_id, access = await upload(alice, group, data)
    guess = await get(mallory, os.urandom(BLOB_ID_BYTES), access)
    before = await store(server)
    wrong = os.urandom(32)
    for client, header in (
        (bob, None),  # a member without the capability
        (bob, wrong),  # with a wrong one
        (bob, b64encode(access) + "A"),  # malformed ones
        (bob, b64encode(access) + "="),
        (bob, b64encode(access)[:-1] + "*"),
        (bob, b64encode(access[:31])),
        (bob, "!" * 43),
        (bob, b64encode(access).upper()),
        (mallory, access),  # a stranger with the right capability
        (mallory, None),
    ):
        _same_404(await get(client, blob_id, header), guess)
        _same_404(await status(client, blob_id, header), guess)
        _same_404(await fetched(client, blob_id, header), guess)
    # Guessed IDs, with and without a capability, and malformed IDs: the same.
    for blob in (os.urandom(BLOB_ID_BYTES), os.urandom(8), os.urandom(40)):
        _same_404(await get(bob, blob, access), guess)
        _same_404(await get(bob, blob, None), guess)
    response = await bob.raw("GET", r.BLOB.replace("{blob_id}", "not*base64"))
    _same_404(response, guess)
    assert await store(server) == before
    assert (await get(bob, blob_id, access)).content == data


async def test_a_removed_member_can_fetch_nothing(server: TestServer) -> None:
    alice = await server.registered()
    bob = await server.registered()
    carol = await server.registered()
    group = await group_of(alice, bob, carol)
    data = padded(2000)
    blob_id, access = await upload(alice, group, data)
    assert (await get(carol, blob_id, access)).status_code == 200
    await remove(alice, group, 1, keep=[bob])  # the remove commit
    guess = await get(carol, os.urandom(BLOB_ID_BYTES), access)
    before = await store(server)
    _same_404(await get(carol, blob_id, access), guess)
    _same_404(await status(carol, blob_id, access), guess)
    _same_404(await fetched(carol, blob_id, access), guess)
    _same_404(await delete(carol, blob_id), guess)
    # Nor can it reserve new blobs for the group.
    _, access_hash = access_pair()
    response = await create(carol, group, padme(1000), access_hash)
    assert (response.status_code, code(response)) == (404, "unknown_group")
    assert await store(server) == before
    # Alice's later blob is out of Carol's reach too, capability or not.
    later, later_access = await upload(alice, group, padded(500))
    _same_404(await get(carol, later, later_access), guess)
    assert (await get(bob, later, later_access)).status_code == 200


async def test_a_stranger_cannot_mark_a_blob_fetched_or_delete_it(server: TestServer) -> None:
    alice, bob, mallory, group = await _scene(server)
    blob_id, access = await upload(alice, group, padded(1000))
    guess = await fetched(mallory, os.urandom(BLOB_ID_BYTES), access)
    before = await store(server)
    _same_404(await fetched(mallory, blob_id, access), guess)
    _same_404(await delete(mallory, blob_id), guess)
    _same_404(await delete(bob, blob_id), guess)  # a recipient is not the creator
    assert await store(server) == before
    assert (await fetched(bob, blob_id, access)).status_code == 200
    assert (await store(server))["blobs"] == []


async def test_offset_games(server: TestServer) -> None:
    alice, _, _, group = await _scene(server)
    data = padded(10_000)
    _, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    await put(alice, blob_id, 0, data[:4000])
    before = await store(server)
    for offset in (4001, 3999, 0, 10_000, len(data) + 1, 2**63):
        response = await put(alice, blob_id, offset, b"z" * 10)
        assert (response.status_code, code(response)) == (409, "blob_offset"), offset
        assert response.json()["error"]["details"]["received"] == 4000
    for bad in ("-1", "", "1e3", "0x10", "٣", "9" * 30):
        response = await put(alice, blob_id, bad, b"z")
        assert (response.status_code, code(response)) == (400, "invalid_field"), bad
    response = await alice.raw("PUT", r.blob_path(r.BLOB, blob_id), b"z", content_type=OCTET_STREAM)
    assert (response.status_code, code(response)) == (400, "invalid_field")  # no offset
    # A part past the end, and an empty part.
    response = await put(alice, blob_id, 4000, b"z" * (len(data) - 4000 + 1))
    assert (response.status_code, code(response)) == (400, "invalid_field")
    response = await put(alice, blob_id, 4000, b"")
    assert (response.status_code, code(response)) == (400, "invalid_field")
    assert await store(server) == before


async def test_oversize_and_mistyped_parts(server: TestServer) -> None:
    alice, _, _, group = await _scene(server)
    data = padded(MAX_BLOB_PART_BYTES * 2)
    _, access_hash = access_pair()
    blob_id = await created(alice, group, len(data), access_hash)
    before = await store(server)
    response = await put(alice, blob_id, 0, data[: MAX_BLOB_PART_BYTES + 1])
    assert (response.status_code, code(response)) == (413, "body_too_large")
    for content_type in ("application/json", "text/plain", None):
        response = await put(alice, blob_id, 0, b'{"size": 1}', content_type=content_type)
        assert (response.status_code, code(response)) == (415, "unsupported_media_type")
    # And the JSON route does not take raw bytes.
    response = await alice.raw(
        "POST",
        r.BLOBS,
        m.CreateBlobRequest(group, 1024, access_hash).dumps(),
        content_type=OCTET_STREAM,
    )
    assert (response.status_code, code(response)) == (415, "unsupported_media_type")
    assert await store(server) == before
    # A part of exactly the limit is fine.
    response = await put(alice, blob_id, 0, data[:MAX_BLOB_PART_BYTES])
    assert response.status_code == 200, response.json()


async def test_unsigned_and_badly_signed_requests_are_refused(server: TestServer) -> None:
    alice, bob, _, group = await _scene(server)
    blob_id, access = await upload(alice, group, padded(1000))
    before = await store(server)
    target = r.blob_path(r.BLOB, blob_id)
    headers = {"X-Messenger-Blob-Access": b64encode(access)}
    response = await bob.raw("GET", target, signed=False, headers=headers)
    assert (response.status_code, code(response)) == (401, "auth_missing")
    # A signature over other bytes than the part sent.
    signed = alice.sign("PUT", target + "?offset=0", b"one part")
    response = await alice.http.request(
        "PUT",
        target + "?offset=0",
        content=b"another part",
        headers={**signed, "content-type": OCTET_STREAM},
    )
    assert (response.status_code, code(response)) == (401, "auth_invalid")
    assert await store(server) == before


async def test_the_quota_stops_a_flood_of_reservations(server_factory: ServerFactory) -> None:
    size = padme(100_000)
    async with server_factory(blob_quota_bytes=5 * size, max_clients_per_account=2) as server:
        alice, _, mallory, group = await _scene(server)
        mallory_group = await group_of(mallory, group_id=os.urandom(32))
        _, access_hash = access_pair()
        for _ in range(5):
            await created(mallory, mallory_group, size, access_hash)
        response = await create(mallory, mallory_group, size, access_hash)
        assert (response.status_code, code(response)) == (507, "quota_exceeded")
        # The quota is each queue's (no blob request names the account,
        # docs/attachments.md §3): a second device gets its own, and the
        # account's devices are capped, so the account's total is bounded.
        phone = await mallory.add_client()
        phone_group = await group_of(phone)
        for _ in range(5):
            await created(phone, phone_group, size, access_hash)
        response = await create(phone, phone_group, size, access_hash)
        assert (response.status_code, code(response)) == (507, "quota_exceeded")
        with pytest.raises(ApiError) as third:
            await mallory.add_client()
        assert third.value.code is ErrorCode.LIMIT_EXCEEDED
        # Alice is not affected by Mallory's use.
        await created(alice, group, size, access_hash)
