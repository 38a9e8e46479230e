"""Queue sequence numbers start at a random origin (server migration 18).

A queue's ``next_seq`` counted from 1: a copy of the database showed how
many messages each pseudonymous queue ever got, and the queues that joined
the same groups at the same time counted in step, so a thief could pair
them (docs/metadata.md §2). New queues now start at a random origin, and
the queues from before that never got a message are moved to one when the
server starts; the others keep their numbers, which their clients' cursors
follow.
"""

from __future__ import annotations

import pytest

from messenger.api.padding import pad
from messenger.server.queue_links import SEQ_ORIGIN_MIN, SEQ_ORIGIN_SPAN, seq_origin
from messenger.server.storage import Tx

from . import mls_data
from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import schema_at

pytestmark = pytest.mark.anyio

GID = b"S" * 32


def test_an_origin_is_drawn_from_its_whole_range() -> None:
    drawn = [seq_origin() for _ in range(1000)]
    assert all(SEQ_ORIGIN_MIN <= s < SEQ_ORIGIN_MIN + SEQ_ORIGIN_SPAN for s in drawn)
    assert len(set(drawn)) == 1000, "no two of a thousand draws meet"
    # Spread over the span: a queue's count of messages (thousands, millions)
    # is lost in it. Each half of the span gets about half the draws.
    low = sum(s < SEQ_ORIGIN_MIN + SEQ_ORIGIN_SPAN // 2 for s in drawn)
    assert 350 < low < 650
    # Above every time in seconds or milliseconds up to the year 2100, so no
    # stored number is read as a time.
    assert min(drawn) > 4_102_444_800_000


async def next_seqs(server: TestServer) -> dict[str, int]:
    """Every queue's ``next_seq``, as a thief reads it."""
    found = await server.state.db.read(
        lambda tx: tx.fetchall("SELECT queue_id, next_seq FROM queues")
    )
    return {str(q): int(n) for q, n in found}


async def tasks(server: TestServer) -> set[str]:
    found = await server.state.db.read(lambda tx: tx.fetchall("SELECT task FROM maintenance"))
    return {str(t[0]) for t in found}


async def test_queues_that_got_the_same_messages_do_not_count_in_step(
    server: TestServer,
) -> None:
    made = await next_seqs(server)
    members = await server.group(GID, 3)
    for i in range(5):
        await members[i % 3].send(GID, mls_data.application(GID, 1, b"m%d" % i))
    counts = await next_seqs(server)
    queues = [m.me.queue_id for m in members]
    # Every queue, the spares too, was made with an origin of its own.
    assert len(set(counts.values())) == len(counts) > len(made)
    assert min(counts.values()) > 1
    # Bob and Carol got the same messages (the Welcome, then five): before,
    # their next_seq were equal, and equal to 7. Now only the server knows.
    assert counts[queues[1]] != counts[queues[2]]
    for member in members:
        page = await member.fetch()
        seqs = [m.seq for m in page.messages]
        # The client sees consecutive numbers from its queue's origin.
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 1
        assert counts[member.me.queue_id] == seqs[-1] + 1
        # Fetching after a cursor and acking up to it work from the origin.
        assert [m.seq for m in (await member.fetch(after=seqs[1])).messages] == seqs[2:]
        assert (await member.ack(seqs[1])).deleted == 2
        assert [m.seq for m in (await member.fetch()).messages] == seqs[2:]


async def test_migration_18_moves_only_the_queues_that_never_got_a_message(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-17 database whose queues count from 1 (more than one batch
    of them, most never used): after the upgrade the unused ones start at
    random origins; a queue that got messages keeps its numbers, so its
    client's cursor still fits, and a second start moves nothing."""
    clock = FakeClock(start=1_900_000_000.0)
    sent = [mls_data.application(GID, 0, b"before %d" % i) for i in range(3)]
    with schema_at(monkeypatch, 17):
        async with server_factory(clock=clock) as old:
            alice = await old.registered()
            bob = await old.registered()
            used = (alice.me.queue_id, bob.me.queue_id)

            async def before_18(tx: Tx) -> None:
                # The server of before counted every queue from 1; 600 unused
                # ones stand for an old pool of spares and clients that never
                # got a message (more than one batch of 500).
                await tx.execute("UPDATE queues SET next_seq = 1")
                await tx.executemany(
                    "INSERT INTO queues (queue_id, next_seq) VALUES (?, 1)",
                    [(f"old-spare-{i:04d}",) for i in range(600)],
                )
                await insert_messages_before_18(tx, used, sent)

            await old.state.db.transaction(before_18)
            before = await next_seqs(old)
    assert before[bob.me.queue_id] == before[alice.me.queue_id] == 4
    async with server_factory(clock=clock) as new:
        after = await next_seqs(new)
        moved = {q for q in after if q not in used}
        assert len(moved) == len(before) - 2 >= 600
        assert all(after[q] > 1 for q in moved) and len({after[q] for q in moved}) == len(moved)
        # The used queues keep their numbers: Bob's cursor still fits.
        assert after[bob.me.queue_id] == after[alice.me.queue_id] == 4
        bob_now = ApiClient(new.http, bob.identity, clock)
        alice_now = ApiClient(new.http, alice.identity, clock)
        page = await bob_now.fetch()
        assert [(m.seq, m.data) for m in page.messages] == list(enumerate(sent, start=1))
        await bob_now.ack(1)
        await alice_now.start_group(GID, bob_now)  # the Welcome comes next, numbered 4
        assert [m.seq for m in (await bob_now.fetch(after=1)).messages] == [2, 3, 4]
        assert "seq_origins" not in await tasks(new)
        settled = await next_seqs(new)
    async with server_factory(clock=clock) as again:
        assert await next_seqs(again) == settled, "the task ran once"


async def insert_messages_before_18(tx: Tx, queues: tuple[str, ...], messages: list[bytes]) -> None:
    """``messages`` waiting in each of ``queues`` as a server of before stored them.

    Payloads padded and not yet sealed, entries naming them in the clear,
    plain counts of holders (all sealed when the server starts), numbered
    from 1 in each queue.
    """
    created_at = 1_900_000_000_000 // 3_600_000 * 3_600_000
    for seq, message in enumerate(messages, start=1):
        await tx.execute(
            "INSERT INTO payloads (payload_id, data, holders, created_at) VALUES (?, ?, ?, ?)",
            seq,
            pad(message),
            len(queues),
            created_at,
        )
        await tx.executemany(
            "INSERT INTO queue_entries (queue_id, seq, legacy_payload, created_at) "
            "VALUES (?, ?, ?, ?)",
            [(q, seq, seq, created_at) for q in queues],
        )
    for queue in queues:
        await tx.execute(
            "UPDATE queues SET next_seq = ? WHERE queue_id = ?", len(messages) + 1, queue
        )
