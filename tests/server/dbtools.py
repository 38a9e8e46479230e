"""Reading the server's database directly, to check what it holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from messenger.api.padding import unpad
from messenger.server.at_rest import SealedColumn
from messenger.server.registration import new_id
from messenger.server.state import ServerState
from messenger.server.storage import StorageError, Tx, migrations

from .conftest import TestServer, make_config

TABLES = (
    "queues",
    "accounts",
    "clients",
    "payloads",
    "queue_entries",
    "mls_groups",
    "group_members",
    "key_packages",
    "invites",
    "used_challenges",
    "request_nonces",
    "idempotency_keys",
    "claim_evidence",
    "removed_clients",
    "links",
    "link_messages",
    "blobs",
    "blob_recipients",
    "blob_fetchers",
    "spare_queues",
    "maintenance",
    "rejoin_boxes",
    "schema_migrations",
)


def _normalise(value: Any) -> Any:
    return bytes(value) if isinstance(value, bytes | memoryview | bytearray) else value


async def rows(server: TestServer, table: str) -> list[tuple[Any, ...]]:
    assert table in TABLES

    async def op(tx: Tx) -> list[tuple[Any, ...]]:
        found = await tx.fetchall(f"SELECT * FROM {table}")
        return sorted((tuple(_normalise(v) for v in row) for row in found), key=repr)

    return await server.state.db.read(op)


async def count(server: TestServer, table: str) -> int:
    return len(await rows(server, table))


async def snapshot(
    server: TestServer, exclude: tuple[str, ...] = ("request_nonces",)
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but ``exclude``)."""
    return {t: await rows(server, t) for t in TABLES if t not in exclude}


def opened_payload(server: TestServer, data: bytes) -> bytes:
    """The message of a stored payload (sealed at rest, then padded), as the server reads it."""
    return unpad(opened_envelope(server, data))


def opened_envelope(server: TestServer, data: bytes) -> bytes:
    """The padded envelope inside a stored payload's seal."""
    return SealedColumn(server.state.keys.at_rest_key, "payloads.data").open(b"", bytes(data))


async def member_sets(server: TestServer) -> dict[bytes, list[str]]:
    """Every group's sealed member set as the box holds it (queues gone included)."""

    async def op(tx: Tx) -> dict[bytes, list[str]]:
        found = await tx.fetchall("SELECT group_id, members_box FROM mls_groups")
        return {bytes(g): server.state.member_sets.open(bytes(g), box) for g, box in found}

    return await server.state.db.read(op)


async def entries(server: TestServer) -> list[tuple[str, int, int]]:
    """Every queue entry as ``(queue, seq, payload ID)``, its sealed reference opened."""

    async def op(tx: Tx) -> list[tuple[str, int, int]]:
        found = await tx.fetchall("SELECT queue_id, seq, payload_ref FROM queue_entries")
        refs = server.state.payload_refs
        return sorted((str(q), int(s), refs.open(str(q), ref)) for q, s, ref in found)

    return await server.state.db.read(op)


async def holders(server: TestServer) -> dict[int, int]:
    """Every stored message's count of holders, opened: ``{payload ID: holders}``."""

    async def op(tx: Tx) -> dict[int, int]:
        found = await tx.fetchall("SELECT payload_id, holders_box, holders FROM payloads")
        refs = server.state.payload_refs
        return {int(p): refs.open_count(int(p), box, legacy) for p, box, legacy in found}

    return await server.state.db.read(op)


async def columns(server: TestServer, table: str) -> list[str]:
    async def op(tx: Tx) -> list[str]:
        if tx.dialect == "sqlite":
            found = await tx.fetchall(f"PRAGMA table_info({table})")
            return [str(r[1]) for r in found]
        found = await tx.fetchall(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema()",
            table,
        )
        return [str(r[0]) for r in found]

    return await server.state.db.read(op)


async def insert_client_before_11(
    tx: Tx, _links: object, client_id: str, account_id: str, signature_key: bytes
) -> str:
    """How a server before migration 11 stored a new client: its queue in the clear.

    A stand-in for ``messenger.server.registration._insert_client`` while a
    test runs a server on an older schema.
    """
    queue_id = new_id()
    await tx.execute("INSERT INTO queues (queue_id) VALUES (?)", queue_id)
    await tx.execute(
        "INSERT INTO clients (client_id, account_id, signature_key, queue_id) VALUES (?, ?, ?, ?)",
        client_id,
        account_id,
        signature_key,
        queue_id,
    )
    return queue_id


@contextlib.contextmanager
def schema_at(monkeypatch: pytest.MonkeyPatch, version: int) -> Iterator[None]:
    """Servers started inside migrate only up to ``version`` (an older server's schema)."""
    with monkeypatch.context() as patch:
        older = tuple(m for m in migrations.MIGRATIONS if m.version <= version)
        patch.setattr(migrations, "MIGRATIONS", older)
        patch.setattr(migrations, "LATEST_VERSION", version)
        yield


async def insert_group_row(server: TestServer, column: str, group_id: bytes, value: bytes) -> None:
    """A group at epoch 0 whose ``column`` holds ``value`` (a box sealed elsewhere, say)."""
    await server.state.db.transaction(
        lambda tx: tx.execute(
            f"INSERT INTO mls_groups (group_id, epoch, {column}) VALUES (?, 0, ?)",
            group_id,
            value,
        )
    )


async def assert_start_refused_with_another_key(database_url: str, tmp_path: Path) -> None:
    """A server with a new secret key file refuses this database when it starts."""
    state = ServerState(make_config(tmp_path / "data", database_url), run_sweeper=False)
    with pytest.raises(StorageError, match="another secret key file"):
        await state.start()


async def seq_base(server: TestServer, queue_id: str) -> int:
    """The number before a queue's next message: its entries so far are ``base - n + 1 .. base``.

    Each queue counts from a random origin (server migration 18), so tests
    number a queue's messages from this, not from 1.
    """
    found = await server.state.db.read(
        lambda tx: tx.fetchone("SELECT next_seq FROM queues WHERE queue_id = ?", queue_id)
    )
    assert found is not None, "the queue exists"
    return int(found[0]) - 1
