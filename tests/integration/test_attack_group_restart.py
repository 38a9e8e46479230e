"""A group a member broke is started again, over real sockets (docs/client.md,
"Starting again"; messenger/client/group_restart.py).

Mallory, a member of "club" with Alice and Bob, commits bytes nobody can
process: the server accepts them as the next epoch. Alice's and Bob's
running clients (push socket and contact-queue long poll, no manual sync)
find the group stuck; Alice starts it again without Mallory; Bob's client
follows the branch on its own, and the conversation goes on with its
history, Mallory out of it.

Real server process on 127.0.0.1, real clients with their own stores.
"""

from __future__ import annotations

import pytest

from messenger.client import MessengerClient, NoteKind

from .conftest import Clients, eventually, moves_settled
from .test_attack_look_alike_welcome import account_id
from .test_attack_outbox_lanes import unprocessable_commit
from .test_end_to_end import conversation_named, texts, wait_texts

pytestmark = pytest.mark.anyio


async def stuck(client: MessengerClient, cid: int) -> bool:
    return (await client.conversation(cid)).stuck


async def test_a_broken_group_is_started_again_and_followed(clients: Clients) -> None:
    alice = await clients.new("alice", handle="alice_restart")
    bob = await clients.new("bob", handle="bob_restart")
    mallory = await clients.new("mallory", handle="mallory_restart")
    mallory_id = await account_id(mallory)
    club = await alice.create_group("club", [await account_id(bob), mallory_id])
    await alice.send_text(club.id, "welcome")
    bob_club = await conversation_named(bob, "club")
    mallory_club = await conversation_named(mallory, "club")
    await wait_texts(bob, bob_club, ["welcome"], "Bob to join")
    await wait_texts(mallory, mallory_club, ["welcome"], "Mallory to join")
    await moves_settled(
        [bob, mallory], [(alice, club.id), (bob, bob_club), (mallory, mallory_club)]
    )
    old_group = club.group_id

    await unprocessable_commit(mallory, old_group)

    async def both_stuck() -> bool:
        return await stuck(alice, club.id) and await stuck(bob, bob_club)

    await eventually(both_stuck, "Alice's and Bob's clients to find the group stuck")
    await alice.restart_conversation(club.id, leave_out=[mallory_id])

    async def bob_followed() -> bool:
        view = await bob.conversation(bob_club)
        return view.conversation.group_id != old_group and not view.stuck

    await eventually(bob_followed, "Bob's client to follow the new group")
    assert (await bob.conversation(bob_club)).conversation.group_id == (
        await alice.conversation(club.id)
    ).conversation.group_id
    assert mallory_id not in {x.account_id for x in await bob.members(bob_club)}
    notes = [v.message.note.kind for v in await bob.messages(bob_club) if v.message.note]
    assert NoteKind.STUCK in notes and NoteKind.RESTARTED in notes

    await alice.send_text(club.id, "we are back")
    await wait_texts(bob, bob_club, ["welcome", "we are back"], "Alice's message in the new group")
    await bob.send_text(bob_club, "good")
    await wait_texts(alice, club.id, ["welcome", "we are back", "good"], "Bob's reply")
    assert "we are back" not in await texts(mallory, mallory_club)
