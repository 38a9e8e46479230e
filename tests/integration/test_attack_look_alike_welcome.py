"""A removed member tries to regain read access with a look-alike Welcome.

Mallory is removed from "club". She keeps the group ID, builds an MLS group
of her own with that very ID (at a later epoch, or an earlier one), adds
Bob and Alice with KeyPackages she claims from the server, and delivers its
Welcome through a server group of hers (the server cannot tell a Welcome's
group: it is encrypted). Had Bob's client taken it, the "club" conversation
would run on state whose secrets Mallory knows.

RFC 9420 §12.4.3.1: a joiner checks that the group ID is unique among its
groups. Bob's client drops a Welcome for any group it has, or had, at any
epoch; his real "club" state, epoch and conversation stay as they were, his
next message to the club is for Alice and not for Mallory's forged state,
and the KeyPackage Mallory spent does not get in the way of later joins.

Real server process, real clients with their own stores; Mallory uses her
own client's keys and transport (``_require()``) and ``messenger.mls``
directly. Nothing here depends on the server accepting a forged commit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.client import MessageKind, MessengerClient
from messenger.client.contact_tokens import claim_key_packages
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
)
from messenger.client.store import ConversationKind
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.errors import MLSError
from messenger.mls.group import Group
from messenger.mls.messages import MLSMessage

from .conftest import (
    CLIENT_OPTIONS,
    FAST_KDF,
    PASSPHRASE,
    Clients,
    eventually,
    keychain,
    moves_settled,
)
from .test_end_to_end import conversation_named, member_names, texts, wait_texts

pytestmark = pytest.mark.anyio

_DROPPED = "dropped a Welcome for a group this client already has or had"


class Recorder(httpx.AsyncBaseTransport):
    """The real network, keeping a copy of each MLS message the client sends to a group."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent: list[tuple[str, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/messages"):
            body = m.SendRequest.loads(request.content)
            self.sent.append((request.url.path, body.message))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def recorded_client(
    clients: Clients, name: str, handle: str
) -> tuple[MessengerClient, Recorder]:
    recorder = Recorder()
    options = dataclasses.replace(CLIENT_OPTIONS, http_transport=recorder)
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=clients.data_dir(name),
        keychain=keychain(),
        kdf=FAST_KDF,
        options=options,
    )
    clients.open_clients.append(client)
    await client.create_account(clients.server.url, handle)
    await clients.introduce(client)
    await client.start()
    return client, recorder


async def account_id(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None
    return info.account_id


def key_package_ref(key_package: bytes) -> bytes:
    decoded = MLSMessage.from_bytes(key_package).key_package
    return decoded.ref(get_cipher_suite(decoded.cipher_suite))


async def look_alike_welcome(
    mallory: MessengerClient, group_id: bytes, name: str, targets: list[str], *, epoch: int
) -> tuple[Group, list[bytes]]:
    """Mallory's attack: her own group with ``group_id`` at ``epoch`` adding ``targets``.

    The KeyPackages are claimed from the server like anyone may; the Welcome
    travels in a commit to a server group of Mallory's own, whose member set
    she extends with the targets' queues (she claimed their KeyPackages, and
    the Welcome names them). Returns her forged group and the KeyPackages used.
    """
    session = mallory._require()
    account, transport = session.account, session.transport
    # With the contact tokens she knows (docs/metadata.md §1), as her app would.
    claimed = [entry for t in targets for entry in await claim_key_packages(session, t)]
    assert claimed and not any(e.last_resort for e in claimed)

    def new_group(gid: bytes) -> Group:
        return Group.create(
            new_key_package(account, os.urandom, now=int(time.time())),
            os.urandom,
            group_id=gid,
            extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, name)),
            config=GROUP_CONFIG,
            identity=account.verifier,
        )

    forged = new_group(group_id)
    while forged.epoch < epoch - 1:
        forged.merge(forged.commit(os.urandom).staged)
    added = forged.commit(os.urandom, add=[e.key_package for e in claimed])
    forged.merge(added.staged)
    assert forged.epoch == epoch and added.welcome is not None

    carrier = new_group(os.urandom(32))
    carried = carrier.commit(os.urandom)
    queues = sorted({e.queue_id for e in claimed})
    await transport.create_group(m.CreateGroupRequest(carrier.group_id))
    await transport.commit(
        carrier.group_id,
        m.CommitRequest(
            epoch=0,
            commit=carried.message,
            members=tuple(sorted({account.queue_id, *queues})),
            welcome=added.welcome,
            welcome_to=tuple(queues),
            claims=transport.claim_tokens.take([e.key_package for e in claimed]),
        ),
        sealed=False,
    )
    return forged, [e.key_package for e in claimed]


async def key_package_spent(client: MessengerClient, ref: bytes) -> bool:
    return bool(await client._store.run(lambda s: s.key_packages.get(ref) is None))


async def system_notes(client: MessengerClient, conversation_id: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=200)
        if v.message.kind is MessageKind.SYSTEM
    ]


