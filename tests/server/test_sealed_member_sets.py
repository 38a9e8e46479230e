"""Group member sets and stored messages sealed at rest (server migration 13).

A copy of the database shows no group next to a member queue: the member set
is one sealed box per group (``mls_groups.members_box``) and every stored
message is sealed (a PrivateMessage shows its group ID in the clear, RFC 9420
§6.3). docs/metadata.md §2; the end-to-end proof is
``tests/integration/test_metadata_proof.py``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.padding import pad
from messenger.server.at_rest import SEALED_OVERHEAD
from messenger.server.member_sets import MemberSets
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .client import ApiClient, send_token, send_token_hash
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import (
    assert_start_refused_with_another_key,
    columns,
    insert_group_row,
    member_sets,
    rows,
    schema_at,
)

pytestmark = pytest.mark.anyio

GID = b"M" * 32
OTHER_GID = b"N" * 32


def test_a_member_set_opens_only_for_its_own_group_and_key() -> None:
    key = os.urandom(32)
    sets = MemberSets(key)
    box = sets.seal(GID, ["q-b", "q-a", "q-b"])
    assert sets.open(GID, box) == ["q-a", "q-b"]  # sorted, once each
    assert b"q-a" not in box and len(box) == len(b"q-a\nq-b") + SEALED_OVERHEAD
    assert sets.open(GID, sets.seal(GID, [])) == []
    with pytest.raises(StorageError):  # copied into another group's row
        sets.open(OTHER_GID, box)
    with pytest.raises(StorageError):  # another server's key
        MemberSets(os.urandom(32)).open(GID, box)
    with pytest.raises(StorageError):
        sets.open(GID, None)
    with pytest.raises(ValueError):
        sets.seal(GID, ["q\nr"])


async def test_the_database_shows_no_group_next_to_a_member_queue(server: TestServer) -> None:
    alice, bob, carol = await server.group(GID, 3)
    sent = mls_data.application(GID, 1, b"hello")
    assert (await bob.send(GID, sent)).recipients == 3
    queues = {c.me.queue_id for c in (alice, bob, carol)}
    assert await rows(server, "group_members") == []
    for table in ("mls_groups", "payloads"):
        for row in await rows(server, table):
            raw = b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
            assert not any(q.encode() in raw for q in queues), table
    for row in await rows(server, "payloads"):
        assert GID not in row[1] and sent not in row[1]
    assert (await member_sets(server))[GID] == sorted(queues)
    # The running server reads them: a stranger is still no member.
    mallory = await server.registered()
    with pytest.raises(ApiError) as info:
        await mallory.send(GID, mls_data.application(GID, 1, b"x"), token=os.urandom(32))
    assert info.value.code is ErrorCode.UNKNOWN_GROUP
    assert [m.data for m in (await carol.fetch()).messages][-1] == sent


async def test_migrations_13_and_14_seal_every_membership_and_every_old_message(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-12 database with memberships in ``group_members`` (more groups
    than one batch) and messages stored before sealing, padded and bare (more
    than one batch): after the upgrade each group's box holds its members, the
    table is empty, every old message is sealed and fetched as it was sent, and
    the groups work."""
    clock = FakeClock(start=1_900_000_000.0)
    padded_old = mls_data.application(GID, 0, b"from before, padded")
    bare_old = mls_data.application(GID, 0, b"from before, bare")
    with schema_at(monkeypatch, 12):
        async with server_factory(clock=clock) as old:
            alice = await old.registered()
            bob = await old.registered()
            carol = await old.registered()
            everyone = [alice.me.queue_id, bob.me.queue_id, carol.me.queue_id]
            # 250 more groups (the batch is 200), each with a random pair.
            others = {
                secrets.token_bytes(32): sorted(set(secrets.SystemRandom().sample(everyone, 2)))
                for _ in range(250)
            }

            async def legacy_rows(tx: Tx) -> None:
                groups = {GID: everyone, **others}
                await tx.executemany(
                    "INSERT INTO mls_groups (group_id, epoch, send_token_hash) VALUES (?, 0, ?)",
                    [(g, send_token_hash(g, 0)) for g in groups],
                )
                await tx.executemany(
                    "INSERT INTO group_members (group_id, queue_id) VALUES (?, ?)",
                    [(g, q) for g, qs in groups.items() for q in qs],
                )
                # An empty group (its last member's device was removed).
                await tx.execute(
                    "INSERT INTO mls_groups (group_id, epoch) VALUES (?, 0)", OTHER_GID
                )
                # Alice's two, and more stored messages than one batch (500)
                # waiting for Bob, each queue numbered from 1 as before.
                waiting = {
                    alice.me.queue_id: [pad(padded_old), bare_old],
                    bob.me.queue_id: [
                        pad(mls_data.application(GID, 0, b"%d" % i)) for i in range(600)
                    ],
                }
                for queue_id, datas in waiting.items():
                    for seq, data in enumerate(datas, start=1):
                        found = await tx.fetchone(
                            "INSERT INTO payloads (data) VALUES (?) RETURNING payload_id", data
                        )
                        assert found is not None
                        await tx.execute(
                            "INSERT INTO queue_entries (queue_id, seq, payload_id, created_at) "
                            "VALUES (?, ?, ?, 0)",
                            queue_id,
                            seq,
                            int(found[0]),
                        )
                    await tx.execute(
                        "UPDATE queues SET next_seq = ? WHERE queue_id = ?",
                        len(datas) + 1,
                        queue_id,
                    )

            await old.state.db.transaction(legacy_rows)
            assert len(await rows(old, "group_members")) == 3 + 2 * len(others)
    async with server_factory(clock=clock) as new:
        assert await rows(new, "group_members") == []
        boxes = await member_sets(new)
        assert boxes == {GID: sorted(everyone), OTHER_GID: [], **others}
        alice_now = ApiClient(new.http, alice.identity, clock)
        carol_now = ApiClient(new.http, carol.identity, clock)
        # The messages stored before are fetched as they were sent.
        assert [m.data for m in (await alice_now.fetch()).messages] == [padded_old, bare_old]
        # The group works: a sealed send reaches the three members, stored sealed.
        fresh = mls_data.application(GID, 0, b"after the upgrade")
        sent = await carol_now.send(GID, fresh, token=send_token(GID, 0))
        assert sent.recipients == 3
        assert [m.data for m in (await alice_now.fetch(after=2)).messages] == [fresh]
        # Messages from before were sealed when the server started (migration 14).
        stored = await rows(new, "payloads")
        assert len(stored) == 2 + 600 + 1
        assert not any(GID in bytes(row[1]) for row in stored)
        sealed_index = (await columns(new, "payloads")).index("sealed")
        assert {row[sealed_index] for row in stored} == {1}
    # A second start finds nothing left to move or seal, and changes nothing.
    async with server_factory(clock=clock) as again:
        assert await member_sets(again) == boxes
        assert await rows(again, "payloads") == stored


