"""The user's choices through the facade: names, mute, archive, block, privacy, drafts.

Each test drives a real :class:`MessengerClient` over a real encrypted
store with an account but no server (its transport refuses every request):
these choices are local, except what they stop from being sent, which is
seen in the outbox. Blocking over a real server is in
``test_facade_network.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from messenger.client import (
    AccountUpdated,
    ClientOptions,
    ContactUpdated,
    ConversationUpdated,
    Event,
    MessageView,
    MessengerClient,
    NotAllowedError,
    Preferences,
    PreferencesChanged,
)
from messenger.client.identity import CIPHER_SUITE, encode_credential
from messenger.client.profiles import Profiles
from messenger.client.store import (
    AsyncStore,
    Conversation,
    ConversationRepository,
    Database,
    DatabaseKey,
    Keychain,
    Store,
)
from messenger.client.store.identity import Identity
from messenger.client.store.migrations import LATEST_VERSION, migrate
from messenger.mls.ciphersuite import get_cipher_suite

from .helpers import FAST_KDF, ME, PASSPHRASE, PEER, MemoryKeyring, add_text, direct_conversation
from .sync_helpers import UNREACHABLE, Authority

pytestmark = pytest.mark.anyio

OTHER = "acct-other"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("no network in this test")


@dataclass
class Home:
    """A profile with an account (``ME``), and how to open it again."""

    data_dir: Path
    keychain: Keychain

    async def open(self) -> MessengerClient:
        return await MessengerClient.open(
            "me",
            PASSPHRASE,
            data_dir=self.data_dir,
            keychain=self.keychain,
            options=ClientOptions(http_transport=httpx.MockTransport(_refuse)),
        )


async def _make_home(root: Path) -> Home:
    keychain = Keychain(backend=MemoryKeyring())
    profile = Profiles(root).create("me")
    store = await AsyncStore.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF)
    private, public = get_cipher_suite(CIPHER_SUITE).generate_signature_key_pair(os.urandom)
    authority = Authority()
    identity = Identity(
        server_url=UNREACHABLE,
        account_id=ME,
        client_id="client-me",
        queue_id="queue-me",
        cipher_suite=CIPHER_SUITE,
        signature_private_key=private,
        signature_public_key=public,
        credential=encode_credential(authority.issue(ME, "client-me", public)),
        created_at=0,
        handle="me",
        server_key=authority.public,
    )
    await store.run(lambda s: s.identity.save(identity))
    await store.close()
    return Home(root, keychain)


@pytest.fixture
async def home(tmp_path: Path) -> Home:
    return await _make_home(tmp_path / "data")


@pytest.fixture
async def client(home: Home) -> AsyncIterator[MessengerClient]:
    opened = await home.open()
    try:
        yield opened
    finally:
        await opened.close()


async def on_store(client: MessengerClient, fn: object) -> object:
    """Run ``fn(store)`` on the client's store (to set the scene)."""
    return await client._store.run(fn)  # type: ignore[arg-type]


async def chat_with(client: MessengerClient, peer: str = PEER) -> Conversation:
    """A one-to-one conversation with ``peer`` (both members), and the contact."""

    def write(s: Store) -> Conversation:
        s.contacts.upsert(peer, now=1, handle=peer.removeprefix("acct-"))
        conversation = direct_conversation(s, peer)
        s.conversations.add_member(conversation.id, ME, joined_at=1)
        s.conversations.add_member(conversation.id, peer, joined_at=1)
        return conversation

    return await client._store.run(write)


async def outbox_size(client: MessengerClient) -> int:
    return await client._store.run(lambda s: s.outbox.count())


def updated(events: list[Event]) -> set[int]:
    return {e.conversation_id for e in events if isinstance(e, ConversationUpdated)}


# -- names ----------------------------------------------------------------------------------


async def test_own_display_name_is_read_back_and_announced(client: MessengerClient) -> None:
    assert await client.own_display_name() is None
    events = client.events()
    await client.set_display_name("  Ada   Lovelace ")
    assert await client.own_display_name() == "Ada Lovelace"
    account = await client.account()
    assert account is not None and account.display_name == "Ada Lovelace"
    assert events.pending() == [AccountUpdated("Ada Lovelace")]


async def test_rename_contact_names_them_everywhere(client: MessengerClient) -> None:
    chat = await chat_with(client)
    assert (await client.conversation(chat.id)).name == "peer"
    events = client.events()
    contact = await client.rename_contact(PEER, " Bob  (work) ")
    assert contact.display_name == "Bob (work)"
    assert (await client.conversation(chat.id)).name == "Bob (work)"
    assert {m.name for m in await client.members(chat.id)} == {"You", "Bob (work)"}
    pending = events.pending()
    assert ContactUpdated(PEER) in pending and updated(pending) == {chat.id}
    cleared = await client.rename_contact(PEER, None)
    assert cleared.display_name is None
    assert (await client.conversation(chat.id)).name == "peer"
    with pytest.raises(Exception, match="no contact"):
        await client.rename_contact("acct-nobody", "X")


