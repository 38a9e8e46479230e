"""``Database.statement``: one statement, atomic and durable, on each backend.

PostgreSQL runs it in autocommit (no ``BEGIN``/``COMMIT`` round trips);
SQLite runs it as a transaction of the writer. Either way the row is
committed when the call returns and a failing statement leaves nothing.
"""

from __future__ import annotations

import os

import pytest

from messenger.server.storage import Tx, UniqueViolation
from messenger.server.storage.postgres import _PgTx
from messenger.server.storage.sqlite import _WriterTx

from .conftest import TestServer

pytestmark = pytest.mark.anyio


async def test_a_statement_commits_on_its_own(server: TestServer) -> None:
    db = server.state.db
    code = os.urandom(32)

    async def insert(tx: Tx) -> int:
        return await tx.execute(
            "INSERT INTO invites (code_hash, uses_left, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            code,
            3,
            None,
        )

    async def uses(tx: Tx) -> list[int]:
        rows = await tx.fetchall("SELECT uses_left FROM invites WHERE code_hash = ?", code)
        return [int(r[0]) for r in rows]

    assert await db.statement(insert) == 1
    assert await db.read(uses) == [3]  # committed: another connection sees it
    assert await db.statement(insert) == 0  # ON CONFLICT DO NOTHING

    async def duplicate(tx: Tx) -> int:
        return await tx.execute(
            "INSERT INTO invites (code_hash, uses_left, expires_at) "
            "SELECT code_hash, 9, NULL FROM invites WHERE code_hash = ?",
            code,
        )

    with pytest.raises(UniqueViolation):
        await db.statement(duplicate)
    assert await db.read(uses) == [3]


async def test_postgresql_runs_a_statement_outside_a_transaction_block(
    server: TestServer,
) -> None:
    db = server.state.db

    async def kind(tx: Tx) -> str:
        if isinstance(tx, _PgTx):
            return "in a block" if tx._conn.is_in_transaction() else "autocommit"
        return "writer" if isinstance(tx, _WriterTx) else "reader"

    if db.dialect == "postgresql":
        assert await db.statement(kind) == "autocommit"
        assert await db.transaction(kind) == "in a block"
    else:
        assert await db.statement(kind) == "writer"  # SQLite writes only on its writer
