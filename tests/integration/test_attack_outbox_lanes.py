"""One conversation's stuck sends never hold up the others.

Mallory, a member of two groups with Bob, makes them unusable for him at
the server: to "wedged" she commits bytes nobody can process (the server
accepts a member's commit and moves the epoch; Bob's client cannot follow),
and from "kicked" she removes Bob's queue with such a commit (Bob's client
does not learn it). Bob then writes to both, and to Alice one-to-one.

Required: Bob's one-to-one messages go out at once, past the stuck ones;
each stuck message ends ``failed`` (a typed permanent error: out of step,
or not a member), the UI is told, and it was tried a bounded number of
times -- not retried forever at the head of the outbox.

Real server process, real clients; Mallory's commits go through her own
client's transport (``_require()``), built with ``messenger.mls``.
"""

from __future__ import annotations

import os

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.client import (
    ConversationKind,
    MessageStatus,
    MessageStatusChanged,
    MessengerClient,
    OperationFailed,
)
from messenger.client.groups import group_members
from messenger.client.sealed_sending import send_token
from messenger.mls.content import ContentType, PrivateMessage
from messenger.mls.messages import MLSMessage

from .conftest import WAIT, Clients, eventually, moves_settled
from .test_attack_look_alike_welcome import account_id, recorded_client
from .test_end_to_end import conversation_named, wait_texts

pytestmark = pytest.mark.anyio


async def unprocessable_commit(
    mallory: MessengerClient, group_id: bytes, *, without: str | None = None
) -> None:
    """As Mallory: a commit for the group's epoch that no member can process.

    The server accepts it (she is a member, the epoch is current) and moves
    the group to the next epoch; ``without`` drops that account's queue.
    """
    session = mallory._require()
    group = await session.groups.get(group_id)
    assert group is not None
    queues = sorted(
        {x.queue_id for x in group_members(group) if x.queue_id and x.account_id != without}
    )
    junk = PrivateMessage(
        group_id=group_id,
        epoch=group.epoch,
        content_type=ContentType.COMMIT,
        authenticated_data=b"",
        encrypted_sender_data=os.urandom(32),
        ciphertext=os.urandom(96),
    )
    request = m.CommitRequest(
        epoch=group.epoch,
        commit=MLSMessage(junk).to_bytes(),
        members=tuple(queues),
        # Any token: the server takes it for the new epoch (it cannot tell).
        next_token=os.urandom(32),
        # Signed, it opens the group's state with the epoch's token (docs/metadata.md §2).
        token=send_token(group),
    )
    await session.transport.commit(group_id, request, sealed=False)


async def direct_conversation(client: MessengerClient) -> int:
    async def found() -> bool:
        views = await client.conversations()
        return any(v.conversation.kind is ConversationKind.DIRECT for v in views)

    await eventually(found, "a one-to-one conversation")
    views = await client.conversations()
    return next(v.id for v in views if v.conversation.kind is ConversationKind.DIRECT)


async def test_a_stuck_conversation_never_delays_another(clients: Clients) -> None:
    alice = await clients.new("alice", handle="alice_lane")
    bob, recorder = await recorded_client(clients, "bob", "bob_lane")
    mallory = await clients.new("mallory", handle="mallory_lane")
    alice_id, bob_id = [await account_id(c) for c in (alice, bob)]

    chat = await alice.create_conversation(bob_id)
    await alice.send_text(chat.id, "hi Bob")
    bob_chat = await direct_conversation(bob)
    wedged = await mallory.create_group("wedged", [bob_id])
    kicked = await mallory.create_group("kicked", [bob_id])
    await mallory.send_text(wedged.id, "welcome")
    await mallory.send_text(kicked.id, "welcome")
    bob_wedged = await conversation_named(bob, "wedged")
    bob_kicked = await conversation_named(bob, "kicked")
    await wait_texts(bob, bob_wedged, ["welcome"], "Bob to join wedged")
    await wait_texts(bob, bob_kicked, ["welcome"], "Bob to join kicked")
    await mallory.flush(WAIT)
    # Mallory's junk commits are built at her epoch: Bob's moves off his
    # contact queue (docs/metadata.md §1) have reached her first.
    await moves_settled([bob], [(mallory, wedged.id), (bob, bob_wedged)])
    await moves_settled([bob], [(mallory, kicked.id), (bob, bob_kicked)])
    wedged_epoch = await bob.group_epoch(bob_wedged)
    kicked_epoch = await bob.group_epoch(bob_kicked)
    wedged_id = (await bob.conversation(bob_wedged)).conversation.group_id
    kicked_id = (await bob.conversation(bob_kicked)).conversation.group_id

    # Mallory breaks both groups at the server.
    await unprocessable_commit(mallory, wedged_id)
    await unprocessable_commit(mallory, kicked_id, without=bob_id)
    # Bob's queue is in order: once Alice's next message is in, he has seen both commits.
    await alice.send_text(chat.id, "ping")
    await wait_texts(bob, bob_chat, ["hi Bob", "ping"], "Bob to get Alice's ping")
    assert await bob.group_epoch(bob_wedged) == wedged_epoch
    assert await bob.group_epoch(bob_kicked) == kicked_epoch

    events = bob.events()
    recorder.sent.clear()
    stuck = await bob.send_text(bob_wedged, "to the wedged group")
    gone = await bob.send_text(bob_kicked, "to the group I am no longer in")
    await bob.send_text(bob_chat, "one")
    await bob.send_text(bob_chat, "two")

    # The one-to-one messages were queued last, and arrive regardless.
    await wait_texts(
        alice, chat.id, ["hi Bob", "ping", "one", "two"], "Bob's messages past the stuck ones"
    )

    # The stuck messages fail for good, and the UI hears of it.
    async def both_failed() -> bool:
        statuses = [(await bob.message(i)).message.status for i in (stuck.id, gone.id)]
        return statuses == [MessageStatus.FAILED, MessageStatus.FAILED]

    await eventually(both_failed, "the stuck messages to be marked failed")
    seen = events.pending()
    events.close()
    for conversation_id, message_id in ((bob_wedged, stuck.id), (bob_kicked, gone.id)):
        assert MessageStatusChanged(conversation_id, message_id, MessageStatus.FAILED) in seen
        assert any(
            isinstance(e, OperationFailed) and e.conversation_id == conversation_id for e in seen
        )
    # Each was sent once: a permanent failure is not retried.
    paths = [path for path, _ in recorder.sent]
    assert paths.count(r.group_path(r.GROUP_MESSAGES, wedged_id)) == 1
    assert paths.count(r.group_path(r.GROUP_MESSAGES, kicked_id)) == 1

    # And the one-to-one chat goes on.
    await bob.send_text(bob_chat, "three")
    await wait_texts(alice, chat.id, ["hi Bob", "ping", "one", "two", "three"], "a later message")
    assert alice_id in {x.account_id for x in await bob.members(bob_chat)}
