"""A group that cannot go on is started again (messenger/client/group_restart.py).

Commits are sealed, so the server accepts whatever a member commits as the
next epoch. Mallory, a member of "club" with Alice, Bob and Carol, breaks it:

* with a commit nobody can process (a real commit, its ciphertext changed):
  every member marks the group stuck when MLS refuses it, and the timeline
  says so;
* with a valid commit carrying a wrong ``next_token``: everyone processes it,
  and the first send fails ``unknown_group``; the sender marks it stuck, a
  member who sent nothing finds out from the server when a branch comes.

Alice starts the conversation again without Mallory: a branch of the last
shared epoch (RFC 9420 §11.3); the others follow it, the conversation and
its history stay, messages flow again, Mallory gets nothing of it. A member
cannot branch a group that works (Bob refuses Mallory's branch that leaves
Alice out), nor start one again; two members starting again at once end up
in one group, the one with the smaller ID.

Against the real server app in process; Mallory uses ``messenger.mls``.
"""

from __future__ import annotations

import logging
import os

import pytest

from messenger.api import models as m
from messenger.api.sealed import token_digest
from messenger.client import MessengerClient
from messenger.client.contact_tokens import claim_key_packages
from messenger.client.errors import NotAllowedError
from messenger.client.groups import GROUP_CONFIG, group_members, new_key_package
from messenger.client.sealed_sending import next_send_token, send_token
from messenger.client.store.messages import MessageStatus, NoteKind
from messenger.client.successor_groups import first_commit, start_group
from messenger.mls.group import Group

from .helpers import account_id, texts
from .in_process import InProcessServer
from .test_disappearing_cli import cli

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle(*clients: MessengerClient) -> None:
    """Every client reads and sends what waits, twice (moves, then their echoes)."""
    for _ in range(3):
        for client in clients:
            await client.sync()
            await client.flush(FLUSH)


async def club(
    server: InProcessServer,
) -> tuple[dict[str, MessengerClient], dict[str, int], bytes]:
    """Alice's group "club" with Bob, Carol and Mallory, settled: the clients,
    each one's conversation ID, and the group's ID."""
    names = ("alice", "bob", "carol", "mallory")
    people = {n: await server.client(n) for n in names}
    for client in people.values():
        await client.sync()
    alice = people["alice"]
    chat = await alice.create_group(
        "club", [await account_id(people[n]) for n in ("bob", "carol", "mallory")]
    )
    await alice.send_text(chat.id, "welcome")
    await settle(*people.values())
    ids = {"alice": chat.id}
    for name in names[1:]:
        (view,) = await people[name].conversations()
        ids[name] = view.id
        assert await texts(people[name], view.id) == ["welcome"]
    epochs = {await people[n].group_epoch(ids[n]) for n in names}
    assert len(epochs) == 1, "everyone at one epoch"
    return people, ids, chat.group_id


async def mallory_commits(
    mallory: MessengerClient, group_id: bytes, *, junk: bool = False, bogus_token: bool = False
) -> None:
    """Mallory commits a self-update at the group's epoch, sealed: its
    ciphertext changed (``junk``), or with a wrong ``next_token``."""
    session = mallory._require()
    async with session.group_lock(group_id):
        group = await session.groups.get(group_id)
        assert group is not None
        session.groups.evict(group_id)  # her client does not keep it
        result = group.commit(session.random, include_pending=False)
        message = result.message
        if junk:
            message = message[:-1] + bytes([message[-1] ^ 1])  # the AEAD tag fails
        token = os.urandom(32) if bogus_token else next_send_token(group, result.staged)
        assert token is not None
        await session.transport.commit(
            group_id,
            m.CommitRequest(
                epoch=group.epoch,
                commit=message,
                members=tuple(sorted({x.queue_id for x in group_members(group) if x.queue_id})),
                idempotency_key=os.urandom(16),
                send_token_hash=token_digest(token),
                token=send_token(group),
                next_token=token,
            ),
            sealed=True,
        )


async def send_branch(mallory: MessengerClient, group_id: bytes, victim: str) -> None:
    """Mallory branches her copy of the group (its epoch as her store has it)
    with the victim's claimed KeyPackages and sends the Welcome, as the app would."""
    session = mallory._require()
    async with session.group_lock(group_id):
        old = await session.groups.get(group_id)
        assert old is not None
        session.groups.evict(group_id)
    suite = old.suite.suite_id
    claimed = await claim_key_packages(session, victim, (suite,))  # a shared group's token
    key_packages = [c.key_package for c in claimed]
    bundle = new_key_package(
        await session.leaf_account(), session.random, now=session.now_s(), suite=suite
    )
    new, result = Group.branch(
        old, bundle, key_packages, session.random, group_id=os.urandom(32), config=GROUP_CONFIG
    )
    claims = session.transport.claim_tokens.take(key_packages)
    first = first_commit(new, result, session.account.client_id, claims, session.random)
    await start_group(session, new.group_id, first)


