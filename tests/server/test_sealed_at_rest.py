"""Client queues and GroupInfos sealed at rest (server migration 11, docs/metadata.md §1-2).

A copy of the database without the secret key file must not join a client
(or its account) to its queue, nor show a GroupInfo, whose ratchet tree
names every member. These tests read every table as such a thief would,
check how new clients get their queues (spares, not made in their own
transaction), that a sealed value is bound to its row, and that migration
11 keeps every row of a database from before and seals it when the server
starts, on SQLite (a table rebuild with foreign keys off) and PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from messenger.api.padding import pad
from messenger.server import registration
from messenger.server.at_rest import SEALED_OVERHEAD, SealedColumn
from messenger.server.queue_links import SPARE_BATCH, SPARE_LOW, QueueLinks
from messenger.server.registration import new_id
from messenger.server.state import ServerState
from messenger.server.storage import StorageError, Tx, migrations

from . import mls_data
from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer, make_config
from .dbtools import TABLES, columns, insert_client_before_11, rows

pytestmark = pytest.mark.anyio

GID = b"G" * 32
OTHER_GID = b"H" * 32


def _texts(value: Any) -> list[str]:
    """How a stored value could show an ID: as text, or its bytes in hex."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes | memoryview | bytearray):
        raw = bytes(value)
        return [raw.hex(), raw.decode("latin-1")]
    return []


async def _every_row(server: TestServer) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for table in TABLES:
        names = await columns(server, table)
        index = {n: i for i, n in enumerate(await columns(server, table))}
        found[table] = [{n: row[index[n]] for n in names} for row in await rows(server, table)]
    return found


async def test_a_copy_of_the_database_does_not_join_a_client_to_its_queue(
    server: TestServer,
) -> None:
    alice = await server.registered()
    bob = await server.registered()
    bob_laptop = await bob.add_client()
    carol = await server.registered()
    for member in (bob, bob_laptop, carol):
        await member.upload_key_packages([member.key_package()])
    await alice.start_group(GID, bob, bob_laptop, carol)
    # A real GroupInfo, whose ratchet tree carries Alice's credential (her
    # account and client IDs), for a group of hers.
    assert alice.me.credential is not None
    real = mls_data.mls_group(alice.me.credential, alice.me.key, OTHER_GID)
    info = real.group_info()
    assert alice.me.client_id.encode() in info and alice.me.account_id.encode() in info
    await alice.create_group(OTHER_GID)
    await alice.put_group_info(OTHER_GID, 0, info)
    assert (await alice.group_info(OTHER_GID)).group_info == info
    members = (alice, bob, bob_laptop, carol)
    queues = {c.me.queue_id for c in members}
    people = {c.me.client_id for c in members} | {c.me.account_id for c in members}

    tables = await _every_row(server)
    # No row names both a client or account and a member queue, in any form.
    for table, found in tables.items():
        for row in found:
            shown = [t for v in row.values() for t in _texts(v)]
            names_someone = any(p in t for p in people for t in shown)
            names_a_queue = any(q in t or q.encode().hex() in t for q in queues for t in shown)
            assert not (names_someone and names_a_queue), f"{table} joins someone to a queue"
    # The clients table holds the queue only sealed: not as text, not in hex.
    assert "queue_id" not in tables["clients"][0]
    for row in tables["clients"]:
        assert row["legacy_queue_id"] is None
        assert len(bytes(row["queue_box"])) == SEALED_OVERHEAD + len(alice.me.queue_id)
    # No stored GroupInfo shows a member's credential (the tree names them all).
    (group,) = [g for g in tables["mls_groups"] if bytes(g["group_id"]) == OTHER_GID]
    stored = bytes(group["group_info"])
    assert group["group_info_sealed"] == 1
    assert len(stored) == SEALED_OVERHEAD + len(pad(info))
    for person in people:
        assert person.encode() not in stored
    # KeyPackages are sealed too: each leaf names its client, account and queue.
    assert tables["key_packages"], "KeyPackages are kept"
    for row in tables["key_packages"]:
        assert bytes(row["data"])[:1] == b"\x01" and b"\x00\x01\x00\x05" not in bytes(row["data"])
    # The queues of the members were spares, made in batches before them: the
    # pool still holds others, none of them a member's.
    spares = {str(r["queue_id"]) for r in tables["spare_queues"]}
    assert len(spares) >= SPARE_LOW - len(members) and spares.isdisjoint(queues)
    assert queues <= {str(r["queue_id"]) for r in tables["queues"]}


