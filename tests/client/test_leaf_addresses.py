"""Old leaves move to delivery addresses (messenger.client.leaf_addresses).

A group made by apps from before delivery addresses has leaves naming plain
queue IDs. After the update, each member queues one self-update whose path
gives its leaf the address; members that have not yet seen it list the old
form in their commits, which the server maps to the same queue.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from messenger.api.delivery_address import SEALED_ADDRESS_LENGTH
from messenger.client import MessengerClient
from messenger.client.groups import group_members
from messenger.client.sync.leaf_addresses import SETTING, queue_readdressing
from messenger.server.queue_addresses import QueueAddresses

from .helpers import account_id, texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _leaves(client: MessengerClient, conversation_id: int) -> dict[str, str]:
    """Each member's delivery address as ``client`` sees the group, by client ID."""
    view = await client.conversation(conversation_id)
    assert view.conversation.group_id is not None
    session = client._require()
    group = await session.groups.get(view.conversation.group_id)
    assert group is not None
    found = {}
    for member in group_members(group):
        assert member.queue_id is not None
        found[member.client_id] = member.queue_id
    return found


def _updated(client: MessengerClient) -> None:
    """As after the app's update: a new session, which has asked for no address yet."""
    session = client._require()
    session.account = dataclasses.replace(session.account, delivery_address=None)


async def _old_group(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[MessengerClient, MessengerClient, int, int, dict[str, str]]:
    """Alice and Bob in a group made before delivery addresses: the server handed
    out plain queue IDs, so every leaf has one. The conversations and the queues."""
    with monkeypatch.context() as old:
        old.setattr(QueueAddresses, "issue", lambda self, queue_id: queue_id)
        alice = await server.client("alice")
        bob = await server.client("bob")
        group = await alice.create_group("Old", [await account_id(bob)])
        await alice.flush(FLUSH)
        await bob.sync()
        (bob_view,) = await bob.conversations()
        await bob.flush(FLUSH)
        await alice.sync()
    queues = {c._require().account.client_id: c._require().account.queue_id for c in (alice, bob)}
    assert await _leaves(alice, group.id) == queues
    assert await _leaves(bob, bob_view.id) == queues
    return alice, bob, group.id, bob_view.id, queues


async def test_a_group_of_old_leaves_moves_to_addresses(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, group, bob_group, queues = await _old_group(server, monkeypatch)
    # An old app's settled state: nothing to move without a sealed address.
    assert await queue_readdressing(alice._require()) == 0

    for client in (alice, bob):
        _updated(client)
        await client._require().leaf_account()
    # Alice moves first (the group and her devices group); Bob has not
    # processed her commit when he moves.
    assert await queue_readdressing(alice._require()) == 2
    assert await queue_readdressing(alice._require()) == 0  # once per profile
    await alice.flush(FLUSH)
    assert await queue_readdressing(bob._require()) == 2
    await bob.flush(FLUSH)  # stale: he catches up on Alice's commit, then commits
    await alice.sync()
    await bob.sync()

    for client, cid in ((alice, group), (bob, bob_group)):
        leaves = await _leaves(client, cid)
        assert set(leaves) == set(queues)
        for address in leaves.values():
            assert len(address) == SEALED_ADDRESS_LENGTH
            assert address not in queues.values()
        assert server.state.addresses.resolve(leaves[alice._require().account.client_id]) == (
            alice._require().account.queue_id
        )
    # The group works as before.
    await alice.send_text(group, "after the move")
    await alice.flush(FLUSH)
    await bob.sync()
    await bob.send_text(bob_group, "and back")
    await bob.flush(FLUSH)
    await alice.sync()
    assert (await texts(bob, bob_group))[-2:] == ["after the move", "and back"]
    assert (await texts(alice, group))[-2:] == ["after the move", "and back"]


async def test_started_apps_move_their_leaves_by_themselves(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, group, bob_group, _ = await _old_group(server, monkeypatch)
    for client in (alice, bob):
        _updated(client)
        await client.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20

    async def moved() -> bool:
        for client, cid in ((alice, group), (bob, bob_group)):
            leaves = await _leaves(client, cid)
            if any(len(a) != SEALED_ADDRESS_LENGTH for a in leaves.values()):
                return False
        return True

    while not await moved():
        assert loop.time() < deadline, "the apps did not move their leaves to addresses"
        await asyncio.sleep(0.05)
    for client in (alice, bob):
        settings = await client._store.run(lambda s: s.settings.get(SETTING))
        assert settings is True
