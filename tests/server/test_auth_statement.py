"""The nonce of a signed request in one statement (PostgreSQL) or one transaction (SQLite).

:class:`~messenger.server.authentication.RequestAuthenticator` stores a
request's nonce and reads the client's device token hash in one autocommit
statement on PostgreSQL (``_PG_REMEMBER``) and in one writer transaction on
SQLite; the token is compared in Python. These tests hold both paths to the
same answers: a nonce is accepted once (also when the copies of a request
race, on one instance or on two), a request refused for its device token
keeps no nonce, a client whose row is gone is answered like an unknown one,
and the nonce commit skips the WAL flush without leaving the setting on the
pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_DEVICE_TOKEN, NONCE_BYTES
from messenger.server import authentication, create_app
from messenger.server.storage import Database, StorageError, Tx

from .client import ApiClient, Identity
from .conftest import TestServer, make_config, postgres_schema, serve
from .dbtools import count, snapshot

pytestmark = pytest.mark.anyio


def _record(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the write entry points of ``db`` called from now on."""
    calls: list[str] = []
    for name in ("statement", "transaction"):
        real = getattr(db, name)

        def wrapper(
            op: Callable[[Tx], Coroutine[Any, Any, Any]],
            real: Callable[..., Coroutine[Any, Any, Any]] = real,
            name: str = name,
        ) -> Coroutine[Any, Any, Any]:
            calls.append(name)
            return real(op)

        monkeypatch.setattr(db, name, wrapper)
    return calls


def _code(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    return str(response.json()["error"]["code"])


async def test_a_signed_request_writes_once(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await server.registered()
    await alice.key_package_count()  # the client's key is cached now
    calls = _record(server.state.db, monkeypatch)
    await alice.key_package_count()  # a route that only reads
    if server.state.db.dialect == "postgresql":
        assert calls == ["statement"]  # no BEGIN / COMMIT round trips
    else:
        assert calls == ["transaction"]


async def test_a_nonce_is_accepted_once(server: TestServer) -> None:
    alice = await server.registered()
    before = await count(server, "request_nonces")
    nonce = b64encode(os.urandom(NONCE_BYTES))
    headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"", nonce=nonce)
    assert (await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)).status_code == 200
    assert await count(server, "request_nonces") == before + 1
    state = await snapshot(server, exclude=())
    assert _code(await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)) == "auth_replayed"
    # The nonce is the client's, whatever request carries it.
    other = alice.sign("GET", r.QUEUE_MESSAGES, b"", nonce=nonce)
    assert _code(await server.http.get(r.QUEUE_MESSAGES, headers=other)) == "auth_replayed"
    assert await snapshot(server, exclude=()) == state


async def test_copies_of_a_request_sent_at_once_are_served_once(server: TestServer) -> None:
    alice = await server.registered()
    headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")
    responses = await asyncio.gather(
        *(server.http.get(r.KEY_PACKAGE_COUNT, headers=headers) for _ in range(8))
    )
    codes = sorted(
        "ok" if response.status_code == 200 else _code(response) for response in responses
    )
    assert codes == ["auth_replayed"] * 7 + ["ok"]


async def test_a_request_refused_for_its_device_token_keeps_no_nonce(
    server: TestServer,
) -> None:
    old = await server.registered()
    restored = old.copy()
    token = os.urandom(32)
    await restored.take_over(token)
    before = await snapshot(server, exclude=())
    for presented in (None, os.urandom(32)):
        old.device_token = presented
        headers = old.sign("GET", r.KEY_PACKAGE_COUNT, b"")
        assert _code(await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)) == (
            "device_replaced"
        )
        # A replay of a refused request is refused for its token first, as before.
        assert _code(await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)) == (
            "device_replaced"
        )
    assert await snapshot(server, exclude=()) == before
    await restored.key_package_count()  # the current copy is served


