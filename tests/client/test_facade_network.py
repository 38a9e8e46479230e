"""Blocking over a real server: a blocked contact's messages are dropped on arrival.

Uses the integration fixtures (a ``python -m messenger.server`` process on
loopback, clients with their own stores).
"""

from __future__ import annotations

import pytest

from messenger.client import MessengerClient, NotAllowedError

from ..integration import conftest as integration
from ..integration.conftest import WAIT, Clients, eventually
from .helpers import texts

# The integration fixtures: a server process for the module, clients for each test.
anyio_backend = integration.anyio_backend
server = integration.server
clients = integration.clients

pytestmark = pytest.mark.anyio


async def wait_texts(client: MessengerClient, cid: int, expected: list[str]) -> None:
    async def check() -> bool:
        return await texts(client, cid) == expected

    await eventually(check, f"the texts {expected!r}")


async def test_a_blocked_contacts_messages_are_dropped(clients: Clients) -> None:
    alice = await clients.new("alice", handle="alice2")
    bob = await clients.new("bob", handle="bob2")
    alice_info, bob_info = await alice.account(), await bob.account()
    assert alice_info is not None and bob_info is not None
    await alice.add_contact(bob_info.invite_link)
    chat = await alice.create_conversation(bob_info.account_id)
    await alice.send_text(chat.id, "one")

    async def joined() -> bool:
        return len(await bob.conversations()) == 1

    await eventually(joined, "Bob to join")
    bob_chat = (await bob.conversations())[0].id
    await wait_texts(bob, bob_chat, ["one"])

    await bob.block(alice_info.account_id)
    assert (await bob.conversation(bob_chat)).blocked
    assert alice_info.account_id not in {c.account_id for c in await bob.contacts()}
    with pytest.raises(NotAllowedError):
        await bob.send_text(bob_chat, "hello?")
    await alice.send_text(chat.id, "two (dropped)")
    await alice.flush(WAIT)
    await bob.sync()
    assert await texts(bob, bob_chat) == ["one"]
    assert await bob.unread_count() == 1

    await bob.unblock(alice_info.account_id)
    await alice.send_text(chat.id, "three")
    # Queue order: once "three" is in, "two" was processed -- and dropped.
    await wait_texts(bob, bob_chat, ["one", "three"])
    await bob.send_text(bob_chat, "back")
    await wait_texts(alice, chat.id, ["one", "two (dropped)", "three", "back"])
