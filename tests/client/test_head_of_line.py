"""A commit waiting for the server's answer holds up no conversation, not even its own.

The owner of group transitions (:mod:`messenger.client.epochs`) keeps an own
commit's :class:`StagedCommit` between building it and the server's answer,
and no group lock spans the round trip: while Alice's commit of one group is
on its way (held here at the outbox's ``before_send`` hook), messages to that
group and to another one arrive, are decrypted and stored; then the commit
is accepted and merged (``Group.merge`` with the staged commit, on the
state that has moved on meanwhile), and both members agree on the new epoch.

Against the real server app in process (:mod:`.in_process`).
"""

from __future__ import annotations

import asyncio

import pytest

from messenger.client import MessengerClient

from .helpers import texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

#: Bounds every wait: a bug shows as a timeout, not as a hang.
WAIT = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def by_name(client: MessengerClient) -> dict[str | None, int]:
    return {v.name: v.id for v in await client.conversations()}


class Gate:
    """An outbox hook that holds the first send after :meth:`arm` until :meth:`open`."""

    def __init__(self) -> None:
        self.armed = False
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    def arm(self) -> None:
        self.armed = True

    def open(self) -> None:
        self.opened.set()

    async def __call__(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            await self.opened.wait()


async def test_a_commit_in_flight_holds_up_no_conversation(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    bob_info = await bob.account()
    assert bob_info is not None
    first = await alice.create_group("First", [bob_info.account_id])
    second = await alice.create_group("Second", [bob_info.account_id])
    await alice.flush(WAIT)
    await bob.sync()
    bobs = await by_name(bob)
    epoch = await alice.group_epoch(first.id)
    assert epoch is not None

    gate = Gate()
    alice._require()
    assert alice._sender is not None
    alice._sender._before_send = gate  # the outbox's test hook (ClientOptions.before_send)
    gate.arm()
    await alice.rename(first.id, "First, renamed")
    flushing = asyncio.create_task(alice.flush(WAIT))
    try:
        # The commit is built and persisted, and about to go out.
        await asyncio.wait_for(gate.entered.wait(), WAIT)
        await bob.send_text(bobs["First"], "to the group being renamed")
        await bob.send_text(bobs["Second"], "to the other group")
        await bob.flush(WAIT)
        # Alice's queue is processed while her commit waits: neither group waits for it.
        await asyncio.wait_for(alice.sync(), WAIT)
        assert await texts(alice, first.id) == ["to the group being renamed"]
        assert await texts(alice, second.id) == ["to the other group"]
        assert await alice.group_epoch(first.id) == epoch
    finally:
        gate.open()
        await asyncio.wait_for(flushing, WAIT)

    # The commit was accepted and merged over the state that moved on meanwhile.
    assert await alice.group_epoch(first.id) == epoch + 1
    await bob.sync()
    assert (await bob.conversation(bobs["First"])).name == "First, renamed"
    await bob.send_text(bobs["First"], "after the rename")
    await bob.flush(WAIT)
    await alice.sync()
    assert await texts(alice, first.id) == ["to the group being renamed", "after the rename"]
    await alice.send_text(first.id, "and back")
    await alice.flush(WAIT)
    await bob.sync()
    assert (await texts(bob, bobs["First"]))[-1] == "and back"