class _OtherProcessFirst:
    """A transaction in which another starting process moves the rows first:
    between our reading which groups lack a box and reading their members."""

    def __init__(self, tx: Tx, sets: MemberSets, members: list[str]) -> None:
        self._tx = tx
        self._sets = sets
        self._members = members
        self.raced = False

    async def fetchall(self, sql: str, *args: object) -> list[Any]:
        if "FROM group_members" in sql and not self.raced:
            self.raced = True
            await self._tx.execute(
                "UPDATE mls_groups SET members_box = ? WHERE group_id = ?",
                self._sets.seal(GID, self._members),
                GID,
            )
            await self._tx.execute("DELETE FROM group_members WHERE group_id = ?", GID)
        return await self._tx.fetchall(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


async def test_a_box_another_process_made_first_is_not_overwritten(server: TestServer) -> None:
    """Two processes starting together both adopt the rows from before; the one
    that reads the members after the other deleted them must not seal an empty
    set over the other's box."""
    alice = await server.registered()
    bob = await server.registered()
    members = sorted([alice.me.queue_id, bob.me.queue_id])
    sets = server.state.member_sets

    async def legacy(tx: Tx) -> None:
        await tx.execute("INSERT INTO mls_groups (group_id, epoch) VALUES (?, 0)", GID)
        await tx.executemany(
            "INSERT INTO group_members (group_id, queue_id) VALUES (?, ?)",
            [(GID, q) for q in members],
        )

    await server.state.db.transaction(legacy)
    race: list[_OtherProcessFirst] = []

    async def adopt(tx: Tx) -> int:
        race.append(_OtherProcessFirst(tx, sets, members))
        return await sets.adopt_legacy(race[-1])  # type: ignore[arg-type]

    assert await server.state.db.transaction(adopt) == 1
    assert race[0].raced
    assert (await member_sets(server))[GID] == members


async def test_a_member_set_sealed_under_another_key_file_stops_the_start(
    server_factory: ServerFactory, database_url: str, tmp_path: Path
) -> None:
    """The start opens one box: a database whose member sets were sealed under
    another secret key file is refused then, not request by request."""
    async with server_factory() as first:
        foreign = MemberSets(os.urandom(32)).seal(GID, ["some-queue"])
        await insert_group_row(first, "members_box", GID, foreign)
    await assert_start_refused_with_another_key(database_url, tmp_path)
