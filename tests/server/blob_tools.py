"""Helpers of the blob store tests (docs/attachments.md §3): groups, blob requests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import HEADER_BLOB_ACCESS, HEADER_GROUP_TOKEN, OCTET_STREAM, padme
from messenger.api.fields import b64encode

from . import mls_data
from .client import ApiClient
from .conftest import TestServer
from .dbtools import rows


async def group_of(owner: ApiClient, *members: ApiClient, group_id: bytes | None = None) -> bytes:
    """A group of ``owner`` and ``members`` at epoch 1; its ID."""
    group_id = group_id or os.urandom(32)
    await owner.create_group(group_id)
    if members:
        queues = [c.me.queue_id for c in members]
        await owner.commit(
            group_id,
            0,
            mls_data.commit(group_id, 0),
            [owner.me.queue_id, *queues],
            welcome=await owner.welcome_for(*members),
            welcome_to=queues,
            group_info=mls_data.group_info(group_id, 1),
        )
    return group_id


async def remove(owner: ApiClient, group_id: bytes, epoch: int, keep: list[ApiClient]) -> None:
    """``owner`` commits a member set of itself and ``keep`` (the others are removed)."""
    await owner.commit(
        group_id,
        epoch,
        mls_data.commit(group_id, epoch),
        [owner.me.queue_id, *(c.me.queue_id for c in keep)],
        group_info=mls_data.group_info(group_id, epoch + 1),
    )


def padded(length: int) -> bytes:
    """Random bytes of the Padmé size for ``length`` (as a client's blob is)."""
    return os.urandom(padme(length))


def access_pair() -> tuple[bytes, bytes]:
    """A capability and its SHA-256."""
    access = os.urandom(32)
    return access, hashlib.sha256(access).digest()


def access_header(access: bytes | str | None, token: bytes | None = None) -> dict[str, str]:
    """The capability header, and the group token header if ``token`` is given."""
    headers = {} if token is None else {HEADER_GROUP_TOKEN: b64encode(token)}
    if access is not None:
        headers[HEADER_BLOB_ACCESS] = access if isinstance(access, str) else b64encode(access)
    return headers


def code(response: httpx.Response) -> str:
    value: str = response.json()["error"]["code"]
    return value


async def create(
    client: ApiClient, group_id: bytes, size: int, access_hash: bytes, token: bytes | None = None
) -> httpx.Response:
    request = m.CreateBlobRequest(group_id, size, access_hash, token)
    return await client.raw("POST", r.BLOBS, request)


async def created(
    client: ApiClient, group_id: bytes, size: int, access_hash: bytes, token: bytes | None = None
) -> bytes:
    response = await create(client, group_id, size, access_hash, token)
    assert response.status_code == 200, response.json()
    return m.CreateBlobResponse.from_json(response.json()).blob_id


async def put(
    client: ApiClient,
    blob_id: bytes,
    offset: int | str,
    data: bytes,
    *,
    content_type: str | None = OCTET_STREAM,
    token: bytes | None = None,
) -> httpx.Response:
    target = f"{r.blob_path(r.BLOB, blob_id)}?offset={offset}"
    return await client.raw(
        "PUT", target, data, content_type=content_type, headers=access_header(None, token)
    )


async def get(
    client: ApiClient,
    blob_id: bytes,
    access: bytes | str | None,
    *,
    offset: int | None = None,
    length: int | None = None,
    token: bytes | None = None,
) -> httpx.Response:
    query = [f"{k}={v}" for k, v in (("offset", offset), ("length", length)) if v is not None]
    target = r.blob_path(r.BLOB, blob_id) + ("?" + "&".join(query) if query else "")
    return await client.raw("GET", target, headers=access_header(access, token))


async def status(
    client: ApiClient,
    blob_id: bytes,
    access: bytes | str | None = None,
    token: bytes | None = None,
) -> httpx.Response:
    return await client.raw(
        "GET", r.blob_path(r.BLOB_STATUS, blob_id), headers=access_header(access, token)
    )


async def fetched(
    client: ApiClient, blob_id: bytes, access: bytes | str | None, token: bytes | None = None
) -> httpx.Response:
    return await client.raw(
        "POST", r.blob_path(r.BLOB_FETCHED, blob_id), headers=access_header(access, token)
    )


async def delete(client: ApiClient, blob_id: bytes) -> httpx.Response:
    return await client.raw("DELETE", r.blob_path(r.BLOB, blob_id))


async def upload(
    client: ApiClient, group_id: bytes, data: bytes, *, part: int = 1 << 20
) -> tuple[bytes, bytes]:
    """Create and upload a whole blob; its ID and capability."""
    access, access_hash = access_pair()
    blob_id = await created(client, group_id, len(data), access_hash)
    for offset in range(0, len(data), part):
        response = await put(client, blob_id, offset, data[offset : offset + part])
        assert response.status_code == 200, response.json()
    return blob_id, access


async def download(
    client: ApiClient, blob_id: bytes, access: bytes, size: int, *, part: int
) -> bytes:
    """The whole blob of ``size`` bytes, ``part`` bytes at a time."""
    got = b""
    while len(got) < size:
        response = await get(client, blob_id, access, offset=len(got), length=part)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == OCTET_STREAM
        assert 0 < len(response.content) <= part
        got += response.content
    return got


def blob_file(server: TestServer, blob_id: bytes) -> Path:
    return server.state.blobs.path(blob_id)


def blob_dir(server: TestServer) -> dict[str, bytes]:
    """The blob directory: file name to contents."""
    directory = server.state.blobs.directory
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


async def store(server: TestServer) -> dict[str, Any]:
    """The blob rows, the recipients and the files: what an attack must not change."""
    return {
        "blobs": await rows(server, "blobs"),
        "blob_recipients": await rows(server, "blob_recipients"),
        "blob_fetchers": await rows(server, "blob_fetchers"),
        "files": blob_dir(server),
    }


async def recipients(server: TestServer, *clients: ApiClient) -> set[tuple[bytes, str]]:
    """``blob_fetchers`` as (blob ID, queue ID): each keyed hash matched, with the
    server's key, to one of ``clients``' queues (every row must match one)."""
    found = set()
    for blob_id, recipient in await rows(server, "blob_fetchers"):
        named = [
            c.me.queue_id
            for c in clients
            if server.state.blobs.recipient(blob_id, c.me.queue_id) == recipient
        ]
        assert len(named) == 1, "a recipient row that names none of the clients"
        found.add((blob_id, named[0]))
    return found