async def test_a_new_client_takes_a_spare_queue_made_before_it(server: TestServer) -> None:
    first = await server.registered()
    made = {str(r[0]) for r in await rows(server, "queues")}
    assert len(made) == SPARE_BATCH, "the first registration made one batch of spares"
    assert first.me.queue_id in made
    spares = {str(r[0]) for r in await rows(server, "spare_queues")}
    assert spares == made - {first.me.queue_id}
    # Each later client takes one of the spares that existed before it came,
    # until the pool is low; then one new batch is made.
    taken = {first.me.queue_id}
    while len(spares) >= SPARE_LOW:
        before = spares
        client = await server.registered()
        assert client.me.queue_id in before
        taken.add(client.me.queue_id)
        spares = {str(r[0]) for r in await rows(server, "spare_queues")}
        assert spares == before - {client.me.queue_id}
    low = spares
    refilled = await server.registered()
    after = {str(r[0]) for r in await rows(server, "spare_queues")}
    assert len(after) == len(low) + SPARE_BATCH - 1
    assert refilled.me.queue_id not in after and refilled.me.queue_id not in taken
    assert len({str(r[0]) for r in await rows(server, "queues")}) == 2 * SPARE_BATCH
    # The queue a client was given is the one its signed fetch reads.
    await refilled.upload_key_packages([refilled.key_package()])
    await first.start_group(GID, refilled)
    (welcome,) = (await refilled.fetch()).messages
    assert welcome.data[:4] == b"\x00\x01\x00\x03"  # MLSMessage(Welcome), RFC 9420 §6


def test_a_sealed_value_opens_only_in_its_own_row_column_and_key() -> None:
    key = os.urandom(32)
    column = SealedColumn(key, "clients.queue_box")
    sealed = column.seal(b"client-a", b"queue-1")
    assert len(sealed) == SEALED_OVERHEAD + len(b"queue-1")
    assert column.open(b"client-a", sealed) == b"queue-1"
    assert column.seal(b"client-a", b"queue-1") != sealed, "a fresh nonce each time"
    refused = [
        lambda: column.open(b"client-b", sealed),  # moved to another row
        lambda: SealedColumn(key, "mls_groups.group_info").open(b"client-a", sealed),
        lambda: SealedColumn(os.urandom(32), "clients.queue_box").open(b"client-a", sealed),
        lambda: column.open(b"client-a", sealed[:-1] + bytes([sealed[-1] ^ 1])),
        lambda: column.open(b"client-a", sealed[:10]),
        lambda: column.open(b"client-a", b"\x02" + sealed[1:]),
    ]
    for attempt in refused:
        with pytest.raises(StorageError):
            attempt()
    links = QueueLinks(key)
    assert links.queue("client-a", links.seal("client-a", "Q1"), None) == "Q1"
    assert links.queue("client-a", None, "legacy") == "legacy"
    with pytest.raises(StorageError):
        links.queue("client-b", links.seal("client-a", "Q1"), None)
    # A row that names no queue: the client gave its queue a key of its own
    # (server migration 22, tests/server/test_queue_keys.py).
    assert links.queue("client-a", None, None) is None


