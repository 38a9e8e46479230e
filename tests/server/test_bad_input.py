"""Bad input gets a clear 4xx with a typed error code and leaves state intact."""

from __future__ import annotations

import pytest

from messenger.api import routes as r
from messenger.api.errors import HTTP_STATUS, ErrorCode
from messenger.api.padding import pad

from . import mls_data
from .client import ApiClient, send_token
from .conftest import ServerFactory, TestServer
from .dbtools import snapshot

pytestmark = pytest.mark.anyio

GID = b"bad-input-group"


async def _setup(server: TestServer) -> tuple[ApiClient, ApiClient]:
    alice = await server.registered()
    bob = await server.registered()
    await alice.create_group(GID)
    await alice.commit(
        GID,
        0,
        mls_data.commit(GID, 0),
        [alice.me.queue_id, bob.me.queue_id],
        welcome=await alice.welcome_for(bob),
        welcome_to=[bob.me.queue_id],
    )
    return alice, bob


def _assert_error(response: object, code: ErrorCode, field: str | None = None) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert status == HTTP_STATUS[code], body
    assert body["error"]["code"] == code.value
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["details"]["field"] == field


async def test_malformed_json_and_wrong_fields(server: TestServer) -> None:
    alice, _ = await _setup(server)
    path = r.group_path(r.GROUP_COMMITS, GID)
    before = await snapshot(server)
    commit = mls_data.b64(pad(mls_data.commit(GID, 1))).encode()  # a well-formed envelope
    cases: list[tuple[bytes, ErrorCode, str | None]] = [
        (b"{", ErrorCode.MALFORMED_JSON, None),
        (b"", ErrorCode.MALFORMED_JSON, None),
        (b'{"epoch": 1, "epoch": 2}', ErrorCode.MALFORMED_JSON, None),
        (b"\xff\xfe\x00", ErrorCode.MALFORMED_JSON, None),
        (b"[" * 50_000 + b"]" * 50_000, ErrorCode.MALFORMED_JSON, None),
        (b"[]", ErrorCode.INVALID_FIELD, "body"),
        (b'{"epoch": "1", "commit": "AA", "members": []}', ErrorCode.INVALID_FIELD, "epoch"),
        (b'{"epoch": 1, "commit": "A=", "members": []}', ErrorCode.INVALID_FIELD, "commit"),
        (b'{"epoch": 1, "commit": "AA", "members": ["x"]}', ErrorCode.INVALID_FIELD, "commit"),
        (
            b'{"epoch": 1, "commit": "' + commit + b'", "members": []}',
            ErrorCode.INVALID_FIELD,
            "members",
        ),
        (
            b'{"epoch": 1, "commit": "' + commit + b'", "members": ["x"]}',
            ErrorCode.INVALID_FIELD,
            "members[0]",
        ),
        (
            b'{"epoch": 1, "commit": "'
            + commit
            + b'", "members": ["'
            + b"A" * 22
            + b'"], "admin": true}',
            ErrorCode.INVALID_FIELD,
            "admin",
        ),
    ]
    for body, code, field in cases:
        _assert_error(await alice.raw("POST", path, body), code, field)
    assert await snapshot(server) == before


async def test_oversized_bodies(server_factory: ServerFactory) -> None:
    async with server_factory(max_body_bytes=4096) as server:
        alice, _ = await _setup(server)
        before = await snapshot(server)
        big = mls_data.application(GID, 1, b"x" * 8000)
        path = r.group_path(r.GROUP_MESSAGES, GID)
        from messenger.api.models import SendRequest

        _assert_error(await alice.raw("POST", path, SendRequest(big)), ErrorCode.BODY_TOO_LARGE)
        _assert_error(
            await alice.raw("POST", path, b"x" * 10_000, signed=False), ErrorCode.BODY_TOO_LARGE
        )

        async def chunks():
            for _ in range(10):
                yield b"x" * 1000

        response = await alice.http.post(
            path, content=chunks(), headers={"content-type": "application/json"}
        )
        _assert_error(response, ErrorCode.BODY_TOO_LARGE)
        assert await snapshot(server) == before


async def test_content_type_routes_and_methods(server: TestServer) -> None:
    alice, _ = await _setup(server)
    before = await snapshot(server)
    response = await alice.raw("POST", r.ACK, b'{"up_to": 1}', content_type="text/plain")
    _assert_error(response, ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    _assert_error(await alice.http.get("/v1/nothing-here"), ErrorCode.NOT_FOUND)
    _assert_error(await alice.http.delete(r.REGISTER), ErrorCode.METHOD_NOT_ALLOWED)
    bad_group = r.GROUP_MESSAGES.replace("{group_id}", "not+base64")
    response = await alice.raw(
        "POST", bad_group, alice.sealed(GID, mls_data.application(GID, 1, b"x")), signed=False
    )
    _assert_error(response, ErrorCode.INVALID_FIELD, "group_id")
    assert await snapshot(server) == before


async def test_fetch_parameters(server: TestServer) -> None:
    alice, _ = await _setup(server)
    for query, field in (
        ("?after=-1", "after"),
        ("?after=abc", "after"),
        ("?limit=0", "limit"),
        ("?limit=100000", "limit"),
        ("?wait=3600", "wait"),
    ):
        response = await alice.raw("GET", r.QUEUE_MESSAGES + query)
        _assert_error(response, ErrorCode.INVALID_FIELD, field)


def _sealed(message: bytes, token: bytes) -> dict[str, str]:
    """A send's body as a client writes it: the padded message and the token."""
    return {"message": mls_data.b64(pad(message)), "token": mls_data.b64(token)}


async def test_unknown_groups_and_wrong_epochs(server: TestServer) -> None:
    alice, bob = await _setup(server)
    before = await snapshot(server)
    current = send_token(GID, 1)
    response = await alice.raw(
        "POST",
        r.group_path(r.GROUP_MESSAGES, b"unknown"),
        _sealed(mls_data.application(b"unknown", 0, b"x"), current),
        signed=False,
    )
    _assert_error(response, ErrorCode.UNKNOWN_GROUP)
    # With the current epoch's token, a message of another epoch is stale ...
    for epoch in (0, 2, 2**63):
        response = await bob.raw(
            "POST",
            r.group_path(r.GROUP_MESSAGES, GID),
            _sealed(mls_data.application(GID, epoch, b"x"), current),
            signed=False,
        )
        _assert_error(response, ErrorCode.STALE_EPOCH)
        assert response.json()["error"]["details"]["current_epoch"] == 1
    # ... and with another epoch's token the group is not found.
    for epoch in (0, 2):
        response = await alice.raw(
            "POST",
            r.group_path(r.GROUP_MESSAGES, GID),
            _sealed(mls_data.application(GID, epoch, b"x"), send_token(GID, epoch)),
            signed=False,
        )
        _assert_error(response, ErrorCode.UNKNOWN_GROUP)
    response = await bob.raw(
        "POST",
        r.group_path(r.GROUP_MESSAGES, GID),
        _sealed(b"\x00\x01\x00\x09" + b"\x00" * 20, current),
        signed=False,
    )
    _assert_error(response, ErrorCode.INVALID_MESSAGE)
    assert await snapshot(server) == before
