"""Disappearing messages (docs/attachments.md §7): the agreed timer, the countdowns, deletion.

The timer is a field of the conversation-info GroupContext extension (RFC
9420 §12.1.7), set by any member with a commit; each message carries it;
the sender's copy counts down from sending, a receiver's from reading; when
the deadline passes the message leaves this device for good -- which the
decisive tests check by searching the decrypted database's bytes (an export
and every page of the file itself) for a marker of the message's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.ciphers.modes import CBC

import messenger.client.groups as groups_module
import messenger.client.sync.intents as intents_module
from messenger.client import (
    DISAPPEARING_CHOICES,
    ClientOptions,
    ConversationNotFoundError,
    InvalidTimerError,
    MemberView,
    MessageKind,
    MessageReceived,
    MessagesExpired,
    MessengerClient,
    Note,
    NoteKind,
    NoteView,
    Profile,
    format_timer,
    note_text,
)
from messenger.client.content import Content, Edit, Reaction, Text, decode_content, encode_content
from messenger.client.disappearing import (
    MAX_TIMER,
    ExpiryTimer,
    expire_due,
    message_timer,
    parse_timer,
    valid_timer,
)
from messenger.client.events import EventBus
from messenger.client.groups import CONVERSATION_INFO_EXTENSION, ConversationInfo
from messenger.client.identity import MemberIdentity
from messenger.client.net import Backoff
from messenger.client.store import AsyncStore, ConversationKind, Keychain, Store
from messenger.client.store.outbox import OutboxKind
from messenger.client.sync.effects import Actor, apply_content
from messenger.client.sync.intents import Intent
from messenger.mls.codec import Writer
from messenger.mls.extensions import Extension

from .helpers import FAST_KDF, ME, PASSPHRASE, MemoryKeyring, account_id, direct_conversation
from .helpers import add_text as add_message
from .in_process import SERVER_URL, InProcessServer, WireTap, _InProcessTransport, introduce

FLUSH = 10.0
WAIT = 10.0
HOUR_MS = 3_600_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- the setting as group state -------------------------------------------------------------


def _old_encoding(kind: int, name: bytes) -> bytes:
    w = Writer()
    w.u8(kind)
    w.opaque(name)
    return w.getvalue()


def test_a_group_without_timer_encodes_as_before() -> None:
    info = ConversationInfo(ConversationKind.GROUP, "Trip")
    assert info.to_extension().extension_data == _old_encoding(2, b"Trip")
    ext = Extension(CONVERSATION_INFO_EXTENSION, _old_encoding(2, b"Trip"))
    assert ConversationInfo.from_extensions([ext]) == info


def test_the_timer_round_trips_as_a_trailing_uint32() -> None:
    info = ConversationInfo(ConversationKind.DIRECT, None, 3600)
    data = info.to_extension().extension_data
    assert data == _old_encoding(1, b"") + (3600).to_bytes(4, "big")
    assert ConversationInfo.from_extensions([info.to_extension()]) == info


@pytest.mark.parametrize("seconds", [1, 9, MAX_TIMER + 1, 2**32 - 1])
def test_a_timer_out_of_range_is_refused_both_ways(seconds: int) -> None:
    with pytest.raises(ValueError, match="timer"):
        ConversationInfo(ConversationKind.GROUP, "x", seconds).to_extension()
    data = _old_encoding(2, b"x") + seconds.to_bytes(4, "big")
    assert ConversationInfo.from_extensions([Extension(CONVERSATION_INFO_EXTENSION, data)]) is None


@pytest.mark.parametrize("tail", [b"\x00", b"\x00\x00\x0e\x10\x00", b"\x00\x00\x0e"])
def test_a_malformed_tail_is_refused(tail: bytes) -> None:
    data = _old_encoding(2, b"x") + tail
    assert ConversationInfo.from_extensions([Extension(CONVERSATION_INFO_EXTENSION, data)]) is None


def test_set_timer_intents_round_trip() -> None:
    intent = Intent("set_timer", seconds=300, name="Trip", kind="group")
    assert Intent.loads(intent.dumps()) == intent
    assert json.loads(intent.dumps()) == {
        "op": "set_timer",
        "seconds": 300,
        "name": "Trip",
        "kind": "group",
    }


# -- wording and parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "off"),
        (1, "1 second"),
        (10, "10 seconds"),
        (90, "90 seconds"),
        (60, "1 minute"),
        (300, "5 minutes"),
        (3600, "1 hour"),
        (7200, "2 hours"),
        (86400, "1 day"),
        (3 * 86400, "3 days"),
        (604800, "1 week"),
        (2 * 604800, "2 weeks"),
        (MAX_TIMER, "365 days"),
    ],
)
def test_format_timer(seconds: int, text: str) -> None:
    assert format_timer(seconds) == text


def test_the_choices_are_valid_and_start_with_off() -> None:
    assert DISAPPEARING_CHOICES[0] == 0
    assert [format_timer(s) for s in DISAPPEARING_CHOICES] == [
        "off",
        "5 minutes",
        "1 hour",
        "1 day",
        "1 week",
    ]
    assert all(valid_timer(s) for s in DISAPPEARING_CHOICES)
    assert not valid_timer(9) and not valid_timer(-1) and not valid_timer(MAX_TIMER + 1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("off", 0), ("0", 0), ("90s", 90), ("5m", 300), ("1h", 3600), ("2H", 7200), ("1d", 86400)],
)
def test_parse_timer(text: str, seconds: int) -> None:
    assert parse_timer(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1.5h", "-1h", "1y", "\u0661h", "1 h", "9" * 13])
def test_parse_timer_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_timer(text)


def test_a_received_message_keeps_the_shorter_timer() -> None:
    assert message_timer(0, 0) == 0
    assert message_timer(0, 3600) == 3600  # none carried: the conversation's
    assert message_timer(300, 0) == 300  # sent before the timer was turned off here
    assert message_timer(604800, 3600) == 3600  # no member makes it outlive the setting
    assert message_timer(300, 3600) == 300


ALICE = MemberView("alice-id", "Alice", False)
YOU = MemberView("me-id", "You", True)


@pytest.mark.parametrize(
    ("note", "text"),
    [
        (
            NoteView(NoteKind.TIMER_CHANGED, actor=ALICE, seconds=3600),
            ("Alice set disappearing messages to 1 hour"),
        ),
        (
            NoteView(NoteKind.TIMER_CHANGED, actor=YOU, seconds=300),
            ("You set disappearing messages to 5 minutes"),
        ),
        (
            NoteView(NoteKind.TIMER_CHANGED, actor=ALICE, seconds=0),
            ("Alice turned off disappearing messages"),
        ),
        (
            NoteView(NoteKind.TIMER_CHANGED, seconds=604800),
            ("Disappearing messages are set to 1 week"),
        ),
        (NoteView(NoteKind.TIMER_CHANGED, seconds=0), "Disappearing messages are off"),
    ],
)
def test_timer_notes(note: NoteView, text: str) -> None:
    assert note_text(note) == text


def test_a_timer_note_stores_its_seconds() -> None:
    note = Note(NoteKind.TIMER_CHANGED, actor="alice-id", seconds=3600)
    assert json.loads(note.to_json()) == {"actor": "alice-id", "seconds": 3600}
    assert Note.from_row("timer_changed", note.to_json()) == note
    # Junk from a corrupted row reads as no value, never as a wrong type.
    assert Note.from_row("timer_changed", '{"seconds": "1"}').seconds is None
    assert Note.from_row("timer_changed", '{"seconds": true}').seconds is None
    assert Note.from_row("timer_changed", '{"seconds": -5}').seconds is None


# -- deletion in the store -------------------------------------------------------------------


def test_expire_due_deletes_the_rows_and_everything_pointing_at_them(store: Store) -> None:
    chat = direct_conversation(store)
    kept = add_message(store, chat.id, "kept before")
    doomed = store.messages.add(
        chat.id,
        uid=b"\x01" * 16,
        sender_account_id="acct-peer",
        sender_client_id="c",
        outgoing=False,
        body="doomed words",
        sent_at=1,
        received_at=1,
        expires_after=60,
    )
    own = store.messages.add(
        chat.id,
        uid=b"\x02" * 16,
        sender_account_id=ME,
        sender_client_id="me-client",
        outgoing=True,
        body="own doomed",
        sent_at=1_000,
        received_at=1_000,
        expires_after=60,
        expires_at=61_000,
    )
    later = add_message(store, chat.id, "kept after")
    store.reactions.add(doomed.id, "acct-peer", "👍", at=1)
    store.outbox.enqueue(
        OutboxKind.MESSAGE,
        b"",
        now=1,
        group_id=chat.group_id,
        message_id=own.id,
        content=b"plaintext of own doomed",
    )
    # Queued changes: an edit of the own doomed message (its new text) and one of another.
    for target, text in ((own.uid, "edited doomed"), (kept.uid, "edited kept")):
        store.outbox.enqueue(
            OutboxKind.MESSAGE,
            b"",
            now=1,
            group_id=chat.group_id,
            content=encode_content(Content(secrets.token_bytes(16), 1, Edit(target, text))),
        )
    store.read_markers.mark_read(chat.id, ME, doomed.id, at=1)
    store.read_markers.mark_read(chat.id, "acct-peer", own.id, at=1)

    # Not read yet: the received one does not count down; the own one does.
    assert store.messages.get(doomed.id).expires_at is None  # type: ignore[union-attr]
    assert store.messages.next_deadline() == 61_000
    assert store.messages.start_countdown(chat.id, doomed.id, now=5_000) == 65_000
    assert store.messages.start_countdown(chat.id, doomed.id, now=9_000) is None  # once
    unread_before = store.read_markers.unread_count(chat.id, ME)

    events, files = expire_due(store, 64_999)  # the own one only
    assert files == []
    assert [type(e).__name__ for e in events] == ["MessagesExpired", "ConversationUpdated"]
    assert isinstance(events[0], MessagesExpired) and events[0].message_ids == (own.id,)
    assert store.messages.get(own.id) is None
    (left,) = store.db.query("SELECT content FROM outbox")  # the item and edit went
    decoded = decode_content(left[0])
    assert isinstance(decoded, Content) and decoded.body == Edit(kept.uid, "edited kept")

    events, _ = expire_due(store, 65_000)
    assert isinstance(events[0], MessagesExpired) and events[0].message_ids == (doomed.id,)
    assert [m.body for m in store.messages.latest(chat.id)] == ["kept before", "kept after"]
    assert store.reactions.for_messages([doomed.id]) == {}
    assert store.messages.search("doomed") == []
    # The markers moved back to the newest message before them: counts unchanged.
    assert store.read_markers.get(chat.id, ME).message_id == kept.id  # type: ignore[union-attr]
    peer_marker = store.read_markers.get(chat.id, "acct-peer")
    assert peer_marker is not None and peer_marker.message_id == kept.id
    assert store.read_markers.unread_count(chat.id, ME) == unread_before
    assert later.id > doomed.id
    assert expire_due(store, 10**15) == ([], [])  # nothing left to do
    assert store.messages.next_deadline() is None


def test_a_marker_with_nothing_before_it_goes(store: Store) -> None:
    chat = direct_conversation(store)
    doomed = store.messages.add(
        chat.id,
        uid=b"\x03" * 16,
        sender_account_id="acct-peer",
        sender_client_id="c",
        outgoing=False,
        body="first and only",
        sent_at=1,
        received_at=1,
        expires_after=10,
    )
    store.read_markers.mark_read(chat.id, ME, doomed.id, at=1)
    store.messages.start_countdown(chat.id, doomed.id, now=0)
    expire_due(store, 10_000)
    assert store.read_markers.get(chat.id, ME) is None
    later = add_message(store, chat.id, "new")
    assert store.read_markers.unread_count(chat.id, ME) == 1  # the reused id is not "read"
    assert later.id >= doomed.id


def test_only_a_message_with_a_timer_has_a_deadline(store: Store) -> None:
    chat = direct_conversation(store)
    with pytest.raises(ValueError, match="timer"):
        store.messages.add(
            chat.id,
            uid=b"\x04" * 16,
            sender_account_id=ME,
            sender_client_id="c",
            outgoing=True,
            body="x",
            sent_at=1,
            received_at=1,
            expires_at=5,
        )


# -- the decrypted bytes of a store ------------------------------------------------------------

_PAGE = 4096
_RESERVE = 80  # SQLCipher 4: a 16-byte IV and a 64-byte HMAC-SHA512 per page


def _decrypt_page(page: bytes, key: bytes, *, first: bool) -> bytes:
    start = 16 if first else 0  # the first page begins with the salt
    iv = page[_PAGE - _RESERVE : _PAGE - _RESERVE + 16]
    decryptor = Cipher(AES(key), CBC(iv)).decryptor()
    return decryptor.update(page[start : _PAGE - _RESERVE]) + decryptor.finalize()


def decrypted_file_bytes(db_path: Path, key: bytes) -> bytes:
    """Every page of the database file and of its WAL, decrypted: live, free or stale."""
    pages = []
    data = db_path.read_bytes()
    for offset in range(0, len(data) - _PAGE + 1, _PAGE):
        pages.append(_decrypt_page(data[offset : offset + _PAGE], key, first=offset == 0))
    wal = db_path.with_name(db_path.name + "-wal")
    data = wal.read_bytes() if wal.exists() else b""
    for offset in range(32, len(data) - 24 - _PAGE + 1, 24 + _PAGE):
        page_number = int.from_bytes(data[offset : offset + 4], "big")
        frame = data[offset + 24 : offset + 24 + _PAGE]
        pages.append(_decrypt_page(frame, key, first=page_number == 1))
    return b"".join(pages)


async def leaks(client: MessengerClient, marker: str, tmp: Path) -> list[str]:
    """Where the decrypted store still holds ``marker``: an empty list if nowhere."""
    plain = tmp / f"plain-{secrets.token_hex(4)}.db"

    def look(s: Store) -> list[str]:
        found = []
        conn = s.db._conn
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        conn.execute("ATTACH DATABASE ? AS plain KEY ''", (str(plain),))
        try:
            conn.execute("SELECT sqlcipher_export('plain')").fetchall()
        finally:
            conn.execute("DETACH DATABASE plain")
        if marker.encode() in plain.read_bytes():
            found.append("the exported database")
        match = s.db.query("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", (marker,))
        if match:
            found.append("the full-text index")
        s.db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, messages_fts, row)"
        )
        if s.db.query("SELECT term FROM temp.vocab WHERE term = ?", (marker.lower(),)):
            found.append("the full-text vocabulary")
        if marker.encode() in decrypted_file_bytes(s.db.path, s._key._raw):
            found.append("a page of the database file or its WAL")
        return found

    found: list[str] = await client._store.run(look)
    # The export is an ordinary SQLite file: read it as one, too.
    with sqlite3.connect(plain) as conn:
        rows = conn.execute("SELECT count(*) FROM messages WHERE body LIKE ?", (f"%{marker}%",))
        if rows.fetchone()[0]:
            found.append("the exported messages table")
    conn.close()
    return found


# -- two users, in process ----------------------------------------------------------------------


class Clock:
    """The real time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def ms(self) -> int:
        return int(self() * 1000)