async def test_a_look_alike_welcome_from_a_removed_member_changes_nothing(
    clients: Clients, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    alice = await clients.new("alice", handle="alice_law")
    bob, recorder = await recorded_client(clients, "bob", "bob_law")
    mallory = await clients.new("mallory", handle="mallory_law")
    alice_id, bob_id, mallory_id = [await account_id(c) for c in (alice, bob, mallory)]

    club = await alice.create_group("club", [bob_id, mallory_id])
    await alice.send_text(club.id, "hello club")
    bob_club = await conversation_named(bob, "club")
    mallory_club = await conversation_named(mallory, "club")
    await wait_texts(bob, bob_club, ["hello club"], "Bob to join the club")
    await wait_texts(mallory, mallory_club, ["hello club"], "Mallory to join the club")
    group_id = (await bob.conversation(bob_club)).conversation.group_id

    # Bob and Mallory each move to their own queue with a commit if they joined
    # by their contact queue (docs/metadata.md §1): wait until everyone is there.
    await moves_settled(
        (bob, mallory), ((alice, club.id), (bob, bob_club), (mallory, mallory_club))
    )
    before_removal = await alice.group_epoch(club.id)
    assert before_removal is not None

    # Alice removes Mallory (one epoch more); Mallory's client learns it.
    await alice.remove_member(club.id, mallory_id)

    async def mallory_out() -> bool:
        gone = not (await mallory.conversation(mallory_club)).active
        return gone and await member_names(bob, bob_club) == {alice_id, bob_id}

    await eventually(mallory_out, "Mallory's removal to reach everyone")
    epoch = await bob.group_epoch(bob_club)
    assert epoch == before_removal + 1 == await alice.group_epoch(club.id)
    conversations_before = [v.id for v in await bob.conversations()]
    notes_before = await system_notes(bob, bob_club)
    bob_state = await bob._require().groups.get(group_id)
    assert bob_state is not None
    authenticator = bob_state.epoch_authenticator

    # The attack: the same group ID at a later epoch, adding Bob and Alice.
    forged, used = await look_alike_welcome(
        mallory, group_id, "club", [bob_id, alice_id], epoch=epoch + 2
    )
    bob_ref, alice_ref = (key_package_ref(kp) for kp in used)
    await eventually(lambda: key_package_spent(bob, bob_ref), "Bob to process the Welcome")
    await eventually(lambda: key_package_spent(alice, alice_ref), "Alice to process the Welcome")

    # Nothing changed: the same epoch (of the real group), conversation, members and timeline.
    assert await bob.group_epoch(bob_club) == epoch
    current = await bob._require().groups.get(group_id)
    assert current is not None and current.epoch_authenticator == authenticator
    assert [v.id for v in await bob.conversations()] == conversations_before
    view = await bob.conversation(bob_club)
    assert view.active and view.name == "club"
    assert await member_names(bob, bob_club) == {alice_id, bob_id}
    assert await system_notes(bob, bob_club) == notes_before
    assert await alice.group_epoch(club.id) == epoch
    # Dropped with a log note that names no group.
    dropped = [r.getMessage() for r in caplog.records if r.getMessage() == _DROPPED]
    assert len(dropped) == 2  # Bob's and Alice's clients, in this process
    assert not any(group_id.hex() in r.getMessage() for r in caplog.records)

    # The club still works both ways, on the real group's keys.
    await alice.send_text(club.id, "after the look-alike")
    await wait_texts(bob, bob_club, ["hello club", "after the look-alike"], "Alice's next message")
    recorder.sent.clear()
    await bob.send_text(bob_club, "for the club only")
    await wait_texts(
        alice,
        club.id,
        ["hello club", "after the look-alike", "for the club only"],
        "Bob's message at Alice's",
    )
    club_path = r.group_path(r.GROUP_MESSAGES, group_id)
    to_club = [data for path, data in recorder.sent if path == club_path]
    assert to_club, "Bob's message to the club was recorded"
    for data in to_club:
        with pytest.raises(MLSError):
            forged.process(data)
    assert "for the club only" not in await texts(mallory, mallory_club)

    # The KeyPackage Mallory spent does not get in the way: Bob joins a new group,
    # and its timeline says who added him.
    await alice.send_text((await alice.create_group("after", [bob_id])).id, "a new group")
    bob_after = await conversation_named(bob, "after")
    await wait_texts(bob, bob_after, ["a new group"], "Bob to join a new group")
    assert "alice_law added you to “after”" in await system_notes(bob, bob_after)


async def test_a_look_alike_welcome_cannot_revive_a_conversation_one_was_removed_from(
    clients: Clients,
) -> None:
    alice = await clients.new("alice", handle="alice_rev")
    bob = await clients.new("bob", handle="bob_rev")
    mallory = await clients.new("mallory", handle="mallory_rev")
    bob_id, mallory_id = [await account_id(c) for c in (bob, mallory)]
    old = await alice.create_group("old", [bob_id, mallory_id])
    await alice.send_text(old.id, "hi")
    bob_old = await conversation_named(bob, "old")
    await conversation_named(mallory, "old")
    await wait_texts(bob, bob_old, ["hi"], "Bob to join")
    group_id = (await bob.conversation(bob_old)).conversation.group_id
    await alice.remove_member(old.id, bob_id)

    async def bob_out() -> bool:
        return not (await bob.conversation(bob_old)).active

    await eventually(bob_out, "Bob to learn he was removed")
    conversations_before = [v.id for v in await bob.conversations()]
    notes_before = await system_notes(bob, bob_old)

    # Mallory, still a member, knows the ID: a look-alike at an *earlier* epoch.
    _, used = await look_alike_welcome(mallory, group_id, "old", [bob_id], epoch=1)
    await eventually(
        lambda: key_package_spent(bob, key_package_ref(used[0])), "Bob to process the Welcome"
    )
    view = await bob.conversation(bob_old)
    assert not view.active
    assert await bob.group_epoch(bob_old) is None
    assert [v.id for v in await bob.conversations()] == conversations_before
    assert await system_notes(bob, bob_old) == notes_before

    # A Welcome to a group that really is new still works, and names who added him.
    fresh = await mallory.create_group("fresh", [bob_id])
    await mallory.send_text(fresh.id, "hello from a new group")
    bob_fresh = await conversation_named(bob, "fresh")
    await wait_texts(bob, bob_fresh, ["hello from a new group"], "Bob to join a new group")
    assert "mallory_rev added you to “fresh”" in await system_notes(bob, bob_fresh)
