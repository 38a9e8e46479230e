"""End to end: a real server process on loopback, clients with separate stores.

Covers the whole path -- sign-up with proof of work, contacts, one-to-one
and group conversations over MLS, edits, replies and reactions, a client
that was offline catching up, concurrent commits resolved through
``stale_epoch``, and a client killed in the middle of a send that delivers
its message exactly once after a restart with its group state intact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from messenger.api import routes as r
from messenger.client import (
    ConnectionState,
    ConnectionStateChanged,
    ConversationLeftError,
    MessageKind,
    MessageStatus,
    MessengerClient,
    TypingChanged,
)

from .conftest import (
    CLIENT_OPTIONS,
    PASSPHRASE,
    WAIT,
    Clients,
    ServerProcess,
    eventually,
    moves_settled,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.anyio


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    """The bodies of the conversation's non-system messages, oldest first."""
    return [
        v.message.body or "(deleted)"
        for v in await client.messages(conversation_id, limit=200)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def only_conversation(client: MessengerClient) -> int:
    await eventually(lambda: _has_conversations(client, 1), "a conversation to be joined")
    return (await client.conversations())[0].id


async def _has_conversations(client: MessengerClient, n: int) -> bool:
    return len(await client.conversations()) >= n


async def conversation_named(client: MessengerClient, name: str) -> int:
    async def found() -> bool:
        return any(v.name == name for v in await client.conversations())

    await eventually(found, f"the conversation {name!r}")
    return next(v.id for v in await client.conversations() if v.name == name)


async def wait_texts(client: MessengerClient, cid: int, expected: list[str], what: str) -> None:
    async def check() -> bool:
        return await texts(client, cid) == expected

    try:
        await eventually(check, what)
    except pytest.fail.Exception:
        pytest.fail(f"{what}: have {await texts(client, cid)!r}, want {expected!r}")


async def member_names(client: MessengerClient, cid: int) -> set[str]:
    return {m.account_id for m in await client.members(cid)}


# -- sign-up and a one-to-one chat ---------------------------------------------------------------


async def test_sign_up_and_one_to_one_chat_both_ways(
    clients: Clients, server: ServerProcess
) -> None:
    alice = await clients.new("alice", handle="alice1")
    bob = await clients.new("bob", handle="bob1")
    carol = await clients.new("carol")  # anonymous: no handle at all
    info = await alice.account()
    carol_info = await carol.account()
    assert info is not None and info.address == f"alice1@{server.host}"
    assert carol_info is not None and carol_info.handle is None

    # Contacts by handle@server and by invite link.
    bob_contact = await alice.add_contact(f"bob1@{server.host}")
    carol_contact = await alice.add_contact(carol_info.invite_link)
    assert carol_contact.account_id == carol_info.account_id

    chat = await alice.create_conversation(bob_contact.account_id)
    assert (await alice.create_conversation(bob_contact.account_id)).id == chat.id
    sent = await alice.send_text(chat.id, "Hello Bob")
    assert sent.status is MessageStatus.PENDING
    bob_chat = await only_conversation(bob)
    await wait_texts(bob, bob_chat, ["Hello Bob"], "Bob to receive Alice's message")
    await bob.send_text(bob_chat, "Hello Alice")
    await wait_texts(alice, chat.id, ["Hello Bob", "Hello Alice"], "Alice to get the answer")

    # Names travel inside the group; statuses move to sent, then read.
    view = await bob.conversation(bob_chat)
    assert view.name == "alice1" and view.unread == 1
    await alice.flush(WAIT)
    assert (await alice.message(sent.id)).message.status is MessageStatus.SENT
    assert await bob.mark_read(bob_chat)

    async def read() -> bool:
        return (await alice.message(sent.id)).message.status is MessageStatus.READ

    await eventually(read, "the read receipt")

    # Typing notices are events, not messages.
    bob_events = bob.events()
    await alice.typing(chat.id)

    async def typing_seen() -> bool:
        return any(isinstance(e, TypingChanged) and e.active for e in bob_events.pending())

    await eventually(typing_seen, "Bob to see Alice typing")
    bob_events.close()

    # The safety number is the same on both sides and changes with the keys.
    mine = await alice.safety_number(bob_contact.account_id)
    theirs = await bob.safety_number(info.account_id)
    assert mine.number == theirs.number and len(mine.number.groups) == 12
    assert not mine.verified
    assert (await alice.mark_verified(bob_contact.account_id)).verified

    # The anonymous account gets a message too.
    carol_chat = await alice.create_conversation(carol_contact.account_id)
    await alice.send_text(carol_chat.id, "Hi Carol")
    await wait_texts(
        carol, await only_conversation(carol), ["Hi Carol"], "Carol to receive Alice's message"
    )
    hits = await bob.search("alice")
    assert [h.message.body for h in hits] == ["Hello Alice"]


# -- a group: add, remove, edits, replies, reactions, rename, leave ------------------------------


async def test_group_with_add_remove_edits_replies_and_reactions(clients: Clients) -> None:
    alice = await clients.new("alice", handle="alice2")
    bob = await clients.new("bob", handle="bob2")
    carol = await clients.new("carol", handle="carol2")
    dave = await clients.new("dave", handle="dave2")
    ids = {}
    for name, client in (("bob", bob), ("carol", carol), ("dave", dave)):
        account = await client.account()
        assert account is not None and account.address is not None
        ids[name] = (await alice.add_contact(account.address)).account_id
    alice_id = (await alice.account()).account_id  # type: ignore[union-attr]

    group = await alice.create_group("Trip", [ids["bob"]])
    await alice.send_text(group.id, "Welcome to the trip")
    bob_group = await conversation_named(bob, "Trip")
    await wait_texts(bob, bob_group, ["Welcome to the trip"], "Bob to join and read")

    await alice.add_members(group.id, [ids["carol"]])
    carol_group = await conversation_named(carol, "Trip")

    async def three_members() -> bool:
        expected = {alice_id, ids["bob"], ids["carol"]}
        return all(
            [
                await member_names(c, g) == expected
                for c, g in ((alice, group.id), (bob, bob_group), (carol, carol_group))
            ]
        )

    await eventually(three_members, "all three to see three members")

    # A reply, a reaction, an edit and a delete.
    await carol.send_text(carol_group, "Hi all")
    await wait_texts(alice, group.id, ["Welcome to the trip", "Hi all"], "Carol's hello")
    await eventually(lambda: _last_is(bob, bob_group, "Hi all"), "Bob to get Carol's hello")
    his = (await bob.messages(bob_group))[-1]
    await bob.reply(bob_group, his.id, "Hi Carol")
    carol_hi = next(v for v in await carol.messages(carol_group) if v.message.body == "Hi all")
    at_alice = next(v for v in await alice.messages(group.id) if v.message.body == "Hi all")
    await alice.react(group.id, at_alice.id, "🎉")
    await eventually(
        lambda: _reaction_on(carol, carol_group, carol_hi.id, "🎉"), "Alice's reaction at Carol's"
    )
    welcome = next(v for v in await alice.messages(group.id) if v.message.outgoing)
    await alice.edit(group.id, welcome.id, "Welcome to the trip (Lisbon)")
    expected = ["Welcome to the trip (Lisbon)", "Hi all", "Hi Carol"]
    await wait_texts(bob, bob_group, expected, "the edit and the reply at Bob's")
    # Carol joined after the first message: MLS gives her no history.
    await wait_texts(carol, carol_group, ["Hi all", "Hi Carol"], "the reply at Carol's")
    reply = (await carol.messages(carol_group))[-1]
    assert reply.reply_to is not None and reply.reply_to.body == "Hi all"
    bobs = next(v for v in await bob.messages(bob_group) if v.message.body == "Hi Carol")
    await bob.delete(bob_group, bobs.id)
    await wait_texts(
        alice, group.id, ["Welcome to the trip (Lisbon)", "Hi all", "(deleted)"], "the delete"
    )

    # Rename, then remove Bob: he sees it and can no longer send.
    await carol.rename(carol_group, "Lisbon trip")
    await conversation_named(alice, "Lisbon trip")
    await conversation_named(bob, "Lisbon trip")
    await alice.remove_member(group.id, ids["bob"])

    async def bob_removed() -> bool:
        return not (await bob.conversation(bob_group)).active

    await eventually(bob_removed, "Bob to learn he was removed")
    with pytest.raises(ConversationLeftError):
        await bob.send_text(bob_group, "still here?")
    await alice.send_text(group.id, "Bob is gone")
    await wait_texts(
        carol,
        carol_group,
        ["Hi all", "(deleted)", "Bob is gone"],
        "Carol to get messages after the removal",
    )
    assert "Bob is gone" not in await texts(bob, bob_group)

    # Dave joins, then Carol leaves by herself (Alice or Dave commits her proposal).
    await alice.add_members(group.id, [ids["dave"]])
    dave_group = await conversation_named(dave, "Lisbon trip")
    assert await texts(dave, dave_group) == []  # no history before joining (MLS)
    # Dave moves off his contact queue with a commit (docs/metadata.md §1); Carol
    # leaves once everyone has it, so that her proposal does not race it.
    await moves_settled((dave,), ((alice, group.id), (carol, carol_group), (dave, dave_group)))
    await carol.leave(carol_group)

    async def carol_left() -> bool:
        return not (await carol.conversation(carol_group)).active and await member_names(
            alice, group.id
        ) == {alice_id, ids["dave"]}

    await eventually(carol_left, "Carol's leave to be committed")
    await dave.send_text(dave_group, "Hi, Dave here")
    await eventually(lambda: _last_is(alice, group.id, "Hi, Dave here"), "Dave's message")
    notes = [v.message.body for v in await alice.messages(group.id) if v.message.kind == "system"]
    assert any("left" in (n or "") for n in notes), "|".join(n or "" for n in notes)
    assert await alice.group_epoch(group.id) == await dave.group_epoch(dave_group)


async def _last_is(client: MessengerClient, cid: int, body: str) -> bool:
    got = await texts(client, cid)
    return bool(got) and got[-1] == body


async def _reaction_on(client: MessengerClient, cid: int, message_id: int, emoji: str) -> bool:
    view = await client.message(message_id)
    assert view.message.conversation_id == cid
    return any(r.emoji == emoji for r in view.reactions)


# -- offline, then catching up ------------------------------------------------------------------


async def test_offline_client_catches_up(clients: Clients) -> None:
    alice = await clients.new("alice", handle="alice3")
    carol = await clients.new("carol", handle="carol3")
    carol_id = (await carol.account()).account_id  # type: ignore[union-attr]
    group = await alice.create_group("Book club", [carol_id])
    await alice.send_text(group.id, "first")
    carol_group = await conversation_named(carol, "Book club")
    await wait_texts(carol, carol_group, ["first"], "the first message")
    epoch_before = await carol.group_epoch(carol_group)

    await clients.close(carol)  # offline
    for i in range(25):
        await alice.send_text(group.id, f"while away {i}")
    await alice.rename(group.id, "Book club 2")
    await alice.send_text(group.id, "after the rename")
    await alice.flush(WAIT)

    carol = await clients.open("carol")
    events = carol.events()
    await carol.wait_online(WAIT)
    expected = ["first", *(f"while away {i}" for i in range(25)), "after the rename"]
    await wait_texts(carol, carol_group, expected, "Carol to catch up")
    assert (await carol.conversation(carol_group)).name == "Book club 2"
    assert await carol.group_epoch(carol_group) == await alice.group_epoch(group.id)
    assert epoch_before is not None and await carol.group_epoch(carol_group) == epoch_before + 1
    seen = [e for e in events.pending() if isinstance(e, ConnectionStateChanged)]
    events.close()
    assert seen and seen[-1].state is ConnectionState.ONLINE

    # And she answers in the new epoch.
    await carol.send_text(carol_group, "back online")
    await eventually(lambda: _last_is(alice, group.id, "back online"), "Carol's answer")


# -- concurrent commits -------------------------------------------------------------------------


async def test_concurrent_commits_are_resolved(clients: Clients, server: ServerProcess) -> None:
    alice = await clients.new("alice", handle="alice4")
    bob = await clients.new("bob", handle="bob4", start=False)
    carol = await clients.new("carol", handle="carol4", start=False)
    dave = await clients.new("dave", handle="dave4")
    bob_id = (await bob.account()).account_id  # type: ignore[union-attr]
    carol_id = (await carol.account()).account_id  # type: ignore[union-attr]
    dave_address = (await dave.account()).address  # type: ignore[union-attr]
    group = await alice.create_group("Race", [bob_id, carol_id])
    await alice.flush(WAIT)
    await bob.sync()
    await carol.sync()
    bob_group = await conversation_named(bob, "Race")
    carol_group = await conversation_named(carol, "Race")
    assert dave_address is not None
    dave_id = (await carol.add_contact(dave_address)).account_id
    stale_before = server.metric("messenger_commits_total", outcome="stale")

    # Bob and Carol both commit in the same epoch; Alice sends meanwhile.
    await bob.rename(bob_group, "Race (renamed by Bob)")
    await carol.add_members(carol_group, [dave_id])
    await asyncio.gather(
        bob.flush(WAIT), carol.flush(WAIT), alice.send_text(group.id, "during the race")
    )
    assert server.metric("messenger_commits_total", outcome="stale") > stale_before
    await bob.start()
    await carol.start()

    async def converged() -> bool:
        epochs = {
            await alice.group_epoch(group.id),
            await bob.group_epoch(bob_group),
            await carol.group_epoch(carol_group),
        }
        names = {
            (await alice.conversation(group.id)).name,
            (await bob.conversation(bob_group)).name,
            (await carol.conversation(carol_group)).name,
        }
        members = await member_names(bob, bob_group)
        return len(epochs) == 1 and names == {"Race (renamed by Bob)"} and dave_id in members

    await eventually(converged, "the three members to agree after the race")
    dave_group = await conversation_named(dave, "Race (renamed by Bob)")
    await bob.send_text(bob_group, "we agree")
    for client, cid in ((alice, group.id), (carol, carol_group), (dave, dave_group)):
        await eventually(lambda c=client, i=cid: _last_is(c, i, "we agree"), "the last message")
    assert "during the race" in await texts(bob, bob_group)


# -- killed mid-send ----------------------------------------------------------------------------


def _cli(clients: Clients, name: str, *args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, MESSENGER_PASSPHRASE=PASSPHRASE)
    command = [
        sys.executable,
        "-m",
        "messenger.client",
        "--data-dir",
        str(clients.data_dir(name)),
        "--profile",
        name,
        "--no-keyring",
        *args,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _paused_sender(
    clients: Clients, name: str, conversation_id: int, text: str, point: str, marker: Path
) -> subprocess.Popen[bytes]:
    """A client process that sends ``text`` and stops for good at ``point`` of the send."""
    env = dict(os.environ, MESSENGER_PASSPHRASE=PASSPHRASE)
    script = Path(__file__).with_name("paused_sender.py")
    command = [
        sys.executable,
        str(script),
        str(clients.data_dir(name)),
        name,
        str(conversation_id),
        text,
        point,
        str(marker),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def _killed_at(proc: subprocess.Popen[bytes], marker: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the sender exited before the pause point: {out!r} {err!r}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the sender did not reach the pause point")
        await asyncio.sleep(0.05)
    proc.kill()  # SIGKILL: no cleanup, no flush, no finally
    proc.communicate(timeout=10)


async def _run_cli(proc: subprocess.Popen[bytes]) -> str:
    out, err = await asyncio.to_thread(proc.communicate, None, WAIT * 2)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.parametrize(
    ("point", "restart"),
    [
        ("before_send", "cli"),  # the outbox row is written, nothing sent yet
        ("after_send", "cli"),  # the server has it; the restart meets the echo first
        ("after_send", "resend"),  # the server has it; the restart sends it again first
    ],
)
async def test_killed_mid_send_delivers_exactly_once(
    clients: Clients, server: ServerProcess, tmp_path: Path, point: str, restart: str
) -> None:
    alice = await clients.new("alice", handle=f"alice5{point[0]}{restart[0]}")
    bob = await clients.new("bob", handle=f"bob5{point[0]}{restart[0]}")
    bob_id = (await bob.account()).account_id  # type: ignore[union-attr]
    group = await alice.create_group("Durable", [bob_id])
    await alice.send_text(group.id, "before the crash")
    bob_group = await conversation_named(bob, "Durable")
    await wait_texts(bob, bob_group, ["before the crash"], "the first message")
    await alice.flush(WAIT)
    epoch = await alice.group_epoch(group.id)
    await clients.close(alice)

    # A client process sends and is killed with SIGKILL at the pause point.
    marker = tmp_path / "paused"
    proc = _paused_sender(clients, "alice", group.id, "exactly once", point, marker)
    await _killed_at(proc, marker)
    stored_before = server.metric("messenger_messages_stored_total", kind="application")

    # Restarted, it delivers what is left in its outbox.
    if restart == "cli":
        await _run_cli(_cli(clients, "alice", "sync"))
        alice = await clients.open("alice")
    else:
        alice = await clients.open("alice", start=False)
        await alice.flush(WAIT)  # the retry carries the same idempotency key
        await alice.start()
    expected = ["before the crash", "exactly once"]
    await wait_texts(bob, bob_group, expected, "Bob to get the message once")
    stored = server.metric("messenger_messages_stored_total", kind="application")
    assert stored - stored_before == (1 if point == "before_send" else 0)

    # Alice's store agrees, and her group state still works both ways.
    assert await texts(alice, group.id) == expected
    sent = [v.message for v in await alice.messages(group.id) if v.message.outgoing]
    assert [m.status for m in sent] == [MessageStatus.SENT, MessageStatus.SENT]
    assert await alice.group_epoch(group.id) == epoch == await bob.group_epoch(bob_group)
    await alice.send_text(group.id, "after the restart")
    await wait_texts(bob, bob_group, [*expected, "after the restart"], "Bob to hear from Alice")
    await bob.send_text(bob_group, "welcome back")
    final = [*expected, "after the restart", "welcome back"]
    await wait_texts(alice, group.id, final, "Alice to hear from Bob")
    # No late duplicate: whatever Alice sent before reaches Bob's queue before
    # a last message sent once her outbox is empty.
    await alice.flush(WAIT)
    await alice.send_text(group.id, "the end")
    await eventually(lambda: _last_is(bob, bob_group, "the end"), "Alice's last message")
    assert await texts(bob, bob_group) == [*final, "the end"]


# -- the server goes away and comes back -----------------------------------------------------


class FailureCounter(httpx.AsyncBaseTransport):
    """Passes requests on; counts those that failed in the transport, by method and path."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self._failed: Counter[tuple[str, str]] = Counter()

    def failures(self, method: str, path: str) -> int:
        return self._failed[(method, path)]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self._failed[(request.method, request.url.path)] += 1
            raise

    async def aclose(self) -> None:
        """Kept open for the client's next transport; the test closes ``inner``."""


async def _group_id(client: MessengerClient, conversation_id: int) -> bytes:
    group_id = (await client.conversation(conversation_id)).conversation.group_id
    assert group_id is not None
    return group_id


async def test_reconnects_and_delivers_after_a_server_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    clients = Clients(tmp_path / "clients", server)
    counter = FailureCounter(httpx.AsyncHTTPTransport())
    try:
        options = dataclasses.replace(CLIENT_OPTIONS, http_transport=counter)
        alice = await clients.new("alice", handle="alice6", options=options)
        bob = await clients.new("bob", handle="bob6")
        bob_id = (await bob.account()).account_id  # type: ignore[union-attr]
        chat = await alice.create_conversation(bob_id)
        await alice.send_text(chat.id, "before")
        bob_chat = await only_conversation(bob)
        await wait_texts(bob, bob_chat, ["before"], "the first message")
        events = bob.events()

        port = int(server.url.rsplit(":", 1)[1])
        stop_server(server)

        async def offline() -> bool:
            seen = [e for e in events.pending() if isinstance(e, ConnectionStateChanged)]
            return any(e.state is ConnectionState.OFFLINE for e in seen)

        await eventually(offline, "Bob to notice the server is gone")
        sent = await alice.send_text(chat.id, "while the server was down")
        messages = r.group_path(r.GROUP_MESSAGES, await _group_id(alice, chat.id))

        async def failed_attempts() -> bool:
            return counter.failures("POST", messages) >= 3

        await eventually(failed_attempts, "a few failed attempts to send")
        assert (await alice.message(sent.id)).message.status is MessageStatus.PENDING

        server = start_server(tmp_path / "server", port)
        clients.server = server
        await wait_texts(
            bob, bob_chat, ["before", "while the server was down"], "delivery after the restart"
        )
        await alice.flush(WAIT)
        assert (await alice.message(sent.id)).message.status is MessageStatus.SENT
        events.close()
    finally:
        await clients.close_all()
        await counter.inner.aclose()
        stop_server(server)