def _options(server: InProcessServer, transport: object, clock: Clock) -> ClientOptions:
    return ClientOptions(
        http_transport=WireTap(server.wire, transport),  # type: ignore[arg-type]
        backoff=Backoff(base=0.01, maximum=0.05),
        timeout=10.0,
        clock=clock,
    )


async def timed_client(server: InProcessServer, name: str, clock: Clock) -> MessengerClient:
    """A client of the in-process server whose clock the test controls."""
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=server.root / "clients" / name,
        keychain=Keychain(backend=MemoryKeyring()),
        kdf=FAST_KDF,
        options=_options(server, inner, clock),
    )
    server.opened.append(client)
    await client.create_account(SERVER_URL, handle=name)
    await introduce(server, client)  # as if they had exchanged invite links
    return client


async def reopen(server: InProcessServer, name: str, clock: Clock) -> MessengerClient:
    inner = await server.transports.enter_async_context(_InProcessTransport(server.app))
    client = await MessengerClient.open(
        name,
        PASSPHRASE,
        data_dir=server.root / "clients" / name,
        keychain=Keychain(backend=MemoryKeyring()),
        options=_options(server, inner, clock),
    )
    server.opened.append(client)
    return client


async def exchange(*clients: MessengerClient) -> None:
    """Deliver what each has queued and fetch what the others sent, twice round."""
    for _ in range(2):
        for client in clients:
            await client.flush(FLUSH)
            await client.sync()


