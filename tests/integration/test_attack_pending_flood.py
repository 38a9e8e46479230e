"""A stranger tries to fill Bob's disk with messages that can never be processed.

Eve has never met Bob. She claims one of his KeyPackages (anyone may),
adds his queue to server groups of her own -- with a Welcome to that
KeyPackage, for a group of another ID, so the server's evidence check is
met -- and sends well-formed junk for those groups, which Bob's client does
not know: each piece would wait for a Welcome that never comes.

Required: Bob's pending store stays within its limits -- per group, for all
unknown groups together, in total -- whatever Eve sends, the junk is
consumed (not retried), and Bob's real conversations still work.

Bob runs with small :class:`PendingLimits` (``ClientOptions.pending_limits``)
so that a few hundred kilobytes show the caps; the defaults are exercised
in-process in ``tests/client/test_attack_pending_limits.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import time

import pytest

from messenger.api import models as m
from messenger.api.sealed import token_digest
from messenger.client import MessengerClient, RateLimitedError
from messenger.client.contact_tokens import claim_key_packages
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
)
from messenger.client.store import ConversationKind
from messenger.client.store.pending_inbound import PendingLimits
from messenger.mls.content import ContentType, PrivateMessage
from messenger.mls.group import Group
from messenger.mls.messages import MLSMessage

from .conftest import CLIENT_OPTIONS, FAST_KDF, PASSPHRASE, Clients, keychain
from .test_attack_look_alike_welcome import account_id
from .test_attack_outbox_lanes import direct_conversation
from .test_end_to_end import wait_texts

pytestmark = pytest.mark.anyio

LIMITS = PendingLimits(
    group_items=5,
    group_bytes=100_000,
    unknown_items=12,
    unknown_bytes=250_000,
    total_items=40,
    total_bytes=1_000_000,
)


def junk(group_id: bytes, epoch: int, size: int) -> bytes:
    message = PrivateMessage(
        group_id=group_id,
        epoch=epoch,
        content_type=ContentType.APPLICATION,
        authenticated_data=b"",
        encrypted_sender_data=os.urandom(32),
        ciphertext=os.urandom(size),
    )
    return MLSMessage(message).to_bytes()


async def paced(send: object) -> None:
    """Await a request, waiting out the server's rate limit if it asks (not a check)."""
    assert callable(send)
    while True:
        try:
            await send()
            return
        except RateLimitedError as exc:
            await asyncio.sleep(exc.retry_after)


async def add_queue_to_group_of_her_own(eve: MessengerClient, bob_id: str) -> bytes:
    """Eve's server group with Bob's queue in it; Bob has no state for it."""
    session = eve._require()
    account, transport = session.account, session.transport
    (claimed,) = await claim_key_packages(session, bob_id)  # with the token she knows

    def new_group(gid: bytes, name: str) -> Group:
        return Group.create(
            new_key_package(account, os.urandom, now=int(time.time())),
            os.urandom,
            group_id=gid,
            extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, name)),
            config=GROUP_CONFIG,
            identity=account.verifier,
        )

    # The Welcome names Bob's claimed KeyPackage, for a group of *another* ID.
    decoy = new_group(os.urandom(32), "hello from eve")
    welcome = decoy.commit(os.urandom, add=[claimed.key_package]).welcome
    assert welcome is not None
    carrier = new_group(os.urandom(32), "carrier")
    await transport.create_group(m.CreateGroupRequest(carrier.group_id))
    await transport.commit(
        carrier.group_id,
        m.CommitRequest(
            epoch=0,
            commit=carrier.commit(os.urandom).message,
            members=tuple(sorted({account.queue_id, claimed.queue_id})),
            welcome=welcome,
            welcome_to=(claimed.queue_id,),
            # Her group, her epoch: she knows its send token (docs/metadata.md §3).
            send_token_hash=token_digest(junk_token(carrier.group_id)),
            claims=transport.claim_tokens.take([claimed.key_package]),
        ),
        sealed=False,
    )
    return carrier.group_id


def junk_token(group_id: bytes) -> bytes:
    """The send token Eve registers for epoch 1 of a group of her own."""
    return hashlib.sha256(b"eve\n" + group_id).digest()


async def test_a_strangers_junk_stays_within_the_pending_limits(clients: Clients) -> None:
    alice = await clients.new("alice", handle="alice_flood")
    options = dataclasses.replace(CLIENT_OPTIONS, pending_limits=LIMITS)
    bob = await MessengerClient.create(
        "bob",
        PASSPHRASE,
        data_dir=clients.data_dir("bob"),
        keychain=keychain(),
        kdf=FAST_KDF,
        options=options,
    )
    clients.open_clients.append(bob)
    await bob.create_account(clients.server.url, "bob_flood")
    await clients.introduce(bob)
    await bob.start()
    eve = await clients.new("eve", handle="eve_flood")
    bob_id = await account_id(bob)
    chat = await alice.create_conversation(bob_id)
    await alice.send_text(chat.id, "before the flood")
    bob_chat = await direct_conversation(bob)
    await wait_texts(bob, bob_chat, ["before the flood"], "Bob's real chat")

    # The flood: small pieces to one group (past its row limit), big ones to
    # three more (past each one's bytes, and past all unknown groups' bytes).
    transport = eve._require().transport
    groups = [await add_queue_to_group_of_her_own(eve, bob_id) for _ in range(4)]
    sent = 0
    for index, group_id in enumerate(groups):
        count, size = (12, 1_000) if index == 0 else (6, 30_000)
        for _ in range(count):
            data = junk(group_id, 1, size)
            request = m.SendRequest(data, token=junk_token(group_id))
            await paced(lambda q=request, g=group_id: transport.send(g, q))
            sent += 1

    # Bob's queue is in order: once Alice's next message is in, the flood is consumed.
    await alice.send_text(chat.id, "after the flood")
    await wait_texts(bob, bob_chat, ["before the flood", "after the flood"], "Alice's message")

    def read(s: object) -> tuple[dict[bytes, tuple[int, int]], set[bytes]]:
        usage = s.pending_inbound.usage_by_group()  # type: ignore[attr-defined]
        return usage, set(s.groups.group_ids())  # type: ignore[attr-defined]

    usage, known = await bob._store.run(read)
    junk_usage = {g: u for g, u in usage.items() if g in groups}
    kept = sum(u[0] for u in junk_usage.values())
    assert 0 < kept < sent, "some junk reached Bob's store, and the rest was refused"
    for rows, size in usage.values():
        assert rows <= LIMITS.group_items and size <= LIMITS.group_bytes
    assert junk_usage[groups[0]][0] == LIMITS.group_items
    unknown = [u for g, u in usage.items() if g not in known]
    assert sum(u[0] for u in unknown) <= LIMITS.unknown_items
    assert LIMITS.unknown_bytes - 40_000 < sum(u[1] for u in unknown) <= LIMITS.unknown_bytes
    assert sum(u[0] for u in usage.values()) <= LIMITS.total_items
    assert sum(u[1] for u in usage.values()) <= LIMITS.total_bytes

    # Bob's real conversation works both ways.
    await bob.send_text(bob_chat, "still here")
    await wait_texts(
        alice, chat.id, ["before the flood", "after the flood", "still here"], "Bob's answer"
    )
