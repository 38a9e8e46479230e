"""A member abuses ReInit (RFC 9420 §11.2, §12.1.5; docs/pq-suites.md).

Mallory is a member of "club" with Alice and Bob. She commits a ReInit to a
cipher suite these clients do not use (suite 3, which MLS knows): their
clients refuse the Commit and stay where they were; nothing moves. Then,
in another group, she commits a ReInit to the hybrid suite (which clients
follow) and makes the new group herself with a stranger in it: the Welcome
is refused, because a successor must have exactly the old group's members,
and the conversation stays on the old group.

Real server process, real clients with their own stores; Mallory uses her
own client's session (``_require()``) and ``messenger.mls`` directly.
"""

from __future__ import annotations

import logging
import os

import pytest

from messenger.api import models as m
from messenger.client import MessengerClient
from messenger.client.contact_tokens import claim_key_packages
from messenger.client.groups import GROUP_CONFIG, GroupMember, group_members, new_key_package
from messenger.client.identity import HYBRID_SUITE
from messenger.client.sealed_sending import (
    next_send_token,
    next_send_token_hash,
    send_token,
    send_token_hash,
)
from messenger.mls.group import Group
from messenger.mls.proposals import ReInit

from .conftest import Clients, eventually
from .test_pq_suites import HYBRID, contact, joined, wait_texts

pytestmark = pytest.mark.anyio


def queues_of(members: list[GroupMember]) -> list[str]:
    return sorted({x.queue_id for x in members if x.queue_id})


async def club(clients: Clients, *names: str) -> tuple[list[MessengerClient], list[int]]:
    """Alice's group with the others, everyone having read a first message."""
    people = [await clients.new(name) for name in names]
    alice, others = people[0], people[1:]
    group = await alice.create_group("club", [await contact(alice, o) for o in others])
    await alice.send_text(group.id, "welcome")
    ids = [group.id]
    for other in others:
        (cid,) = await joined(other, 1)
        await wait_texts(other, cid, ["welcome"])
        ids.append(cid)
    return people, ids


async def group_id_of(client: MessengerClient, conversation_id: int) -> bytes:
    return (await client.conversation(conversation_id)).conversation.group_id


async def commit_reinit(mallory: MessengerClient, group_id: bytes, suite: int) -> Group:
    """Mallory commits a ReInit to ``suite``; her group, merged."""
    session = mallory._require()
    async with session.group_lock(group_id):
        group = await session.groups.get(group_id)
        assert group is not None
        reinit = ReInit(os.urandom(32), 1, suite, tuple(group.extensions))
        result = group.commit(session.random, reinit=reinit, include_pending=False)
        request = m.CommitRequest(
            epoch=group.epoch,
            commit=result.message,
            members=tuple(queues_of(group_members(group))),
            send_token_hash=next_send_token_hash(group, result.staged),
            next_token=next_send_token(group, result.staged),
            # A signed commit opens the group's state with the epoch's token
            # (docs/metadata.md §2), as the app's signed fallback does.
            token=send_token(group),
        )
        await session.transport.commit(group_id, request, sealed=False)
        group.merge(result.staged)
        session.groups.evict(group_id)  # her client does not follow; the test holds it
        return group


def seen(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


async def test_a_reinit_to_a_suite_the_client_does_not_use_is_refused(
    clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    (alice, bob, mallory), (alice_cid, bob_cid, _) = await club(clients, "alice", "bob", "mallory")
    before = await bob.group_epoch(bob_cid)
    group_id = await group_id_of(bob, bob_cid)
    await commit_reinit(mallory, group_id, 3)  # X25519/ChaCha20: MLS knows it, we do not use it

    refused = "a ReInit to a cipher suite this client does not use"

    async def both_refused() -> bool:
        return seen(caplog, refused) >= 2

    await eventually(both_refused, "Alice's and Bob's clients to refuse the ReInit")
    for client, cid in ((alice, alice_cid), (bob, bob_cid)):
        assert await client.group_epoch(cid) == before
        assert await client.cipher_suite(cid) == HYBRID
        assert await group_id_of(client, cid) == group_id
        assert len(await client.conversations()) == 1


async def test_a_successor_with_a_stranger_in_it_is_refused(
    clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    (alice, bob, mallory), (alice_cid, bob_cid, _) = await club(clients, "alice", "bob", "mallory")
    eve = await clients.new("eve")
    eve_id = await contact(mallory, eve)
    group_id = await group_id_of(bob, bob_cid)
    before = await bob.group_epoch(bob_cid)
    assert before is not None
    old = await commit_reinit(mallory, group_id, HYBRID_SUITE)  # a suite clients follow

    async def followed() -> bool:
        return await bob.group_epoch(bob_cid) == before + 1

    await eventually(followed, "Bob's client to take the ReInit")
    # Mallory makes the new group herself, with Eve in it.
    session = mallory._require()
    key_packages = []
    for account in sorted(
        {x.account_id for x in group_members(old)} - {session.account.account_id}
    ):
        claimed = await claim_key_packages(session, account, (HYBRID_SUITE,))
        key_packages += [c.key_package for c in claimed]
    claimed = await claim_key_packages(session, eve_id, (HYBRID_SUITE,))
    key_packages += [c.key_package for c in claimed]
    bundle = new_key_package(
        session.account, session.random, now=session.now_s(), suite=HYBRID_SUITE
    )
    new, result = Group.reinit(old, bundle, key_packages, session.random, config=GROUP_CONFIG)
    create = m.CreateGroupRequest(
        new.group_id,
        new.group_info(),
        send_token_hash=send_token_hash(new),
        send_token=send_token(new),
    )
    token = next_send_token_hash(new, result.staged)
    next_token = next_send_token(new, result.staged)
    epoch_token = send_token(new)  # opens the new group's state (docs/metadata.md §2)
    new.merge(result.staged)
    members = group_members(new)
    me = session.account.client_id
    await session.transport.create_group(create)
    await session.transport.commit(
        new.group_id,
        m.CommitRequest(
            epoch=0,
            commit=result.message,
            members=tuple(queues_of(members)),
            welcome=result.welcome,
            welcome_to=tuple(queues_of([x for x in members if x.client_id != me])),
            send_token_hash=token,
            claims=session.transport.claim_tokens.take(key_packages),
            next_token=next_token,
            token=epoch_token,
        ),
        sealed=False,
    )
    refused = "a new group whose members are not the old group's"

    async def both_refused() -> bool:
        return seen(caplog, refused) >= 2

    await eventually(both_refused, "Alice's and Bob's clients to refuse the successor")
    for client, cid in ((alice, alice_cid), (bob, bob_cid)):
        assert await group_id_of(client, cid) == group_id
        assert eve_id not in {x.account_id for x in await client.members(cid)}
        assert len(await client.conversations()) == 1