async def notes(client: MessengerClient, conversation_id: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=100)
        if v.message.kind is MessageKind.SYSTEM
    ]


async def by_body(client: MessengerClient, conversation_id: int, body: str) -> list[object]:
    return [v.message for v in await client.messages(conversation_id) if v.message.body == body]


async def wait_for_expiry(subscription: object, message_id: int) -> None:
    async def until() -> None:
        async for event in subscription:  # type: ignore[attr-defined]
            if isinstance(event, MessagesExpired) and message_id in event.message_ids:
                return

    await asyncio.wait_for(until(), WAIT)


async def trio(server: InProcessServer) -> tuple[MessengerClient, MessengerClient, int, int, Clock]:
    """Alice made the group "Trip" with Bob; Bob (not its creator) set 1 hour."""
    alice_clock, bob_clock = Clock(), Clock()
    alice = await timed_client(server, "alice", alice_clock)
    bob = await timed_client(server, "bob", bob_clock)
    group = await alice.create_group("Trip", [await account_id(bob)])
    await exchange(alice, bob)
    (bob_group,) = await bob.conversations()
    await bob.set_disappearing_timer(bob_group.id, 3600)
    await exchange(bob, alice)
    return alice, bob, group.id, bob_group.id, bob_clock


@pytest.mark.anyio
async def test_a_member_sets_the_timer_and_everyone_agrees(server: InProcessServer) -> None:
    alice, bob, a_id, b_id, _ = await trio(server)
    assert (await notes(alice, a_id))[-1] == "bob set disappearing messages to 1 hour"
    assert (await notes(bob, b_id))[-1] == "You set disappearing messages to 1 hour"
    for client, cid in ((alice, a_id), (bob, b_id)):
        view = await client.conversation(cid)
        assert view.conversation.disappearing_seconds == 3600
        assert view.name == "Trip"  # the name survives the timer's commit
    # The note says who, in what kind, with the seconds; no sentence is stored.
    note = [v for v in await alice.messages(a_id) if v.note is not None][-1].note
    assert note is not None and note.kind is NoteKind.TIMER_CHANGED and note.seconds == 3600
    assert note.actor is not None and note.actor.account_id == await account_id(bob)

    # A rename keeps the timer.
    await alice.rename(a_id, "Road trip")
    await exchange(alice, bob)
    assert (await bob.conversation(b_id)).conversation.disappearing_seconds == 3600
    assert (await bob.conversation(b_id)).name == "Road trip"

    # Turning it off.
    await alice.set_disappearing_timer(a_id, 0)
    await exchange(alice, bob)
    assert (await notes(bob, b_id))[-1] == "alice turned off disappearing messages"
    assert (await bob.conversation(b_id)).conversation.disappearing_seconds == 0
    sent = await alice.send_text(a_id, "stays")
    assert sent.expires_after == 0 and sent.expires_at is None
    await exchange(alice, bob)
    (got,) = await by_body(bob, b_id, "stays")
    assert got.expires_after == 0 and got.expires_at is None  # type: ignore[attr-defined]
    # Setting the same value again changes nothing and writes no note.
    count = len(await notes(bob, b_id))
    await bob.set_disappearing_timer(b_id, 0)
    await exchange(bob, alice)
    assert len(await notes(bob, b_id)) == count