async def notes(client: MessengerClient, conversation_id: int) -> list[NoteKind]:
    return [
        v.message.note.kind
        for v in await client.messages(conversation_id)
        if v.message.note is not None
    ]


async def stuck(client: MessengerClient, conversation_id: int) -> bool:
    return (await client.conversation(conversation_id)).stuck


async def member_accounts(client: MessengerClient, conversation_id: int) -> set[str]:
    return {x.account_id for x in await client.members(conversation_id)}


async def group_of(client: MessengerClient, conversation_id: int) -> bytes:
    return (await client.conversation(conversation_id)).conversation.group_id


async def test_a_commit_nobody_can_process_is_found_and_the_group_started_again(
    server: InProcessServer,
) -> None:
    people, ids, group_id = await club(server)
    alice, bob, carol, mallory = (people[n] for n in ("alice", "bob", "carol", "mallory"))
    mallory_id = await account_id(mallory)
    for name in ("alice", "bob", "carol"):
        assert not await stuck(people[name], ids[name])
    await mallory_commits(mallory, group_id, junk=True)

    for name in ("alice", "bob", "carol"):
        await people[name].sync()
        assert await stuck(people[name], ids[name]), f"{name} found the group stuck"
        listed = {v.id: v.stuck for v in await people[name].conversations()}
        assert listed[ids[name]], "the list says so too"
        assert (await notes(people[name], ids[name])).count(NoteKind.STUCK) == 1
    await bob.send_text(ids["bob"], "anyone?")  # waits, then fails: the group cannot go on
    await bob.flush(FLUSH)
    failed = [
        v.message.status for v in await bob.messages(ids["bob"]) if v.message.body == "anyone?"
    ]
    assert failed == [MessageStatus.FAILED]

    everyone = [await account_id(people[n]) for n in ("bob", "carol", "mallory")]
    with pytest.raises(NotAllowedError, match="added"):  # nobody left to start it with
        await alice.restart_conversation(ids["alice"], leave_out=everyone)
    assert await group_of(alice, ids["alice"]) == group_id and await stuck(alice, ids["alice"])

    await alice.restart_conversation(ids["alice"], leave_out=[mallory_id])
    await settle(alice, bob, carol)

    new_group = await group_of(alice, ids["alice"])
    assert new_group != group_id
    for name in ("alice", "bob", "carol"):
        client, cid = people[name], ids[name]
        assert await group_of(client, cid) == new_group, f"{name} follows the new group"
        assert not await stuck(client, cid)
        assert not {v.id: v.stuck for v in await client.conversations()}[cid]
        assert mallory_id not in await member_accounts(client, cid)
        assert NoteKind.RESTARTED in await notes(client, cid)
        assert "welcome" in await texts(client, cid), "the history is kept"
    await alice.send_text(ids["alice"], "we are back")
    await carol.send_text(ids["carol"], "hello again")
    await settle(alice, bob, carol)
    for name in ("alice", "bob", "carol"):
        got = await texts(people[name], ids[name])
        assert "we are back" in got and "hello again" in got
    await mallory.sync()
    assert "we are back" not in await texts(mallory, ids["mallory"])
    assert await group_of(mallory, ids["mallory"]) == group_id


async def test_a_wrong_send_token_is_found_and_a_silent_member_follows(
    server: InProcessServer,
) -> None:
    people, ids, group_id = await club(server)
    alice, bob, carol, mallory = (people[n] for n in ("alice", "bob", "carol", "mallory"))
    await mallory_commits(mallory, group_id, bogus_token=True)
    for client in (alice, bob, carol):
        await client.sync()  # a valid commit: everyone moves to its epoch
    epoch = await alice.group_epoch(ids["alice"])
    assert {await people[n].group_epoch(ids[n]) for n in ("bob", "carol")} == {epoch}
    assert not await stuck(alice, ids["alice"])

    await alice.send_text(ids["alice"], "hello?")
    await alice.flush(FLUSH)
    assert await stuck(alice, ids["alice"]), "the server refuses every token of the epoch"
    assert not await stuck(bob, ids["bob"]), "Bob sent nothing: he does not know yet"
    with pytest.raises(NotAllowedError):
        await mallory.restart_conversation(ids["mallory"])  # works for her: nothing to do

    await alice.restart_conversation(ids["alice"], leave_out=[await account_id(mallory)])
    await settle(alice, bob, carol)

    new_group = await group_of(alice, ids["alice"])
    for name in ("bob", "carol"):
        assert await group_of(people[name], ids[name]) == new_group
    assert await stuck(bob, ids["bob"]) is False
    await bob.send_text(ids["bob"], "all good")
    await settle(alice, bob, carol)
    assert "all good" in await texts(alice, ids["alice"])
    assert "all good" in await texts(carol, ids["carol"])