async def test_a_nonce_left_behind_by_a_refused_request_stays_single_use(
    server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await server.registered()
    restored = old.copy()
    token = os.urandom(32)
    await restored.take_over(token)
    await restored.key_package_count()
    db = server.state.db
    calls: list[str] = []
    real = db.statement

    async def the_delete_fails(op: Callable[[Tx], Coroutine[Any, Any, Any]]) -> Any:
        calls.append("statement")
        if len(calls) == 2:  # the removal of the refused request's nonce
            raise StorageError("the database went away")
        return await real(op)

    monkeypatch.setattr(db, "statement", the_delete_fails)
    nonces = await count(server, "request_nonces")
    headers = old.sign("GET", r.KEY_PACKAGE_COUNT, b"")
    assert _code(await server.http.get(r.KEY_PACKAGE_COUNT, headers=headers)) == "device_replaced"
    with_token = {**headers, HEADER_DEVICE_TOKEN: b64encode(token)}
    if db.dialect == "postgresql":
        # The statement stored the nonce before the token was compared, and
        # removing it failed: it stays, and the request is refused anyway.
        assert calls == ["statement", "statement"]
        assert await count(server, "request_nonces") == nonces + 1
        # Harmless: even with the right token the nonce is spent.
        response = await server.http.get(r.KEY_PACKAGE_COUNT, headers=with_token)
        assert _code(response) == "auth_replayed"
    else:
        # SQLite compares the token before it stores anything.
        assert calls == []
        assert await count(server, "request_nonces") == nonces
        response = await server.http.get(r.KEY_PACKAGE_COUNT, headers=with_token)
        assert response.status_code == 200


async def test_a_deleted_client_is_answered_like_an_unknown_one(server: TestServer) -> None:
    alice = await server.registered()
    await alice.key_package_count()  # this process caches alice's key
    stranger = ApiClient(
        server.http, Identity(Ed25519PrivateKey.generate(), "", b64encode(b"\x02" * 16), "")
    )
    unknown = await stranger.raw("GET", r.KEY_PACKAGE_COUNT)

    async def delete(tx: Tx) -> int:
        return await tx.execute("DELETE FROM accounts WHERE account_id = ?", alice.me.account_id)

    assert await server.state.db.transaction(delete) == 1
    before = await snapshot(server, exclude=())
    for method, target in (("GET", r.KEY_PACKAGE_COUNT), ("POST", r.CLIENT_TAKEOVER)):
        body = {"device_token": b64encode(os.urandom(32))} if method == "POST" else None
        deleted = await alice.raw(method, target, body)
        assert _code(deleted) == "auth_invalid"
        assert deleted.json() == unknown.json()
    assert await snapshot(server, exclude=()) == before  # not even a nonce


# -- PostgreSQL only: the statement itself ------------------------------------


@pytest.fixture
async def pg_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    async with postgres_schema() as dsn:
        app = create_app(make_config(tmp_path / "data", dsn), run_sweeper=False)
        async with serve(app, "asgi", time.time) as server:
            yield server


async def test_the_statement_stores_a_nonce_only_for_an_existing_client(
    pg_server: TestServer,
) -> None:
    alice = await pg_server.registered()
    digest = os.urandom(32)

    def remember(client_id: str) -> Callable[[Tx], Coroutine[Any, Any, tuple[Any, ...]]]:
        async def op(tx: Tx) -> tuple[Any, ...]:
            row = await tx.fetchone(authentication._PG_REMEMBER, client_id, digest, 1)
            assert row is not None
            return tuple(row)

        return op

    db = pg_server.state.db
    before = await count(pg_server, "request_nonces")
    assert await db.statement(remember(b64encode(b"\x03" * 16))) == (False, None, 0, "off")
    assert await count(pg_server, "request_nonces") == before
    assert await db.statement(remember(alice.me.client_id)) == (True, None, 1, "off")
    assert await db.statement(remember(alice.me.client_id)) == (True, None, 0, "off")
    assert await count(pg_server, "request_nonces") == before + 1


async def test_the_nonce_commit_is_asynchronous_for_itself_only(pg_server: TestServer) -> None:
    alice = await pg_server.registered()

    async def remember_then_show(tx: Tx) -> tuple[str, str]:
        row = await tx.fetchone(authentication._PG_REMEMBER, alice.me.client_id, os.urandom(32), 1)
        assert row is not None
        after = await tx.fetchone("SHOW synchronous_commit")
        assert after is not None
        return str(row[3]), str(after[0])

    # Off for the statement's own transaction (set_config(..., true) is
    # SET LOCAL), as the nonce transaction was before; back on for whatever
    # the connection runs next.
    assert await pg_server.state.db.statement(remember_then_show) == ("off", "on")


@pytest.fixture
async def pg_pair(tmp_path: Path) -> AsyncIterator[tuple[TestServer, TestServer]]:
    """Two server instances on one PostgreSQL schema (as two processes)."""
    async with postgres_schema() as dsn, contextlib.AsyncExitStack() as stack:
        servers = []
        for _ in range(2):
            app = create_app(make_config(tmp_path / "shared", dsn), run_sweeper=False)
            servers.append(await stack.enter_async_context(serve(app, "uvicorn", time.time)))
        yield servers[0], servers[1]


async def test_copies_of_a_request_raced_to_two_instances_are_served_once(
    pg_pair: tuple[TestServer, TestServer],
) -> None:
    a, b = pg_pair
    alice = await a.registered()
    for _ in range(5):
        headers = alice.sign("GET", r.KEY_PACKAGE_COUNT, b"")
        responses = await asyncio.gather(
            *(s.http.get(r.KEY_PACKAGE_COUNT, headers=headers) for s in (a, b, a, b))
        )
        codes = sorted("ok" if x.status_code == 200 else _code(x) for x in responses)
        assert codes == ["auth_replayed"] * 3 + ["ok"]