@pytest.mark.anyio
async def test_the_timer_choices_are_checked(server: InProcessServer) -> None:
    alice = await server.client("alice")
    chat = await alice.create_conversation(await account_id(await server.client("bob")))
    await alice.flush(FLUSH)

    async def queued() -> int:
        return int(
            await alice._store.run(lambda s: s.db.query_value("SELECT count(*) FROM outbox"))
        )

    for wrong in (1, 9, MAX_TIMER + 1, -60, True):
        with pytest.raises(InvalidTimerError) as caught:
            await alice.set_disappearing_timer(chat.id, wrong)
        assert "10 seconds to 1 year" in caught.value.user_message
    devices = await alice._store.run(
        lambda s: s.db.query_value("SELECT id FROM conversations WHERE kind = 'devices'")
    )
    if devices is not None:  # the devices group is not a conversation to set it on
        with pytest.raises(ConversationNotFoundError):
            await alice.set_disappearing_timer(devices, 3600)
    assert await queued() == 0  # nothing refused was queued
    await alice.set_disappearing_timer(chat.id, 10)  # a one-to-one chat may have one
    await alice.flush(FLUSH)
    assert (await alice.conversation(chat.id)).conversation.disappearing_seconds == 10


@pytest.mark.anyio
async def test_messages_carry_the_timer_and_count_down_from_sending_or_reading(
    server: InProcessServer,
) -> None:
    alice, bob, a_id, b_id, bob_clock = await trio(server)
    before = int(time.time() * 1000)
    sent = await alice.send_text(a_id, "hello for an hour")
    # The content queued for the group carries the timer (content version 2).
    content = await alice._store.run(
        lambda s: s.db.query_value("SELECT content FROM outbox WHERE message_id = ?", (sent.id,))
    )
    decoded = decode_content(content)
    assert isinstance(decoded, Content) and decoded.expires_after == 3600
    assert sent.expires_after == 3600
    assert sent.expires_at == sent.sent_at + HOUR_MS  # the sender's copy: from sending
    await exchange(alice, bob)

    (got,) = await by_body(bob, b_id, "hello for an hour")
    assert got.expires_after == 3600  # type: ignore[attr-defined]
    assert got.expires_at is None  # type: ignore[attr-defined]  # not read: not counting
    await bob.mark_read(b_id)
    after = bob_clock.ms()
    (got,) = await by_body(bob, b_id, "hello for an hour")
    deadline = got.expires_at  # type: ignore[attr-defined]
    assert deadline is not None and before + HOUR_MS <= deadline <= after + HOUR_MS


