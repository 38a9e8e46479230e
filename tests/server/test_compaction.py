"""After an upgrade that sealed rows from before, the database files keep no old copy.

Server migrations 10 to 15 sealed or moved values a copy of the database
must not show (docs/metadata.md §1, §2). Deleting a row or sealing a value
in place leaves the old bytes in the files: SQLite's free pages, PostgreSQL's
dead tuples. Migration 16 leaves a "compact" task that the server runs once
when it starts, after sealing (``ServerState._maintain``).
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import pytest

from messenger.server.storage import Tx
from messenger.server.storage.sqlite import SqliteDatabase

from . import mls_data
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import member_sets, rows, schema_at

pytestmark = pytest.mark.anyio


def _sqlite_files(server: TestServer) -> bytes:
    base = Path(server.state.config.effective_database_url.removeprefix("sqlite://"))
    return b"".join(p.read_bytes() for p in (base, Path(f"{base}-wal")) if p.exists())


async def _filenodes(server: TestServer) -> dict[str, int]:
    async def op(tx: Tx) -> dict[str, int]:
        found = await tx.fetchall(
            "SELECT relname, pg_relation_filenode(oid::regclass) FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = current_schema()::regnamespace"
        )
        return {str(name): int(node) for name, node in found}

    return await server.state.db.read(op)


async def test_an_upgraded_database_keeps_no_membership_in_its_files(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-12 database held memberships in the clear (group_members).
    After the upgrade they are sealed, and the files no longer hold them: on
    SQLite no (group, queue) record is left in free pages or the log; on
    PostgreSQL every table that held such values was written anew."""
    clock = FakeClock(start=1_900_000_000.0)
    groups: dict[bytes, list[str]] = {secrets.token_bytes(32): [] for _ in range(20)}
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    with schema_at(monkeypatch, 12):
        async with server_factory(clock=clock) as old:
            members = [(await old.registered()).me.queue_id for _ in range(3)]
            for group_id in groups:
                groups[group_id] = members

            async def legacy_rows(tx: Tx) -> None:
                await tx.executemany(
                    "INSERT INTO mls_groups (group_id, epoch) VALUES (?, 0)",
                    [(g,) for g in groups],
                )
                await tx.executemany(
                    "INSERT INTO group_members (group_id, queue_id) VALUES (?, ?)",
                    [(g, q) for g, qs in groups.items() for q in qs],
                )

            await old.state.db.transaction(legacy_rows)
            records = [g + q.encode() for g, qs in groups.items() for q in qs]
            if old.state.db.dialect == "sqlite":  # the control: in the clear before
                assert all(r in _sqlite_files(old) for r in records)
            else:
                before = await _filenodes(old)
    async with server_factory(clock=clock) as new:
        assert await rows(new, "group_members") == []
        assert await member_sets(new) == {g: sorted(qs) for g, qs in groups.items()}
        assert await rows(new, "maintenance") == []  # done, once
        if new.state.db.dialect == "sqlite":
            files = _sqlite_files(new)
            assert not any(r in files for r in records), "a membership left in the files"
        else:
            after = await _filenodes(new)
            for table in ("clients", "mls_groups", "group_members", "payloads", "queue_entries"):
                assert after[table] != before[table], f"{table} was not written anew"
    # The next start has nothing to do: the tables are not rewritten again.
    async with server_factory(clock=clock) as again:
        if again.state.db.dialect == "postgresql":
            assert await _filenodes(again) == after


async def test_a_new_database_has_nothing_to_compact(server: TestServer) -> None:
    await server.registered()
    assert await rows(server, "maintenance") == []


async def test_sqlite_overwrites_what_it_deletes(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "server.db")
    await db.connect()
    try:
        found = await db.transaction(lambda tx: tx.fetchone("PRAGMA secure_delete"))
    finally:
        await db.close()
    assert found is not None and int(found[0]) == 1


async def test_the_log_of_past_sends_is_emptied(server: TestServer) -> None:
    """SQLite's write-ahead log kept the pages of each send, so a copy of the
    files grouped the queues that got one message. The sweep empties it:
    afterwards the files hold no page that names two of those queues together."""
    if server.state.db.dialect != "sqlite":
        assert await server.state.db.empty_log() is False  # pg_wal is the cluster's
        return
    members = await server.group(b"L" * 32, 3)
    await members[0].send(b"L" * 32, mls_data.application(b"L" * 32, 1, b"hi"))
    base = Path(server.state.config.effective_database_url.removeprefix("sqlite://"))
    log = Path(f"{base}-wal")
    assert log.stat().st_size > 0
    queues = [m.me.queue_id.encode() for m in members]
    assert all(q in log.read_bytes() for q in queues)  # the control: the send is there
    # A reader in the middle of a transaction still needs the log: left for later.
    reader = sqlite3.connect(base)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM queue_entries").fetchone()
        assert await server.state.db.empty_log() is False
        reader.execute("COMMIT")
    finally:
        reader.close()
    assert await server.state.db.empty_log() is True
    assert log.stat().st_size == 0
    # The server goes on as before, and the database file has the entries.
    await members[1].send(b"L" * 32, mls_data.application(b"L" * 32, 1, b"again"))
    fetched = await members[2].fetch()
    assert len(fetched.messages) >= 2
