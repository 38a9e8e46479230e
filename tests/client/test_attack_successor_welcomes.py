"""Made-up successor Welcomes cannot hold up a victim's contact queue.

A Welcome to a reinitialised group's successor (RFC 9420 §11.2) carries the
old group's ``reinit`` resumption PSK; read from the contact queue before
its ReInit, it waits there for the queue (messenger/client/sync/inbound.py).
Anyone who claims a KeyPackage can send such a Welcome, naming any group.
Before this was bounded, one Welcome naming a group the victim never had
stopped the victim's contact queue for good: no new conversation reached
it again.

* Mallory, a stranger, reinitialises a group of her own and sends Bob a
  Welcome to its successor: Bob skips it at once (he never had the group),
  and Alice's new chat with him, behind it in his contact queue, arrives.
* Mallory, a member of a group with Bob, makes up a ReInit of it she never
  sends, twice: the first Welcome waits for it, but only for
  ``CONTACT_WAIT_MAX_S``; then it is skipped, the second at once (it names
  the same group at the same epoch), and Alice's chat arrives.

Against the real server app in process; Mallory uses ``messenger.mls``.
"""

from __future__ import annotations

import logging
import os

import pytest

from messenger.client import MessengerClient
from messenger.client.contact_tokens import claim_key_packages
from messenger.client.groups import GROUP_CONFIG, new_key_package
from messenger.client.successor_groups import first_commit, start_group
from messenger.client.sync.inbound import CONTACT_WAIT_MAX_S
from messenger.mls.group import Group
from messenger.mls.proposals import ReInit

from .helpers import account_id, texts
from .in_process import InProcessServer
from .test_move_turns import Clock

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def send_successor_welcome(mallory: MessengerClient, old: Group, victim: str) -> None:
    """Mallory merges a ReInit of ``old`` she sends nobody, makes its successor
    with the victim's claimed KeyPackages and delivers its Welcome."""
    session = mallory._require()
    suite = old.suite.suite_id
    reinit = ReInit(os.urandom(32), 1, suite, tuple(old.extensions))
    old.merge(old.commit(session.random, reinit=reinit, include_pending=False).staged)
    claimed = await claim_key_packages(session, victim, (suite,))  # a shared group's token
    key_packages = [c.key_package for c in claimed]
    bundle = new_key_package(session.account, session.random, now=session.now_s(), suite=suite)
    new, result = Group.reinit(old, bundle, key_packages, session.random, config=GROUP_CONFIG)
    claims = session.transport.claim_tokens.take(key_packages)
    first = first_commit(new, result, session.account.client_id, claims, session.random)
    await start_group(session, new.group_id, first)  # as the app would: sealed, Welcome and all


def skipped(caplog: pytest.LogCaptureFixture, why: str) -> bool:
    return any(why in r.getMessage() for r in caplog.records)


async def test_a_strangers_successor_welcome_is_skipped_at_once(
    server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    alice, bob, mallory = [await server.client(n) for n in ("alice", "bob", "mallory")]
    for client in (alice, bob, mallory):
        await client.sync()
    session = mallory._require()
    account = await session.leaf_account()
    bundle = new_key_package(account, session.random, now=session.now_s())
    own = Group.create(bundle, session.random, config=GROUP_CONFIG)  # Bob never had it
    await send_successor_welcome(mallory, own, await account_id(bob))
    chat = await alice.create_conversation(await account_id(bob))
    await alice.send_text(chat.id, "hello")
    await alice.flush(FLUSH)

    await bob.sync()  # one catch-up: the made-up Welcome, then Alice's

    (view,) = await bob.conversations()
    assert view.conversation.peer_account_id == await account_id(alice)
    assert await texts(bob, view.id) == ["hello"]
    assert skipped(caplog, "a Welcome resuming a group this client does not have")


async def test_a_members_made_up_successor_welcome_waits_a_bounded_time(
    server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    clock = Clock()
    alice, mallory = await server.client("alice"), await server.client("mallory")
    bob = await server.client("bob", clock=clock)
    for client in (alice, bob, mallory):
        await client.sync()
    shared = await mallory.create_conversation(await account_id(bob))
    await mallory.send_text(shared.id, "hi Bob")
    await mallory.flush(FLUSH)
    await bob.sync()
    await bob.flush(FLUSH)  # Bob's move off his contact queue
    await mallory.sync()
    session = mallory._require()
    group_id = shared.group_id
    for _ in range(2):  # two of them: only the first makes Bob wait
        async with session.group_lock(group_id):
            old = await session.groups.get(group_id)
            assert old is not None
            session.groups.evict(group_id)  # her client does not follow; the test holds it
            await send_successor_welcome(mallory, old, await account_id(bob))
    chat = await alice.create_conversation(await account_id(bob))
    await alice.send_text(chat.id, "hello")
    await alice.flush(FLUSH)
    pipeline = bob._pipeline
    assert pipeline is not None

    await bob.sync()  # the Welcome waits for a ReInit that may yet come; Alice's behind it
    waiting_at = await pipeline.cursor(contact=True)
    assert len(await bob.conversations()) == 1
    clock.ahead = CONTACT_WAIT_MAX_S - 1
    await bob.sync()
    assert await pipeline.cursor(contact=True) == waiting_at, "it still waits"
    assert len(await bob.conversations()) == 1

    clock.ahead = CONTACT_WAIT_MAX_S + 1
    await bob.sync()  # the first is skipped, and the second at once: same group and epoch

    views = {v.conversation.peer_account_id: v for v in await bob.conversations()}
    assert await texts(bob, views[await account_id(alice)].id) == ["hello"]
    assert await texts(bob, views[await account_id(mallory)].id) == ["hi Bob"]
    assert old is not None  # Mallory's copy, with the ReInit she never sent merged
    assert await bob.group_epoch(views[await account_id(mallory)].id) == old.epoch - 1
    assert skipped(caplog, "a Welcome waited too long for the commit it follows")