@pytest.mark.anyio
async def test_a_message_without_timer_gets_the_conversations(server: InProcessServer) -> None:
    alice, bob, a_id, b_id, _ = await trio(server)
    # Bob's client "forgets" the timer (an old or modified client): its content carries none.
    await bob._store.run(
        lambda s: s.db.execute(
            "UPDATE conversations SET disappearing_seconds = 0 WHERE id = ?", (b_id,)
        )
    )
    sent = await bob.send_text(b_id, "no timer in me")
    content = await bob._store.run(
        lambda s: s.db.query_value("SELECT content FROM outbox WHERE message_id = ?", (sent.id,))
    )
    decoded = decode_content(content)
    assert isinstance(decoded, Content) and decoded.expires_after == 0
    await exchange(bob, alice)
    (got,) = await by_body(alice, a_id, "no timer in me")
    assert got.expires_after == 3600  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_an_out_of_range_timer_from_a_member_is_ignored_by_everyone(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, a_id, b_id, _ = await trio(server)
    original = groups_module.with_conversation_info

    def malicious(extensions: Sequence[Extension], info: ConversationInfo) -> list[Extension]:
        data = _old_encoding(2, b"Trip") + (5).to_bytes(4, "big")  # 5 s: out of range
        bad = Extension(CONVERSATION_INFO_EXTENSION, data)
        return [bad, *original(extensions, info)[1:]]

    monkeypatch.setattr(intents_module, "with_conversation_info", malicious)
    count, bob_count = len(await notes(alice, a_id)), len(await notes(bob, b_id))
    await bob.set_disappearing_timer(b_id, 600)
    await exchange(bob, alice)
    monkeypatch.undo()
    # The commit went through (MLS accepts it), but no member applies the timer: the
    # conversation keeps its timer and name, and no note is written.
    for client, cid in ((alice, a_id), (bob, b_id)):
        view = await client.conversation(cid)
        assert view.conversation.disappearing_seconds == 3600
        assert view.name == "Trip"
    assert len(await notes(alice, a_id)) == count
    sent = await alice.send_text(a_id, "still an hour")
    assert sent.expires_after == 3600

    # The next change by any member writes a readable extension again.
    await alice.set_disappearing_timer(a_id, 300)
    await exchange(alice, bob)
    assert (await notes(bob, b_id))[bob_count:] == ["alice set disappearing messages to 5 minutes"]
    assert (await notes(alice, a_id))[count:] == ["You set disappearing messages to 5 minutes"]
    for client, cid in ((alice, a_id), (bob, b_id)):
        view = await client.conversation(cid)
        assert view.conversation.disappearing_seconds == 300
        assert view.name == "Trip"


@pytest.mark.anyio
async def test_an_expired_message_leaves_no_byte_behind(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice, bob, a_id, b_id, bob_clock = await trio(server)
    marker = "zq" + secrets.token_hex(8)
    sent = await alice.send_text(a_id, f"the secret is {marker} today")
    await exchange(alice, bob)
    (got,) = await by_body(bob, b_id, f"the secret is {marker} today")
    await bob.mark_read(b_id)
    # Alice replies and reacts; Bob does not read the reply, so it does not count down.
    await alice.reply(a_id, sent.id, "noted")
    await alice.react(a_id, sent.id, "👍")
    await exchange(alice, bob)
    (reply,) = await by_body(bob, b_id, "noted")
    assert await bob._store.run(lambda s: s.db.query_value("SELECT count(*) FROM reactions")) == 1
    # The check finds the marker while it is there (it would otherwise prove nothing).
    found = await leaks(bob, marker, tmp_path)
    assert "the exported database" in found
    assert "the full-text index" in found
    assert "a page of the database file or its WAL" in found

    events = bob.events()
    await bob.start()
    bob_clock.advance(3600 + 1)
    bob._expiry.wake()  # the clock jumped: look now (the task looks at least every minute)
    await wait_for_expiry(events, got.id)  # type: ignore[attr-defined]
    events.close()

    assert await by_body(bob, b_id, f"the secret is {marker} today") == []
    assert await bob.search(marker) == []
    assert await leaks(bob, marker, tmp_path) == []
    # Bob's reply stays, its quote finds nothing; the reaction went with the message.
    view = await bob.message(reply.id)  # type: ignore[attr-defined]
    assert view.message.body == "noted" and view.reply_to is None
    assert await bob._store.run(lambda s: s.db.query_value("SELECT count(*) FROM reactions")) == 0
    # An edit or reaction arriving for the expired uid resurrects nothing.
    await alice.edit(a_id, sent.id, f"edited {marker}")
    await alice.react(a_id, sent.id, "🎉")
    await alice.flush(FLUSH)
    bob_clock.advance(-3601)  # back to the server's time, to fetch
    await bob.sync()
    assert await by_body(bob, b_id, f"edited {marker}") == []
    assert await bob.search(marker) == []
    assert await bob._store.run(lambda s: s.db.query_value("SELECT count(*) FROM reactions")) == 0


@pytest.mark.anyio
async def test_messages_that_expired_while_closed_are_gone_before_the_first_read(
    server: InProcessServer, tmp_path: Path
) -> None:
    alice, bob, a_id, b_id, _ = await trio(server)
    marker = "zq" + secrets.token_hex(8)
    await alice.send_text(a_id, f"{marker} while you sleep")
    unsent_marker = "zq" + secrets.token_hex(8)
    await exchange(alice, bob)
    await alice.send_text(a_id, f"{unsent_marker} never sent")  # stays in the outbox
    await alice.close()

    later = Clock()
    later.advance(3600 + 1)
    reopened = await reopen(server, "alice", later)
    texts = [v.message.body for v in await reopened.messages(a_id)]
    assert f"{marker} while you sleep" not in texts
    assert f"{unsent_marker} never sent" not in texts
    outbox = await reopened._store.run(
        lambda s: s.db.query_value("SELECT count(*) FROM outbox WHERE content IS NOT NULL")
    )
    assert outbox == 0  # the unsent item held the plaintext: gone with its message
    assert await leaks(reopened, marker, tmp_path) == []
    assert await leaks(reopened, unsent_marker, tmp_path) == []
    # Bob has not read it: his copy waits.
    assert await by_body(bob, b_id, f"{marker} while you sleep")


@pytest.mark.anyio
async def test_read_on_another_device_counts_down_here_too(server: InProcessServer) -> None:
    # The devices group syncs read positions (docs/devices.md §3); the sync record is
    # applied by one function, the one tested here through the store.
    alice, bob, a_id, b_id, bob_clock = await trio(server)
    await alice.send_text(a_id, "read elsewhere")
    await exchange(alice, bob)
    (got,) = await by_body(bob, b_id, "read elsewhere")
    from messenger.client.devices.records import ConversationRead, Stamped
    from messenger.client.devices.sync import _apply

    me = await account_id(bob)
    conversation = await bob._store.run(lambda s: s.conversations.get(b_id))
    assert conversation is not None
    record = Stamped(ConversationRead(conversation.group_id, got.uid), 1)  # type: ignore[attr-defined]
    now = bob_clock.ms()
    await bob._store.run(
        lambda s: _apply(
            s,
            record,
            sender="other-device",
            me=Actor(me, "this-device", secrets.token_bytes),
            now=now,
        )
    )
    (got,) = await by_body(bob, b_id, "read elsewhere")
    assert got.expires_at == now + HOUR_MS  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_a_joiner_takes_the_timer_from_the_welcome(server: InProcessServer) -> None:
    alice, _bob, a_id, _b_id, _ = await trio(server)
    carol = await server.client("carol")
    await alice.add_members(a_id, [await account_id(carol)])
    await exchange(alice, carol)
    (joined,) = await carol.conversations()
    assert joined.conversation.disappearing_seconds == 3600
    assert joined.name == "Trip"
    await alice.send_text(a_id, "to carol too")
    await exchange(alice, carol)
    (got,) = await by_body(carol, joined.id, "to carol too")
    assert got.expires_after == 3600  # type: ignore[attr-defined]


def test_own_messages_from_another_device_count_from_sending(store: Store) -> None:
    chat = direct_conversation(store)
    store.conversations.set_disappearing(chat.id, 300)
    chat = store.conversations.get(chat.id)  # type: ignore[assignment]
    me = Actor(ME, "this-device", lambda: secrets.token_bytes(16))
    other_device = MemberIdentity(ME, "other-device", b"k" * 32)
    peer = MemberIdentity("acct-peer", "peer-device", b"p" * 32)
    for sender, uid, carried in ((other_device, b"\x05" * 16, 300), (peer, b"\x06" * 16, 0)):
        content = Content(uid, 1_000, Text("hi"), expires_after=carried)
        apply_content(store, chat, sender, content, me=me, seq=None, epoch=1, now=2_000)
    own = store.messages.by_uid(chat.id, b"\x05" * 16)
    theirs = store.messages.by_uid(chat.id, b"\x06" * 16)
    assert own is not None and own.outgoing and own.expires_at == 1_000 + 300_000
    assert theirs is not None and theirs.expires_after == 300 and theirs.expires_at is None
    # An edit or reaction for a uid that is not (or no longer) stored adds nothing.
    for body in (Edit(b"\x07" * 16, "x"), Reaction(b"\x07" * 16, "👍")):
        content = Content(b"\x08" * 16, 1_000, body)
        assert apply_content(store, chat, peer, content, me=me, seq=None, epoch=1, now=2_000) == []
    assert store.messages.count(chat.id) == 2


@pytest.mark.anyio
async def test_the_expiry_task_sleeps_until_the_deadline_and_wakes_for_a_new_one(
    profile: Profile, keychain: Keychain
) -> None:
    store = await AsyncStore.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF)
    bus = EventBus()
    events = bus.subscribe()
    timer = ExpiryTimer(store, bus, time.time)
    chat = await store.run(direct_conversation)

    def doomed(uid: bytes) -> Callable[[Store], int]:
        def add(s: Store) -> int:
            deadline = int(time.time() * 1000) + 200
            return s.messages.add(
                chat.id,
                uid=uid,
                sender_account_id=ME,
                sender_client_id="c",
                outgoing=True,
                body="soon gone",
                sent_at=1,
                received_at=1,
                expires_after=10,
                expires_at=deadline,
            ).id

        return add

    first = await store.run(doomed(b"\x09" * 16))
    task = asyncio.create_task(timer.run())
    try:
        await wait_for_expiry(events, first)  # no wake-up: the deadline itself
        # Nothing is due now: the task sleeps; a new message's event wakes it.
        second = await store.run(doomed(b"\x0a" * 16))
        bus.publish(MessageReceived(chat.id, second))
        await wait_for_expiry(events, second)
        assert await store.run(lambda s: s.messages.count(chat.id)) == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await store.close()
