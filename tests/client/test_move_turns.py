"""New members move off their contact queues in turns (messenger/client/sync/move_turns.py).

Against the real server app in process. One commit adds three members who
each joined by their contact queue; each must move its leaf with a commit
of its own. Only the first in leaf order queues its move at the join; each
other one waits until the members before it have moved (or were removed),
or until its deadline, so the moves do not race for one epoch. The waiting
moves are kept in the store, and ``flush`` sends them all.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from messenger.api import routes as r
from messenger.client import MessengerClient
from messenger.client.store.settings import MOVES_WAITING
from messenger.client.sync.intents import Intent
from messenger.client.sync.move_turns import MAX_WAIT_MS, STEP_MS, MoveTurns, wait_turn

from .helpers import account_id
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    """A client's time: stands still at the test's start unless the test moves
    it (by seconds: within the server's window for signed requests)."""

    def __init__(self) -> None:
        self.start = time.time()
        self.ahead = 0.0

    def __call__(self) -> float:
        return self.start + self.ahead


async def moves_queued(client: MessengerClient, group_id: bytes) -> int:
    """How many ``move`` commits ``client`` has queued for the group."""
    items = await client._store.run(lambda s: s.outbox.for_group(group_id))
    return sum(1 for i in items if i.intent and Intent.loads(i.intent).op == "move")


async def waiting(client: MessengerClient) -> object:
    return await client._store.run(lambda s: s.settings.get(MOVES_WAITING))


async def leaf_of(client: MessengerClient, group_id: bytes) -> int:
    group = await client._require().epochs.get(group_id)
    assert group is not None
    return group.leaf_index


async def three_joined(
    server: InProcessServer, clock: Clock, *, classic: bool = False
) -> tuple[MessengerClient, list[MessengerClient], bytes]:
    """Alice's new group with three members who joined by their contact queues,
    in leaf order; no move sent yet. ``classic``: in suite 1 (the members'
    other KeyPackages dropped first, as from apps before the hybrid suite)."""
    alice = await server.client("alice")
    others = [await server.client(n, clock=clock) for n in ("bob", "carol", "dave")]
    for client in (alice, *others):
        await client.sync()  # the contact queue, and KeyPackages naming it
        assert client._require().contact is not None
    if classic:
        ids = [c._require().account.identity.client_id for c in others]

        async def only_suite_one(tx: Any) -> None:
            for client_id in ids:
                await tx.execute(
                    "DELETE FROM key_packages WHERE client_id = ? AND cipher_suite != 1",
                    client_id,
                )

        await server.state.db.transaction(only_suite_one)
    chat = await alice.create_group("Turns", [await account_id(c) for c in others])
    await alice.flush(FLUSH)
    group_id = chat.group_id
    assert group_id is not None
    for client in others:
        await client.sync()  # joins by the Welcome in its contact queue
    leaves = {c: await leaf_of(c, group_id) for c in others}
    return alice, sorted(others, key=leaves.__getitem__), group_id


def stale_commits(server: InProcessServer, group_id: bytes, mark: int) -> list[int | None]:
    path = r.group_path(r.GROUP_COMMITS, group_id)
    return [
        x.status
        for x in server.wire.exchanges[mark:]
        if x.method == "POST" and x.path == path and x.error == "stale_epoch"
    ]


async def test_members_added_together_move_one_after_another(server: InProcessServer) -> None:
    clock = Clock()
    alice, (first, second, third), group_id = await three_joined(server, clock)
    mark = len(server.wire.exchanges)

    # Only the first in leaf order queued its move; the others wait their turn.
    assert [await moves_queued(c, group_id) for c in (first, second, third)] == [1, 0, 0]
    assert await waiting(first) is None
    assert await waiting(second) and await waiting(third)

    await first.flush(FLUSH)
    for client in (second, third):
        await client.sync()  # the first's move
    # The second's turn came with it; the third waits for the second.
    assert [await moves_queued(c, group_id) for c in (second, third)] == [1, 0]
    assert await waiting(second) is None and await waiting(third)

    await second.flush(FLUSH)
    await third.sync()
    assert await moves_queued(third, group_id) == 1
    assert await waiting(third) is None
    await third.flush(FLUSH)

    # Three moves, one epoch each, and no commit refused for a race.
    await alice.sync()
    for client in (first, second, third):
        await client.sync()
    epochs = {
        await c.group_epoch(v.id)
        for c in (alice, first, second, third)
        for v in await c.conversations()
    }
    assert epochs == {4}  # the add, then three moves
    assert stale_commits(server, group_id, mark) == []


async def stays_waiting(client: MessengerClient, group_id: bytes) -> bool:
    """Whether a look at the waiting moves (restart-fresh, from the store) leaves
    ``client``'s move waiting."""
    turns = MoveTurns(client._require())
    await turns.take()
    return await moves_queued(client, group_id) == 0


async def test_a_move_waits_for_those_before_it_only_until_its_deadline(
    server: InProcessServer,
) -> None:
    clock = Clock()
    _alice, (first, _second, third), group_id = await three_joined(server, clock)
    # Nobody before the third moves (both offline, say): it waits two steps.
    clock.ahead += (2 * STEP_MS - 1) / 1000
    assert await stays_waiting(third, group_id)
    clock.ahead += 1 / 1000
    assert not await stays_waiting(third, group_id)
    assert await waiting(third) is None
    await third.flush(FLUSH)
    assert await moves_queued(third, group_id) == 0  # sent
    await first.sync()
    assert await first.group_epoch((await first.conversations())[0].id) == 2


async def test_a_removed_member_before_it_is_not_waited_for(server: InProcessServer) -> None:
    clock = Clock()
    alice, (first, second, third), group_id = await three_joined(server, clock)
    await first.flush(FLUSH)
    await alice.sync()
    # The second never moves: Alice removes it. The third's turn comes with that commit.
    await alice.remove_member((await alice.conversations())[0].id, await account_id(second))
    await alice.flush(FLUSH)
    await third.sync()
    assert await moves_queued(third, group_id) == 1
    assert await waiting(third) is None


async def test_the_wait_is_bounded_however_many_come_before(server: InProcessServer) -> None:
    """An adder could put many leaves that never move before a new member's."""
    client = await server.client("erin")
    many = tuple((i, bytes([i]) * 32) for i in range(100))
    queued = await client._store.transaction(lambda s: wait_turn(s, b"g" * 32, many, 5_000))
    assert not queued
    entry = next(iter(dict(await waiting(client)).values()))  # type: ignore[call-overload]
    assert entry["at"] == 5_000 + MAX_WAIT_MS < 5_000 + 100 * STEP_MS


async def test_flush_sends_a_waiting_move(server: InProcessServer) -> None:
    clock = Clock()
    _alice, (_first, _second, third), group_id = await three_joined(server, clock)
    await third.flush(FLUSH)
    assert await waiting(third) is None
    assert await moves_queued(third, group_id) == 0
    commits = server.wire.sent("POST", r.group_path(r.GROUP_COMMITS, group_id))
    assert commits[-1].status == 200


async def test_the_members_of_a_reinitialised_group_move_in_turns(server: InProcessServer) -> None:
    """Moving a group to another cipher suite re-adds every member to a new
    group from their KeyPackages (RFC 9420 §11.2), which name their contact
    queues: they move off them in turns too."""
    clock = Clock()
    alice, members, group_id = await three_joined(server, clock, classic=True)
    for client in members:
        pool = client._pool
        assert pool is not None
        await pool.replenish()  # hybrid KeyPackages again, for the new group
        await client.flush(FLUSH)  # its move in the first group
    for client in (alice, *members):
        await client.sync()
    chat = (await alice.conversations())[0].id
    await alice.upgrade_encryption(chat)  # the ReInit, then the new group's Welcome
    await alice.flush(FLUSH)
    for client in members:
        await client.sync()  # the ReInit (its queue), then the Welcome (its contact queue)
    views = [(await c.conversations())[0] for c in members]
    successor = views[0].conversation.group_id
    assert successor is not None and successor != group_id
    assert all(v.conversation.group_id == successor for v in views)
    leaves = {c: await leaf_of(c, successor) for c in members}
    first, second, third = sorted(members, key=leaves.__getitem__)
    assert [await moves_queued(c, successor) for c in (first, second, third)] == [1, 0, 0]

    mark = len(server.wire.exchanges)
    await first.flush(FLUSH)
    await second.sync()
    assert await moves_queued(second, successor) == 1
    await second.flush(FLUSH)
    await third.sync()
    assert await moves_queued(third, successor) == 1
    await third.flush(FLUSH)
    assert stale_commits(server, successor, mark) == []
