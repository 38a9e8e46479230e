"""Links under attack and gone wrong, against the real server in-process.

The adversary is a hostile user of the same server, or whoever saw the
mailbox's name (the server itself): garbage or forged messages in the
mailbox must never link anything, and the creator must not crash on them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import messenger.server.links
from messenger.api import models as m
from messenger.api.signing import possession_message
from messenger.client import (
    ClientOptions,
    LinkCancelledError,
    LinkExpiredError,
    LinkFailedError,
    MessengerClient,
    ServerRejectedError,
    parse_link_code,
)
from messenger.client.linking import existing
from messenger.client.linking import payloads as p
from messenger.client.linking.channel import LinkChannel
from messenger.client.net import Backoff, Transport
from messenger.client.store import Keychain

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring
from .in_process import SERVER_URL, InProcessServer, WireTap, _InProcessTransport

T = TypeVar("T")
WAIT = 10.0

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def bounded(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, WAIT)


async def blank(server: InProcessServer, name: str) -> MessengerClient:
    """A profile without an account, on the in-process server's wire."""
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=server.root / "clients" / name,
        keychain=Keychain(backend=MemoryKeyring()),
        kdf=FAST_KDF,
        options=ClientOptions(
            http_transport=WireTap(server.wire, inner),
            backoff=Backoff(base=0.01, maximum=0.05),
            timeout=10.0,
        ),
    )
    server.opened.append(client)
    return client


async def raw_transport(server: InProcessServer) -> Transport:
    """An unsigned transport: whoever learnt a mailbox's name."""
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    return Transport(SERVER_URL, transport=WireTap(server.wire, inner), timeout=10.0)


async def test_garbage_in_the_mailbox_is_ignored(server: InProcessServer) -> None:
    laptop = await server.client("laptop")
    await laptop.start()  # its outbox sends the Adds
    desktop = await blank(server, "desktop")
    link = await laptop.start_link()
    stranger = await raw_transport(server)
    link_id = link.link_id
    # Garbage; a message sealed under another secret; a sealed *invitation* reflected back.
    await stranger.post_link(link_id, b"\x00" * 64, signed=False)
    other = LinkChannel(bytes(15), creator=False)
    fake_offer = p.Offer(bytes(32), bytes(64), "Evil")
    await stranger.post_link(link_id, other.seal(p.encode(fake_offer)), signed=False)
    invitation = await stranger.fetch_link(link_id, 0, signed=False)
    await stranger.post_link(link_id, invitation.messages[0].sealed, signed=False)

    joining = asyncio.create_task(
        desktop.link_account(parse_link_code(link.code.uri), device_name="Desktop")
    )
    offer = await bounded(link.wait_offer())
    assert offer.device_name == "Desktop"
    await bounded(link.approve())
    await bounded(joining)
    assert desktop.has_account
    await stranger.aclose()


