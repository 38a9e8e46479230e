"""Queue sequence numbers start at a random origin and jump once emptied.

A queue's ``next_seq`` counted from 1: a copy of the database showed how
many messages each pseudonymous queue ever got, and the queues that joined
the same groups at the same time counted in step, so a thief could pair
them; two copies showed how many each got in between (docs/metadata.md §2).
New queues start at a random origin (server migration 18) and jump ahead by
a random step when an ack empties them; the queues from before move to an
origin once they are empty (migration 19), and until then keep their
numbers, which their clients' cursors follow.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.padding import pad
from messenger.server.queue_numbers import (
    SEQ_JUMP_CEILING,
    SEQ_JUMP_SPAN,
    SEQ_ORIGIN_MIN,
    SEQ_ORIGIN_SPAN,
    seq_after_emptied,
    seq_origin,
)
from messenger.server.storage import Tx

from . import mls_data
from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import entries, schema_at

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


def test_an_emptied_queue_jumps_ahead_by_a_random_step() -> None:
    start = SEQ_ORIGIN_MIN + 12_345
    jumps = [seq_after_emptied(start) - start for _ in range(1000)]
    assert all(1 <= j <= SEQ_JUMP_SPAN for j in jumps)
    assert len(set(jumps)) > 990, "a thousand draws from a million values hardly meet"
    # Most jumps are far larger than the messages a queue gets between acks.
    assert sorted(jumps)[100] > 10_000
    # A queue from before (restored ones too, 2^32 up) moves to an origin.
    for old in (1, 7, (1 << 32) + 5):
        assert SEQ_ORIGIN_MIN <= seq_after_emptied(old) < SEQ_ORIGIN_MIN + SEQ_ORIGIN_SPAN
    # At the ceiling the numbers stop jumping, so they stay below 2^53.
    assert seq_after_emptied(SEQ_JUMP_CEILING) == SEQ_JUMP_CEILING
    assert SEQ_JUMP_CEILING + (1 << 40) < 1 << 53


async def drain(member: ApiClient) -> int:
    """Fetch and ack everything in ``member``'s queue; the last number it was given."""
    page = await member.fetch()
    assert page.messages and not page.more
    last = page.messages[-1].seq
    assert (await member.ack(last)).deleted == len(page.messages)
    return last


async def test_two_copies_do_not_show_how_many_messages_a_queue_got_in_between(
    server: TestServer,
) -> None:
    members = await server.group(GID, 3)
    _, bob, carol = members
    cursors = {m.me.queue_id: await drain(m) for m in members[1:]}
    first = await next_seqs(server)  # a copy of the database
    for queue, cursor in cursors.items():
        # Emptied: the next message comes after the client's cursor, but
        # not right after it.
        assert first[queue] > cursor + 1
    for i in range(5):
        await members[0].send(GID, mls_data.application(GID, 1, b"m%d" % i))
    for member in (bob, carol):
        page = await member.fetch(after=cursors[member.me.queue_id])
        seqs = [m.seq for m in page.messages]
        # Consecutive from where the queue's numbers jumped to.
        assert seqs == list(range(first[member.me.queue_id], first[member.me.queue_id] + 5))
        cursors[member.me.queue_id] = seqs[-1]
        assert (await member.ack(seqs[-1])).deleted == 5
    second = await next_seqs(server)  # a later copy
    moved = {q: second[q] - first[q] for q in cursors}
    # Bob and Carol got the same five messages and acked them: their numbers
    # did not move by five, nor by the same amount.
    assert all(n > 5 for n in moved.values())
    assert len(set(moved.values())) == 2
    # An ack that leaves entries behind, or deletes nothing, moves nothing.
    for i in range(2):
        await members[0].send(GID, mls_data.application(GID, 1, b"n%d" % i))
    held = [m.seq for m in (await carol.fetch(after=cursors[carol.me.queue_id])).messages]
    assert held == [second[carol.me.queue_id], second[carol.me.queue_id] + 1]
    assert (await carol.ack(held[0])).deleted == 1
    assert (await carol.ack(held[0])).deleted == 0
    assert (await next_seqs(server))[carol.me.queue_id] == held[1] + 1
    assert [m.seq for m in (await carol.fetch(after=held[0])).messages] == held[1:]


