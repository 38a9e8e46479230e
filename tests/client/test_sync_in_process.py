"""Both sync halves against the real server app, in process (no socket, no subprocess).

The clients reach :func:`messenger.server.create_app` through httpx-ws's
ASGI transport (:mod:`.in_process`). Most tests do not start them: they
drive the outbox with :meth:`MessengerClient.flush` and the inbound pipeline
with :meth:`MessengerClient.sync`, so the order of events is the test's and
nothing waits on a clock. The last one starts both, so that the background
outbox and the push listener (over the WebSocket) do the work. The
transport records every exchange, so a test can check what went over the
wire (a ``stale_epoch`` refusal, a retry with the same idempotency key) and
not only the outcome.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from messenger.api import routes as r
from messenger.client import (
    MessageStatus,
    MessageStatusChanged,
    MessengerClient,
    OperationFailed,
)

from .helpers import account_id, texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

#: Bounds every flush: a bug shows as a timeout, not as a hang.
FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def joined(client: MessengerClient) -> int:
    """Process the queue; the one conversation it has."""
    await client.sync()
    (view,) = await client.conversations()
    return view.id


async def group_of(client: MessengerClient, conversation_id: int) -> bytes:
    view = await client.conversation(conversation_id)
    group_id = view.conversation.group_id
    assert group_id is not None
    return group_id


async def pair(
    server: InProcessServer, name: str = "race"
) -> tuple[MessengerClient, MessengerClient, int, int]:
    """Alice and Bob in a group Alice made, both idle and up to date; the conversations."""
    alice = await server.client("alice")
    bob = await server.client("bob")
    group = await alice.create_group(name.title(), [await account_id(bob)])
    await alice.flush(FLUSH)
    bob_group = await joined(bob)
    await bob.flush(FLUSH)  # his profile message for the group
    await alice.sync()
    return alice, bob, group.id, bob_group


async def test_welcome_join_and_messages_both_ways(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await account_id(bob))
    await alice.send_text(chat.id, "hi Bob")
    await alice.flush(FLUSH)

    # Bob joins by the Welcome, then reads the message sent in the new epoch.
    bob_chat = await joined(bob)
    assert await group_of(bob, bob_chat) == await group_of(alice, chat.id)
    assert await bob.group_epoch(bob_chat) == await alice.group_epoch(chat.id)
    assert await texts(bob, bob_chat) == ["hi Bob"]

    await bob.send_text(bob_chat, "hi Alice")
    await bob.flush(FLUSH)
    await alice.sync()
    assert await texts(alice, chat.id) == ["hi Bob", "hi Alice"]
    # Each saw its own message come back from the server as sent, not twice.
    await bob.sync()
    assert await texts(bob, bob_chat) == ["hi Bob", "hi Alice"]
    for client, cid in ((alice, chat.id), (bob, bob_chat)):
        own = [v.message for v in await client.messages(cid) if v.message.outgoing]
        assert [m.status for m in own] == [MessageStatus.SENT]


async def test_stale_epoch_race_is_resolved_by_fetch_and_rebuild(
    server: InProcessServer,
) -> None:
    alice, bob, group, bob_group = await pair(server)
    epoch = await alice.group_epoch(group)
    assert epoch is not None and epoch == await bob.group_epoch(bob_group)
    commits = r.group_path(r.GROUP_COMMITS, await group_of(alice, group))

    # Both commit in the same epoch; Alice's reaches the server first.
    await alice.rename(group, "Alice's name")
    await bob.rename(bob_group, "Bob's name")
    await alice.flush(FLUSH)
    before = len(server.wire.sent("POST", commits))
    await bob.flush(FLUSH)

    # Bob was refused, fetched and processed Alice's commit, rebuilt his own
    # for the new epoch, and it was accepted.
    bob_tries = server.wire.sent("POST", commits)[before:]
    assert [(x.status, x.error) for x in bob_tries] == [(409, "stale_epoch"), (200, None)]
    assert bob_tries[0].body != bob_tries[1].body
    await alice.sync()
    assert await alice.group_epoch(group) == await bob.group_epoch(bob_group) == epoch + 2
    assert (await alice.conversation(group)).name == "Bob's name"
    assert (await bob.conversation(bob_group)).name == "Bob's name"

    # The group still works both ways in the epoch they agree on.
    await alice.send_text(group, "after the race")
    await alice.flush(FLUSH)
    await bob.sync()
    assert await texts(bob, bob_group) == ["after the race"]


async def test_a_retry_after_a_lost_answer_is_delivered_once(server: InProcessServer) -> None:
    alice, bob, group, bob_group = await pair(server)
    messages = r.group_path(r.GROUP_MESSAGES, await group_of(alice, group))
    stored = server.counter("messages_stored", kind="application")
    deliveries = server.counter("deliveries")
    before = len(server.wire.sent("POST", messages))
    server.wire.lose_answer_once(lambda req: req.method == "POST" and req.url.path == messages)

    sent = await alice.send_text(group, "once")
    await alice.flush(FLUSH)

    # The server got the request twice, with the same body and idempotency
    # key; it answered the retry from the key instead of delivering again.
    first, retry = server.wire.sent("POST", messages)[before:]
    assert (first.status, retry.status) == (None, 200)
    assert first.body == retry.body
    assert server.counter("messages_stored", kind="application") == stored + 1
    assert server.counter("deliveries") == deliveries + 2  # Bob's queue, and Alice's echo
    assert (await alice.message(sent.id)).message.status is MessageStatus.SENT
    await bob.sync()
    assert await texts(bob, bob_group) == ["once"]


async def test_a_permanent_refusal_marks_the_message_failed(server: InProcessServer) -> None:
    alice, bob, group, bob_group = await pair(server)
    await alice.remove_member(group, await account_id(bob))
    await alice.flush(FLUSH)
    events = bob.events()

    # Bob has not heard of his removal yet and sends to the group. The server
    # refuses (his token is not the epoch's: to him the group does not exist);
    # catching up, Bob learns he was removed, so he registers no token, and
    # the item is given up after that one attempt, and the flush returns.
    sent = await bob.send_text(bob_group, "too late")
    mark = len(server.wire.exchanges)
    await bob.flush(FLUSH)
    group_path = r.group_path(r.GROUP_MESSAGES, await group_of(bob, bob_group))
    prefix = group_path.rsplit("/", 1)[0]
    attempts = [
        (x.method, x.path, x.status, x.error)
        for x in server.wire.exchanges[mark:]
        if x.path.startswith(prefix)
    ]
    assert attempts == [("POST", group_path, 404, "unknown_group")]

    assert (await bob.message(sent.id)).message.status is MessageStatus.FAILED
    seen = events.pending()
    events.close()
    assert any(isinstance(e, OperationFailed) and e.conversation_id == bob_group for e in seen)
    assert MessageStatusChanged(bob_group, sent.id, MessageStatus.FAILED) in seen
    await alice.sync()
    assert await texts(alice, group) == []


async def until_text(client: MessengerClient, body: str) -> int:
    """Wait (with a deadline) until a conversation of ``client`` ends with ``body``."""
    events = client.events()
    try:
        async with asyncio.timeout(FLUSH):
            while True:
                for view in await client.conversations():
                    if (await texts(client, view.id))[-1:] == [body]:
                        return view.id
                await anext(aiter(events))  # something changed: look again
    except TimeoutError:
        pytest.fail(f"timed out waiting for {body!r}")
    finally:
        events.close()


async def test_started_clients_talk_over_the_push_socket(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    await alice.start()
    await bob.start()
    await alice.wait_online(FLUSH)
    await bob.wait_online(FLUSH)
    pushed = server.counter("pushed_messages")

    # Background outboxes send; push listeners receive over the WebSocket.
    chat = await alice.create_conversation(await account_id(bob))
    await alice.send_text(chat.id, "pushed to Bob")
    bob_chat = await until_text(bob, "pushed to Bob")
    await bob.send_text(bob_chat, "pushed to Alice")
    assert await until_text(alice, "pushed to Alice") == chat.id
    assert server.counter("pushed_messages") > pushed


async def test_a_commit_built_behind_a_removal_is_built_again_after_catching_up(
    server: InProcessServer,
) -> None:
    """The server reads the state of a group sealed under its members' keys only
    with a token of an epoch since the last removal (docs/metadata.md §2): a
    commit built two epochs behind, across a removal, is refused sealed and
    signed alike (``unknown_group``), as a stranger's. The client catches up
    and builds it again, instead of giving it up."""
    alice = await server.client("alice")
    bob = await server.client("bob")
    carol = await server.client("carol")
    view = await alice.create_group("Before", [await account_id(bob), await account_id(carol)])
    group = view.id
    await alice.flush(FLUSH)
    bob_group = await joined(bob)
    await joined(carol)
    for member in (bob, carol):
        await member.flush(FLUSH)
    await alice.sync()
    await alice.rename(group, "Alice's")
    await alice.remove_member(group, await account_id(carol))
    await alice.flush(FLUSH)
    # Bob has seen neither commit, and renames the group.
    await bob.rename(bob_group, "Bob's")
    commits = r.group_path(r.GROUP_COMMITS, await group_of(bob, bob_group))
    mark = len(server.wire.exchanges)
    await bob.flush(FLUSH)
    attempts = [
        (x.status, x.error)
        for x in server.wire.exchanges[mark:]
        if x.method == "POST" and x.path == commits
    ]
    assert attempts == [(404, "unknown_group"), (404, "unknown_group"), (200, None)]
    await alice.sync()
    names = {v.id: v.name for v in await alice.conversations()}
    assert names[group] == "Bob's"


async def test_a_send_follows_a_group_that_moves_on_twice(server: InProcessServer) -> None:
    """A sealed send whose token is an epoch behind is refused as a stranger's
    (``unknown_group``); the client catches up and builds it again -- each
    time the group moved on, not only the first (new members' moves come in
    a row, docs/metadata.md §1). Here Alice commits just before each of
    Bob's first two attempts reaches the server; the third gets through,
    and the message is not given up."""
    alice, bob, group, bob_group = await pair(server)
    messages = r.group_path(r.GROUP_MESSAGES, await group_of(bob, bob_group))
    renames = iter(["One", "Two"])

    async def alice_commits() -> None:
        await alice.sync()
        await alice.rename(group, next(renames))
        await alice.flush(FLUSH)

    def bobs_send(request: httpx.Request) -> bool:
        return request.method == "POST" and request.url.path == messages

    server.wire.before_once(bobs_send, alice_commits)
    server.wire.before_once(bobs_send, alice_commits)
    sent = await bob.send_text(bob_group, "through the moves")
    mark = len(server.wire.exchanges)
    await bob.flush(FLUSH)

    attempts = [(x.status, x.error) for x in server.wire.sent("POST", messages)]
    tried = [(x.status, x.error) for x in server.wire.exchanges[mark:] if x.path == messages]
    assert tried == [(404, "unknown_group"), (404, "unknown_group"), (200, None)], attempts
    assert (await bob.message(sent.id)).message.status is MessageStatus.SENT
    await alice.sync()
    assert await texts(alice, group) == ["through the moves"]
    assert (await bob.conversation(bob_group)).name == "Two"