async def test_a_branch_of_a_group_that_works_is_refused(
    server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    people, ids, group_id = await club(server)
    alice, bob, mallory = people["alice"], people["bob"], people["mallory"]
    with pytest.raises(NotAllowedError):
        await alice.restart_conversation(ids["alice"])
    # Mallory branches the group that works, with Bob and without Alice and Carol.
    await send_branch(mallory, group_id, await account_id(bob))

    await bob.sync()

    assert any(
        "a Welcome branching from a group that works here" in r.getMessage() for r in caplog.records
    )
    assert await group_of(bob, ids["bob"]) == group_id
    assert await member_accounts(bob, ids["bob"]) >= {await account_id(alice)}
    assert not await stuck(bob, ids["bob"])
    await alice.send_text(ids["alice"], "still here")
    await settle(alice, bob)
    assert "still here" in await texts(bob, ids["bob"])


async def test_a_removed_members_branch_is_refused_even_when_the_group_is_stuck(
    server: InProcessServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Mallory, removed, keeps her state of the epoch before; when the group is
    stuck later, her branch of it is refused (it starts from an epoch Bob has
    left behind, and she lacks the PSK of his), and Bob can still start it again."""
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    people, ids, group_id = await club(server)
    alice, bob, carol, mallory = (people[n] for n in ("alice", "bob", "carol", "mallory"))
    await alice.remove_member(ids["alice"], await account_id(mallory))
    await settle(alice, bob, carol)
    await mallory_commits(carol, group_id, junk=True)  # a member breaks it
    for client in (alice, bob, carol):
        await client.sync()
    assert await stuck(bob, ids["bob"])

    await send_branch(mallory, group_id, await account_id(bob))
    await bob.sync()

    assert any(
        "a Welcome branching from an epoch this client has left behind" in r.getMessage()
        for r in caplog.records
    )
    assert await group_of(bob, ids["bob"]) == group_id
    await bob.restart_conversation(ids["bob"], leave_out=[await account_id(carol)])
    await settle(alice, bob)
    assert await group_of(alice, ids["alice"]) == await group_of(bob, ids["bob"]) != group_id


async def test_two_members_starting_again_at_once_end_up_in_one_group(
    server: InProcessServer,
) -> None:
    people, ids, group_id = await club(server)
    alice, bob, carol, mallory = (people[n] for n in ("alice", "bob", "carol", "mallory"))
    mallory_id = await account_id(mallory)
    await mallory_commits(mallory, group_id, junk=True)
    for client in (alice, bob, carol):
        await client.sync()

    await alice.restart_conversation(ids["alice"], leave_out=[mallory_id])
    await bob.restart_conversation(ids["bob"], leave_out=[mallory_id])  # before reading Alice's
    first = await group_of(alice, ids["alice"])
    second = await group_of(bob, ids["bob"])
    assert first != second
    await settle(alice, bob, carol)

    kept = min(first, second)
    for name in ("alice", "bob", "carol"):
        assert await group_of(people[name], ids[name]) == kept, f"{name} keeps the smaller ID"
    await carol.send_text(ids["carol"], "one group")
    await settle(alice, bob, carol)
    assert "one group" in await texts(alice, ids["alice"])
    assert "one group" in await texts(bob, ids["bob"])


async def test_the_cli_starts_again_only_a_conversation_that_cannot_go_on(
    server: InProcessServer,
) -> None:
    people, ids, group_id = await club(server)
    alice = people["alice"]
    with pytest.raises(NotAllowedError, match="works"):
        await cli(alice, "restart", str(ids["alice"]))
    assert await group_of(alice, ids["alice"]) == group_id
    await mallory_commits(people["mallory"], group_id, junk=True)

    out = await cli(alice, "restart", str(ids["alice"]))  # syncs first: finds it stuck

    assert f"Conversation {ids['alice']} started again" in out
    assert await group_of(alice, ids["alice"]) != group_id
    assert "started the conversation again" in await cli(alice, "history", str(ids["alice"]))