async def test_acks_that_empty_the_queue_while_messages_arrive_lose_none(
    server: TestServer,
) -> None:
    """Bob reads and acks while Alice sends: an ack may empty his queue (a
    jump) or meet a message that just landed (none). The ack locks the queue
    as the append does, so he gets every message once, in order."""
    alice, bob = await server.group(GID, 2)
    got = [(await drain(bob), b"")]  # (seq, data) as Bob reads them, from his cursor

    async def send(messages: list[bytes]) -> None:
        for message in messages:
            await alice.send(GID, message)

    async def read() -> bool:
        """Fetch what waits after Bob's cursor and ack it; whether anything did."""
        page = await bob.fetch(after=got[-1][0])
        got.extend((m.seq, m.data) for m in page.messages)
        if page.messages:
            await bob.ack(got[-1][0])
        return bool(page.messages)

    async def read_twice() -> None:
        await read()
        await read()

    sent = [mls_data.application(GID, 1, b"race %d" % i) for i in range(60)]
    for start in range(0, len(sent), 4):
        await asyncio.gather(send(sent[start : start + 4]), read_twice())  # acks race appends
        while await read():  # then the rest: the last ack empties the queue
            pass
    assert [data for _, data in got[1:]] == sent
    seqs = [seq for seq, _ in got]
    assert seqs == sorted(set(seqs))
    # The rounds end with an emptied queue: its numbers jumped 15 times at least.
    assert sum(b - a > 1 for a, b in itertools.pairwise(seqs)) >= 15
    assert not [e for e in await entries(server) if e[0] == bob.me.queue_id]


async def test_a_jump_keeps_the_length_limit_counting_the_entries_held(
    server_factory: ServerFactory,
) -> None:
    async with server_factory(max_queue_length=3) as server:
        alice, bob = await server.group(GID, 2)
        await drain(bob)
        await drain(alice)
        for i in range(3):
            await alice.send(GID, mls_data.application(GID, 1, b"m%d" % i))
        with pytest.raises(ApiError) as info:
            await alice.send(GID, mls_data.application(GID, 1, b"one too many"))
        assert info.value.code is ErrorCode.QUEUE_FULL
        await drain(alice)
        last = await drain(bob)  # both emptied: their numbers jump again
        again = [mls_data.application(GID, 1, b"again %d" % i) for i in range(3)]
        for message in again:
            await alice.send(GID, message)
        assert [m.data for m in (await bob.fetch(after=last)).messages] == again


async def test_migrations_18_and_19_move_every_queue_from_before_once_it_is_empty(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-17 database whose queues count from 1 (more than one batch
    of them, most never used). After the upgrade the unused ones start at
    random origins; a queue holding messages keeps its numbers, so its
    client's cursor still fits, until it is empty: an ack that empties it,
    or retention dropping what it held, moves it to an origin. The task
    stays until no queue counts from below the origins, then a start moves
    nothing."""
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
        assert all(after[q] >= SEQ_ORIGIN_MIN for q in moved)
        assert len({after[q] for q in moved}) == len(moved)
        # The used queues keep their numbers: Bob's cursor still fits.
        assert after[bob.me.queue_id] == after[alice.me.queue_id] == 4
        assert "seq_origins" in await tasks(new)
        bob_now = ApiClient(new.http, bob.identity, clock)
        alice_now = ApiClient(new.http, alice.identity, clock)
        page = await bob_now.fetch()
        assert [(m.seq, m.data) for m in page.messages] == list(enumerate(sent, start=1))
        await bob_now.ack(1)
        await alice_now.start_group(GID, bob_now)  # the Welcome comes next, numbered 4
        assert [m.seq for m in (await bob_now.fetch(after=1)).messages] == [2, 3, 4]
        # Bob acks it all: his queue moves to an origin, after his cursor.
        assert (await bob_now.ack(4)).deleted == 3
        assert (await next_seqs(new))[bob.me.queue_id] >= SEQ_ORIGIN_MIN
        await alice_now.send(GID, mls_data.application(GID, 1, b"after"))
        [message] = (await bob_now.fetch(after=4)).messages
        assert message.seq >= SEQ_ORIGIN_MIN
        # Alice never reads: her queue keeps its numbers, and the task stays,
        # sweep after sweep, until retention drops what she held.
        await new.state.sweep()
        assert (await next_seqs(new))[alice.me.queue_id] < SEQ_ORIGIN_MIN
        assert "seq_origins" in await tasks(new)
        clock.advance(new.state.config.retention_seconds + 3600)
        await new.state.sweep()
        assert (await next_seqs(new))[alice.me.queue_id] >= SEQ_ORIGIN_MIN
        assert "seq_origins" not in await tasks(new)
        assert (await alice_now.fetch()).messages == ()
        settled = await next_seqs(new)
    async with server_factory(clock=clock) as again:
        assert await next_seqs(again) == settled, "the task is done"


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