# -- mute and archive -----------------------------------------------------------------------


async def test_mute_for_good_and_until_a_time(client: MessengerClient) -> None:
    chat = await chat_with(client)
    events = client.events()
    view = await client.mute(chat.id)
    assert view.muted and view.conversation.muted_until is None
    assert updated(events.pending()) == {chat.id}
    view = await client.unmute(chat.id)
    assert not view.muted and updated(events.pending()) == {chat.id}

    soon = int(time.time() * 1000) + 60_000
    view = await client.mute(chat.id, until=soon)
    assert view.muted and view.conversation.muted_until == soon
    # Once the time has passed, the conversation is not muted any more.
    assert not view.conversation.muted_at(soon) and view.conversation.muted_at(soon - 1)
    with pytest.raises(NotAllowedError):
        await client.mute(chat.id, until=1_000)


async def test_archive_moves_a_conversation_out_of_the_list(client: MessengerClient) -> None:
    chat = await chat_with(client)
    assert [v.id for v in await client.conversations()] == [chat.id]
    events = client.events()
    view = await client.archive(chat.id)
    assert view.archived and updated(events.pending()) == {chat.id}
    assert await client.conversations() == []
    assert [v.id for v in await client.conversations(archived=True)] == [chat.id]
    view = await client.unarchive(chat.id)
    assert not view.archived
    assert [v.id for v in await client.conversations()] == [chat.id]


# -- blocking -------------------------------------------------------------------------------


async def test_a_blocked_contact_is_hidden_and_cannot_be_written_to(
    client: MessengerClient,
) -> None:
    chat = await chat_with(client)
    await on_store(client, lambda s: s.contacts.upsert(OTHER, now=1, handle="other"))
    events = client.events()
    contact = await client.block(PEER)
    assert contact.blocked
    pending = events.pending()
    assert ContactUpdated(PEER) in pending and updated(pending) == {chat.id}

    assert [c.account_id for c in await client.contacts()] == [OTHER]
    assert {c.account_id for c in await client.contacts(include_blocked=True)} == {PEER, OTHER}
    view = await client.conversation(chat.id)
    assert view.blocked and [v.id for v in await client.conversations()] == [chat.id]
    with pytest.raises(NotAllowedError):
        await client.send_text(chat.id, "hi")
    with pytest.raises(NotAllowedError):
        await client.create_group("Pals", [PEER])
    await on_store(client, lambda s: s.conversations.mark_left(chat.id, at=5))
    with pytest.raises(NotAllowedError):
        await client.create_conversation(PEER)
    await on_store(client, lambda s: s.conversations.rejoin(chat.id))

    # Typing notices and read receipts do not go to a blocked chat either.
    await on_store(client, lambda s: add_text(s, chat.id, "from peer"))
    before = await outbox_size(client)
    await client.typing(chat.id)
    assert await client.mark_read(chat.id)
    assert await outbox_size(client) == before

    assert not (await client.unblock(PEER)).blocked
    assert not (await client.conversation(chat.id)).blocked
    await client.send_text(chat.id, "hi again")
    assert await outbox_size(client) == before + 1
    with pytest.raises(NotAllowedError):
        await client.block(ME)


# -- read receipts and typing ----------------------------------------------------------------


async def test_read_receipts_and_typing_globally_and_per_conversation(
    client: MessengerClient,
) -> None:
    chat = await chat_with(client)
    assert await client.preferences() == Preferences(read_receipts=True, typing_indicators=True)
    events = client.events()

    prefs = await client.set_read_receipts(False)
    assert prefs == Preferences(read_receipts=False, typing_indicators=True)
    assert events.pending() == [PreferencesChanged(False, True)]
    view = await client.conversation(chat.id)
    assert not view.read_receipts and view.typing_indicators

    # Off globally: the marker moves, no receipt is queued.
    await on_store(client, lambda s: add_text(s, chat.id, "one"))
    before = await outbox_size(client)
    assert await client.mark_read(chat.id)
    assert await outbox_size(client) == before

    # On for this conversation only.
    view = await client.set_conversation_read_receipts(chat.id, True)
    assert view.read_receipts and view.conversation.read_receipts is True
    assert updated(events.pending()) == {chat.id}
    await on_store(client, lambda s: add_text(s, chat.id, "two"))
    assert await client.mark_read(chat.id)
    assert await outbox_size(client) == before + 1

    # Typing: off globally, on here, then back to the global choice (off).
    await client.set_typing_indicators(False)
    assert events.pending()[-1] == PreferencesChanged(False, False)
    await client.typing(chat.id)
    assert await outbox_size(client) == before + 1
    await client.set_conversation_typing_indicators(chat.id, True)
    await client.typing(chat.id)
    assert await outbox_size(client) == before + 2
    view = await client.set_conversation_typing_indicators(chat.id, None)
    assert view.conversation.typing_indicators is None and not view.typing_indicators


