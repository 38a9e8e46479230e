"""Queue entries refer to stored messages sealed (server migration 15).

A copy of the database must not show which pseudonymous queues hold the same
unread message: that would tell that they share a group (docs/metadata.md
§2). Each entry's reference is the payload's ID sealed to its queue with a
nonce of its own, and each payload counts its holders instead
(``messenger.server.payload_refs``).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from pathlib import Path

import pytest

from messenger.api.padding import pad
from messenger.server.at_rest import SealedColumn
from messenger.server.payload_refs import PayloadRefs
from messenger.server.storage import StorageError, Tx

from . import mls_data
from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import (
    assert_start_refused_with_another_key,
    columns,
    entries,
    holders,
    rows,
    schema_at,
)

pytestmark = pytest.mark.anyio

GID = b"R" * 32


def test_a_reference_opens_only_for_its_own_queue_and_key() -> None:
    key = os.urandom(32)
    refs = PayloadRefs(key)
    payload_id = refs.new_id()
    assert 0 < payload_id < 1 << 62
    one, two = refs.seal("queue-a", payload_id), refs.seal("queue-a", payload_id)
    assert one != two, "each entry's reference has a nonce of its own"
    assert refs.open("queue-a", one) == refs.open("queue-a", two) == payload_id
    with pytest.raises(StorageError):  # copied into another queue's entry
        refs.open("queue-b", one)
    with pytest.raises(StorageError):  # another server's key
        PayloadRefs(os.urandom(32)).open("queue-a", one)
    with pytest.raises(StorageError):  # an entry from before, not yet sealed
        refs.open("queue-a", None)
    with pytest.raises(StorageError):  # sealed right, but not an ID
        refs.open("queue-a", SealedColumn(key, "queue_entries.payload_ref").seal(b"queue-a", b"x"))


def test_a_count_opens_only_for_its_own_payload_and_key() -> None:
    key = os.urandom(32)
    refs = PayloadRefs(key)
    small, large = refs.seal_count(7, 2), refs.seal_count(8, 1000)
    assert len(small) == len(large), "every box has one size, whatever the count"
    assert refs.seal_count(7, 2) != small, "a fresh nonce each time"
    assert refs.open_count(7, small, 0) == 2 and refs.open_count(8, large, 0) == 1000
    assert refs.open_count(9, None, 5) == 5, "a row from before, not yet sealed"
    with pytest.raises(StorageError):  # copied onto another payload's row
        refs.open_count(8, small, 0)
    with pytest.raises(StorageError):  # another server's key
        PayloadRefs(os.urandom(32)).open_count(7, small, 0)
    with pytest.raises(StorageError):  # a reference is no count
        refs.open_count(7, refs.seal("queue-a", 7), 0)
    with pytest.raises(ValueError, match="out of range"):
        refs.seal_count(7, 0)


async def test_a_copy_does_not_show_how_many_queues_a_message_went_to(
    server: TestServer,
) -> None:
    pair = await server.group(GID, 2)
    four = await server.group(b"F" * 32, 4)
    await pair[1].send(GID, mls_data.application(GID, 1, b"to two"))
    await four[2].send(b"F" * 32, mls_data.application(b"F" * 32, 1, b"to four"))
    names = await columns(server, "payloads")
    stored = await rows(server, "payloads")
    assert {row[names.index("holders")] for row in stored} == {0}
    boxes = [bytes(row[names.index("holders_box")]) for row in stored]
    assert len({len(b) for b in boxes}) == 1, "the boxes of 1, 2 and 4 holders look alike"
    # The running server still counts them: the commits, the Welcomes, the messages.
    assert sorted((await holders(server)).values()) == [1, 1, 1, 2, 3, 4]
    for member in four:
        await member.ack(1 << 62)
    assert sorted((await holders(server)).values()) == [1, 1, 2]


async def test_queues_holding_one_message_share_no_value(server: TestServer) -> None:
    alice, bob, carol = await server.group(GID, 3)
    sent = mls_data.application(GID, 1, b"hello")
    assert (await bob.send(GID, sent)).recipients == 3
    names = await columns(server, "queue_entries")
    stored = await rows(server, "queue_entries")
    refs = [row[names.index("payload_ref")] for row in stored]
    assert len(set(refs)) == len(refs), "no two entries share a reference"
    assert {row[names.index("legacy_payload")] for row in stored} == {None}
    # The server still finds the message from each queue, and counts its holders.
    held = await entries(server)
    (message_id,) = {p for q, seq, p in held if seq == max(s for _, s, _ in held)}
    assert {q for q, _, p in held if p == message_id} == {
        c.me.queue_id for c in (alice, bob, carol)
    }
    assert (await holders(server))[message_id] == 3
    for member in (alice, bob, carol):
        assert (await member.fetch()).messages[-1].data == sent
    if server.state.db.dialect == "sqlite":  # rows lie in (queue, seq) order: no rowid
        found = await server.state.db.read(
            lambda tx: tx.fetchone(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'queue_entries'"
            )
        )
        assert found is not None and "WITHOUT ROWID" in str(found[0]).upper()


async def test_a_message_is_dropped_once_its_last_holder_acks(server: TestServer) -> None:
    alice, bob, carol = await server.group(GID, 3)
    sent = mls_data.application(GID, 1, b"hello")
    await carol.send(GID, sent)
    # Alice's second entry (after the commit that made the group).
    message_id = max((s, p) for q, s, p in await entries(server) if q == alice.me.queue_id)[1]
    for member, left in ((alice, 2), (bob, 1)):
        last = (await member.fetch()).messages[-1].seq
        await member.ack(last)
        assert (await holders(server))[message_id] == left
        assert (await carol.fetch()).messages[-1].data == sent
    await carol.ack((await carol.fetch()).messages[-1].seq)
    assert message_id not in await holders(server)
    # Every count matches the entries left (the Welcome waits for Bob and Carol).
    assert await holders(server) == Counter(p for _q, _s, p in await entries(server))


async def test_members_acking_together_drop_every_message(server: TestServer) -> None:
    """Acks of one group's members meet on the same counts of holders: on
    PostgreSQL they lock the rows in one order, so none deadlocks or fails."""
    members = await server.group(GID, 8)
    for i in range(40):
        await members[i % 8].send(GID, mls_data.application(GID, 1, b"m%d" % i))
    assert len(await holders(server)) == 2 + 40  # the commit, the Welcome, the messages
    deleted = await asyncio.gather(*(member.ack(1 << 62) for member in members))
    assert sum(d.deleted for d in deleted) == 1 + 7 + 8 * 40
    assert await holders(server) == {} and await entries(server) == []


async def test_retention_drops_messages_with_their_entries(server_factory: ServerFactory) -> None:
    clock = FakeClock(start=1_900_000_000.0)
    async with server_factory(clock=clock) as server:
        alice = await server.registered()
        bob = await server.registered()
        await alice.start_group(GID, bob)
        await bob.send(GID, mls_data.application(GID, 1, b"unread"))
        assert await holders(server) and await entries(server)
        clock.advance(server.state.config.retention_seconds + 3600)
        result = await server.state.delivery.sweep()
        # The commit (to Alice), the Welcome (to Bob), the message (to both).
        assert result.payloads == 3 and result.expired == 4
        assert await holders(server) == {} and await entries(server) == []


async def test_migrations_15_and_18_seal_every_reference_and_count(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-14 database whose entries name their payloads in the clear
    (more than one batch of entries and of payloads, and a payload no entry
    holds): after the upgrade each entry's reference is sealed, each payload
    counts its holders in a sealed box (the plain column 0), the payload
    nobody holds is gone, messages are fetched as they were sent, acks drop
    each after its last holder, and a second start changes nothing."""
    clock = FakeClock(start=1_900_000_000.0)
    messages = [mls_data.application(GID, 0, b"from before %d" % i) for i in range(520)]
    with schema_at(monkeypatch, 14):
        async with server_factory(clock=clock) as old:
            alice = await old.registered()
            bob = await old.registered()
            created_at = 1_900_000_000_000 // 3_600_000 * 3_600_000

            async def legacy_rows(tx: Tx) -> None:
                for seq, message in enumerate(messages, start=1):
                    found = await tx.fetchone(
                        "INSERT INTO payloads (data) VALUES (?) RETURNING payload_id", pad(message)
                    )
                    assert found is not None
                    await tx.executemany(
                        "INSERT INTO queue_entries (queue_id, seq, payload_id, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        [(c.me.queue_id, seq, int(found[0]), created_at) for c in (alice, bob)],
                    )
                await tx.execute(
                    "UPDATE queues SET next_seq = ? WHERE queue_id IN (?, ?)",
                    len(messages) + 1,
                    alice.me.queue_id,
                    bob.me.queue_id,
                )
                # A payload no entry holds (its last holder acked under an old bug).
                await tx.execute("INSERT INTO payloads (data) VALUES (?)", pad(messages[0]))

            await old.state.db.transaction(legacy_rows)
    async with server_factory(clock=clock) as new:
        names = await columns(new, "queue_entries")
        stored = await rows(new, "queue_entries")
        assert len(stored) == 2 * len(messages)  # more than one batch of 500
        assert {row[names.index("legacy_payload")] for row in stored} == {None}
        refs = [row[names.index("payload_ref")] for row in stored]
        assert None not in refs and len(set(refs)) == len(refs)
        # Counted, and the payload no entry held dropped (server migration 18
        # seals the counts; a count of 0 is a payload nobody can fetch).
        names = await columns(new, "payloads")
        payloads = await rows(new, "payloads")
        assert len(payloads) == len(messages), "the payload no entry held was dropped"
        assert {row[names.index("holders")] for row in payloads} == {0}
        assert None not in {row[names.index("holders_box")] for row in payloads}
        counts = await holders(new)
        assert sorted(Counter(counts.values()).items()) == [(2, len(messages))]
        alice_now = ApiClient(new.http, alice.identity, clock)
        bob_now = ApiClient(new.http, bob.identity, clock)
        page = await alice_now.fetch(limit=500)
        assert [m.data for m in page.messages] == messages[:500]
        assert [m.seq for m in page.messages] == list(range(1, 501))
        await alice_now.ack(100)
        assert sorted(Counter((await holders(new)).values()).items()) == [
            (1, 100),
            (2, len(messages) - 100),
        ]
        await bob_now.ack(100)
        assert len(await holders(new)) == len(messages) - 100
        after = (await rows(new, "queue_entries"), await rows(new, "payloads"))
    # A second start finds nothing left to seal, and changes nothing.
    async with server_factory(clock=clock) as again:
        assert (await rows(again, "queue_entries"), await rows(again, "payloads")) == after


async def test_references_sealed_under_another_key_file_stop_the_start(
    server_factory: ServerFactory, database_url: str, tmp_path: Path
) -> None:
    """The start opens one reference: a database whose entries were sealed
    under another secret key file is refused then, not request by request."""
    async with server_factory() as first:
        foreign = PayloadRefs(os.urandom(32)).seal("some-queue", 1)

        async def entry(tx: Tx) -> None:  # no client row: nothing else sealed to open
            await tx.execute("INSERT INTO queues (queue_id) VALUES ('some-queue')")
            await tx.execute(
                "INSERT INTO queue_entries (queue_id, seq, payload_ref, created_at) "
                "VALUES ('some-queue', 1, ?, 0)",
                foreign,
            )

        await first.state.db.transaction(entry)
    await assert_start_refused_with_another_key(database_url, tmp_path)