async def test_an_offer_without_proof_of_possession_is_refused(server: InProcessServer) -> None:
    """Someone who saw the code offers a key they do not hold: nothing is registered."""
    laptop = await server.client("laptop")
    link = await laptop.start_link()
    thief = await raw_transport(server)
    channel = LinkChannel(link.code.secret, creator=False)
    victim_key = (
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    account = await laptop.account()
    assert account is not None
    wrong_proof = Ed25519PrivateKey.generate().sign(
        possession_message(account.account_id.encode(), victim_key)
    )
    offer = p.Offer(victim_key, wrong_proof, "Mine")
    await thief.post_link(link.link_id, channel.seal(p.encode(offer)), signed=False)
    with pytest.raises(LinkFailedError):
        await bounded(link.wait_offer())
    before = len(server.wire.sent("POST", "/v1/clients"))
    assert before == 0
    await link.cancel()
    await thief.aclose()


async def test_another_account_cannot_use_the_mailbox(server: InProcessServer) -> None:
    laptop = await server.client("laptop")
    mallory = await server.client("mallory")
    link = await laptop.start_link()
    transport = mallory._require().transport
    for attempt in (
        transport.fetch_link(link.link_id, 0, signed=True),
        transport.post_link(link.link_id, b"x" * 40, signed=True),
        transport.close_link(link.link_id, signed=True),
        transport.create_link(link.link_id),
    ):
        with pytest.raises(ServerRejectedError):
            await attempt
    await link.cancel()


async def test_an_expired_code(server: InProcessServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messenger.server.links, "LINK_MAX_SECONDS", 1)
    monkeypatch.setattr(messenger.server.links, "LINK_IDLE_SECONDS", 1)
    laptop = await server.client("laptop")
    link = await laptop.start_link()
    with pytest.raises(LinkExpiredError) as info:
        await bounded(link.wait_offer())
    assert "expired" in info.value.user_message
    desktop = await blank(server, "desktop")
    with pytest.raises(LinkExpiredError):
        await bounded(desktop.link_account(link.code, device_name="Desktop"))
    assert not desktop.has_account


async def test_a_history_that_does_not_check_is_not_imported(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    laptop = await server.client("laptop")
    bob = await server.client("bob")
    bob_info = await bob.account()
    assert bob_info is not None
    await laptop.add_contact(bob_info.invite_link)
    chat = await laptop.create_conversation(bob_info.account_id)
    await laptop.send_text(chat.id, "old news")
    await laptop.flush(WAIT)

    class WrongDigest:
        @staticmethod
        def sha256(data: bytes) -> hashlib._Hash:
            return hashlib.sha256(data + b"!")

    monkeypatch.setattr(existing, "hashlib", WrongDigest)
    desktop = await blank(server, "desktop")
    link = await laptop.start_link()
    joining = asyncio.create_task(desktop.link_account(link.code, device_name="Desktop"))
    await bounded(link.wait_offer())
    await laptop.start()
    await bounded(link.approve(history=True))
    await bounded(joining)
    [conversation] = await desktop.conversations()
    # Linked and in the conversation, but nothing of the history was imported.
    views = await desktop.messages(conversation.id, limit=50)
    assert "old news" not in [v.message.body for v in views]


async def _approving(
    server: InProcessServer,
) -> tuple[MessengerClient, MessengerClient, Any, asyncio.Task[Any], asyncio.Task[Any]]:
    """Laptop links a blank desktop and is approving it: laptop, desktop, the link,
    the joining and the approving tasks."""
    laptop = await server.client("laptop")
    desktop = await blank(server, "desktop")
    link = await laptop.start_link()
    joining = asyncio.create_task(desktop.link_account(link.code, device_name="Desktop"))
    await bounded(link.wait_offer())
    return laptop, desktop, link, joining, asyncio.create_task(link.approve())


async def test_cancel_during_approval_removes_the_new_client(server: InProcessServer) -> None:
    laptop, desktop, link, joining, approving = await _approving(server)

    def registered() -> list[str]:
        return [
            x.path
            for x in server.wire.sent("POST", "/v1/clients")
            if x.status == 200  # the new client exists on the server
        ]

    async def wait_registered() -> None:
        while not registered():
            await asyncio.sleep(0.01)

    await bounded(wait_registered())
    await link.cancel()
    with pytest.raises(LinkCancelledError):
        await bounded(approving)
    with pytest.raises((LinkCancelledError, LinkExpiredError)):
        await bounded(joining)
    assert not desktop.has_account
    removed = [
        x
        for x in server.wire.exchanges
        if x.method == "DELETE" and x.path.startswith("/v1/clients/") and x.status == 200
    ]
    assert len(removed) == 1
    assert await laptop._store.run(lambda s: s.pending_links.all()) == []
    assert len(link.link_id) == m.LINK_ID_BYTES


async def test_a_link_this_session_runs_is_not_undone_as_a_crashs(
    server: InProcessServer,
) -> None:
    """The start undoes links a crash cut short (``recover_links``); one that this
    session is running when the start gets there (the app started meanwhile) is
    left alone, and goes through."""
    laptop, desktop, _link, joining, approving = await _approving(server)

    async def wait_pending() -> None:
        while not await laptop._store.run(lambda s: s.pending_links.all()):
            await asyncio.sleep(0.01)

    await bounded(wait_pending())
    assert await existing.recover_links(laptop._require()) == 0
    await laptop.start()  # which runs it again
    await bounded(approving)
    await bounded(joining)
    assert desktop.has_account
    removed = [x for x in server.wire.exchanges if x.path.startswith("/v1/clients/")]
    assert not [x for x in removed if x.method == "DELETE"], "the new client was kept"