async def test_migration_11_keeps_every_row_and_seals_it_when_the_server_starts(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database of version 10 with clients, KeyPackages, a link mailbox, a
    group and its GroupInfo: after the upgrade nothing is lost (no cascade from
    the rebuilt clients table), queues and GroupInfos are sealed, and the
    clients work as before."""
    clock = FakeClock(start=1_900_000_000.0)
    older = tuple(x for x in migrations.MIGRATIONS if x.version <= 10)
    info = mls_data.group_info(GID, 0)
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", older)
        patch.setattr(migrations, "LATEST_VERSION", 10)
        patch.setattr(registration, "_insert_client", insert_client_before_11)
        async with server_factory(clock=clock) as old:
            alice = await old.registered()
            bob = await old.registered()
            stored_info = pad(info)
            alice_kp, bob_kp = alice.key_package(), bob.key_package()

            async def legacy_rows(tx: Tx) -> None:
                await tx.execute(
                    "INSERT INTO mls_groups (group_id, epoch, group_info, group_info_epoch) "
                    "VALUES (?, 0, ?, 0)",
                    GID,
                    stored_info,
                )
                for member in (alice, bob):
                    await tx.execute(
                        "INSERT INTO group_members (group_id, queue_id) VALUES (?, ?)",
                        GID,
                        member.me.queue_id,
                    )
                await tx.executemany(
                    "INSERT INTO key_packages (client_id, last_resort, data, cipher_suite) "
                    "VALUES (?, ?, ?, ?)",
                    [
                        (alice.me.client_id, 0, alice_kp, mls_data.SUITE_ID),
                        (bob.me.client_id, 1, bob_kp, mls_data.SUITE_ID),
                    ],
                )
                await tx.execute(
                    "INSERT INTO links (link_id, creator_id, expires_at, max_expires_at, "
                    "total_bytes, to_creator_count, next_seq_new, next_seq_creator) "
                    "VALUES (?, ?, ?, ?, 0, 0, 1, 1)",
                    b"L" * 16,
                    alice.me.client_id,
                    4_102_444_800_000,
                    4_102_444_800_000,
                )

            await old.state.db.transaction(legacy_rows)
            # Each table's columns of then: later migrations add some (NULL or their default).
            old_columns = {t: await columns(old, t) for t in ("links", "accounts")}
            before = {t: await rows(old, t) for t in old_columns}
            kp_names = await columns(old, "key_packages")
            kps_before = [
                dict(zip(kp_names, r, strict=True)) for r in await rows(old, "key_packages")
            ]
    async with server_factory(clock=clock) as new:
        kept = {}
        for table, then in old_columns.items():
            now = await columns(new, table)
            kept[table] = sorted(
                (tuple(row[now.index(c)] for c in then) for row in await rows(new, table)),
                key=repr,
            )
        assert kept == before, "no row lost"
        # KeyPackages are kept, sealed (their leaves name client and queue).
        kp_names = await columns(new, "key_packages")
        kps_after = [dict(zip(kp_names, r, strict=True)) for r in await rows(new, "key_packages")]
        sealed_kps = SealedColumn(new.state.keys.at_rest_key, "key_packages.data")
        assert sorted(
            (r["kp_id"], r["client_id"], sealed_kps.open(r["client_id"].encode(), r["data"]))
            for r in kps_after
        ) == sorted((r["kp_id"], r["client_id"], r["data"]) for r in kps_before)
        assert {alice_kp, bob_kp} == {bytes(r["data"]) for r in kps_before}
        names = await columns(new, "clients")
        found = [dict(zip(names, row, strict=True)) for row in await rows(new, "clients")]
        links = QueueLinks(new.state.keys.at_rest_key)
        assert {
            str(r["client_id"]): links.queue(str(r["client_id"]), r["queue_box"], None)
            for r in found
        } == {alice.me.client_id: alice.me.queue_id, bob.me.client_id: bob.me.queue_id}
        assert all(r["legacy_queue_id"] is None for r in found)
        (group,) = await rows(new, "mls_groups")
        group_names = await columns(new, "mls_groups")
        group_row = dict(zip(group_names, group, strict=True))
        assert group_row["group_info_sealed"] == 1
        assert stored_info not in bytes(group_row["group_info"])
        assert (
            SealedColumn(new.state.keys.at_rest_key, "mls_groups.group_info").open(
                GID, bytes(group_row["group_info"])
            )
            == stored_info
        )
        # The clients work as before: signed requests find their queues.
        alice_now = ApiClient(new.http, alice.identity, clock)
        bob_now = ApiClient(new.http, bob.identity, clock)
        assert (await alice_now.key_package_count()).available == 1
        assert (await bob_now.key_package_count()).last_resort
        assert (await bob_now.group_info(GID)).group_info == info
        assert (await alice_now.fetch()).messages == ()


async def test_a_server_with_another_secret_key_file_refuses_to_start(
    server_factory: ServerFactory, database_url: str, tmp_path: Path
) -> None:
    async with server_factory() as first:
        client = await first.registered()
    wrong = ServerState(
        make_config(tmp_path / "data", database_url, secret_key_file=str(tmp_path / "other.key")),
        run_sweeper=False,
    )
    with pytest.raises(StorageError, match="another secret key file"):
        await wrong.start()
    # With its own key it starts, and the client's queue still opens.
    async with server_factory() as again:
        assert (await ApiClient(again.http, client.identity).fetch()).messages == ()


async def test_migration_11_seals_a_large_server_in_batches(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows than one batch of each kind (500 clients, 500 KeyPackages, 100
    GroupInfos a statement): every one is sealed, and each opens to what it was."""
    older = tuple(x for x in migrations.MIGRATIONS if x.version <= 10)
    clients = [(new_id(), new_id(), new_id()) for _ in range(620)]  # account, client, queue
    key_packages = {c: b"\x00\x01\x00\x05" + os.urandom(40) for _, c, _ in clients}
    infos = {os.urandom(32): pad(b"\x00\x01\x00\x04" + os.urandom(300)) for _ in range(130)}

    async def legacy(tx: Tx) -> None:
        await tx.executemany(
            "INSERT INTO accounts (account_id) VALUES (?)", [(a,) for a, _, _ in clients]
        )
        await tx.executemany(
            "INSERT INTO queues (queue_id) VALUES (?)", [(q,) for _, _, q in clients]
        )
        await tx.executemany(
            "INSERT INTO clients (client_id, account_id, signature_key, queue_id) "
            "VALUES (?, ?, ?, ?)",
            [(c, a, os.urandom(32), q) for a, c, q in clients],
        )
        await tx.executemany(
            "INSERT INTO key_packages (client_id, last_resort, data, cipher_suite) "
            "VALUES (?, 1, ?, 1)",
            list(key_packages.items()),
        )
        await tx.executemany(
            "INSERT INTO mls_groups (group_id, epoch, group_info, group_info_epoch) "
            "VALUES (?, 0, ?, 0)",
            list(infos.items()),
        )

    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", older)
        patch.setattr(migrations, "LATEST_VERSION", 10)
        async with server_factory() as old:
            await old.state.db.transaction(legacy)
    async with server_factory() as new:
        key = new.state.keys.at_rest_key
        links = QueueLinks(key)
        names = await columns(new, "clients")
        found = [dict(zip(names, r, strict=True)) for r in await rows(new, "clients")]
        assert {
            str(r["client_id"]): links.queue(str(r["client_id"]), r["queue_box"], None)
            for r in found
        } == {c: q for _, c, q in clients}
        assert all(r["legacy_queue_id"] is None for r in found)
        sealed_kps = SealedColumn(key, "key_packages.data")
        kp_names = await columns(new, "key_packages")
        kps = [dict(zip(kp_names, r, strict=True)) for r in await rows(new, "key_packages")]
        assert {
            r["client_id"]: sealed_kps.open(r["client_id"].encode(), r["data"]) for r in kps
        } == key_packages
        sealed_infos = SealedColumn(key, "mls_groups.group_info")
        group_names = await columns(new, "mls_groups")
        groups = [dict(zip(group_names, r, strict=True)) for r in await rows(new, "mls_groups")]
        assert all(g["group_info_sealed"] == 1 for g in groups)
        assert {
            bytes(g["group_id"]): sealed_infos.open(bytes(g["group_id"]), bytes(g["group_info"]))
            for g in groups
        } == infos