async def test_preferences_are_kept_across_a_restart(home: Home) -> None:
    client = await home.open()
    try:
        await client.set_typing_indicators(False)
    finally:
        await client.close()
    client = await home.open()
    try:
        assert await client.preferences() == Preferences(True, False)
    finally:
        await client.close()


# -- drafts -----------------------------------------------------------------------------------


async def test_a_draft_is_kept_across_a_restart(home: Home) -> None:
    client = await home.open()
    try:
        chat = await chat_with(client)
        assert await client.draft(chat.id) is None
        events = client.events()
        await client.set_draft(chat.id, "half a tho")
        await client.set_draft(chat.id, "half a thought")
        await client.set_draft(chat.id, "half a thought")  # unchanged: no event
        assert [type(e) for e in events.pending()] == [ConversationUpdated] * 2
        assert (await client.conversation(chat.id)).draft == "half a thought"
    finally:
        await client.close()
    client = await home.open()
    try:
        assert await client.draft(chat.id) == "half a thought"
        await client.set_draft(chat.id, "")
        assert await client.draft(chat.id) is None
        with pytest.raises(Exception, match="no conversation"):
            await client.draft(chat.id + 100)
    finally:
        await client.close()


# -- unread counts and paging ------------------------------------------------------------------


async def test_unread_counts_per_conversation_and_total(client: MessengerClient) -> None:
    one = await chat_with(client, PEER)
    two = await chat_with(client, OTHER)

    def fill(s: Store) -> list[int]:
        ids = [add_text(s, one.id, f"a{i}").id for i in range(3)]
        add_text(s, one.id, "mine", sender=ME)
        ids += [add_text(s, two.id, f"b{i}", sender=OTHER).id for i in range(2)]
        return ids

    await on_store(client, fill)
    assert await client.unread_count(one.id) == 3
    assert await client.unread_count(two.id) == 2
    assert await client.unread_count() == 5
    assert {v.id: v.unread for v in await client.conversations()} == {one.id: 3, two.id: 2}

    await client.mute(two.id)
    assert await client.unread_count() == 3  # the badge leaves muted chats out
    await client.unmute(two.id)
    await client.archive(one.id)
    assert await client.unread_count() == 2  # and archived ones
    await client.unarchive(one.id)

    events = client.events()
    assert await client.mark_read(one.id)
    assert updated(events.pending()) == {one.id}
    assert await client.unread_count(one.id) == 0
    assert await client.unread_count() == 2


async def test_messages_page_before_and_after_a_message(client: MessengerClient) -> None:
    chat = await chat_with(client)
    ids = await on_store(client, lambda s: [add_text(s, chat.id, f"m{i}").id for i in range(10)])
    assert isinstance(ids, list)

    def bodies(page: list[MessageView]) -> list[str | None]:
        return [v.message.body for v in page]

    assert bodies(await client.messages(chat.id, limit=3)) == ["m7", "m8", "m9"]
    assert bodies(await client.messages(chat.id, before=ids[7], limit=3)) == ["m4", "m5", "m6"]
    assert bodies(await client.messages(chat.id, after=ids[2], limit=3)) == ["m3", "m4", "m5"]
    assert bodies(await client.messages(chat.id, after=ids[8])) == ["m9"]
    assert await client.messages(chat.id, after=ids[9]) == []
    assert await client.messages(chat.id, limit=0) == []
    # Opening at a message: it is the last of the page before it, then page on.
    around = await client.messages(chat.id, before=ids[5] + 1, limit=2)
    assert bodies(around) == ["m4", "m5"]
    with pytest.raises(ValueError, match="not both"):
        await client.messages(chat.id, before=ids[5], after=ids[2])


def test_a_version_3_store_gains_the_choices(tmp_path: Path) -> None:
    """Migration 4 keeps a conversation and gives it the defaults: not muted, global, no draft."""
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as db:
        migrate(db, target=3)
        db.execute(
            "INSERT INTO conversations (id, group_id, kind, peer_account_id, created_at, "
            "last_activity_at, muted) VALUES (1, x'aa', 'direct', 'peer', 1, 1, 1)"
        )
        assert migrate(db) == LATEST_VERSION
        found = ConversationRepository(db).get(1)
        assert found is not None and found.muted and found.muted_until is None
        assert (found.read_receipts, found.typing_indicators, found.draft) == (None, None, None)
        assert found.muted_at(2**40)
