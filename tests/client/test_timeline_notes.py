"""Timeline notes are stored as a kind and parameters; the English is worded on reading.

Each kind renders the sentence the timeline always showed (:func:`note_text`);
the rows hold account ids and group names, no sentence; and migration 5
turns the sentences of older stores into kinds where it can.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import (
    MemberView,
    MessageKind,
    MessengerClient,
    Note,
    NoteKind,
    NoteView,
    note_text,
)
from messenger.client.store import Database, DatabaseKey
from messenger.client.store.migrations import migrate

from .helpers import account_id
from .in_process import InProcessServer

FLUSH = 10.0

ME = MemberView("me-id", "You", True)
ALICE = MemberView("alice-id", "Alice", False)
BOB = MemberView("bob-id", "Bob", False)
CAROL = MemberView("carol-id", "Carol", False)


@pytest.mark.parametrize(
    ("note", "text"),
    [
        (NoteView(NoteKind.CREATED, name="Trip"), "You created “Trip”"),
        (NoteView(NoteKind.CREATED), "You created the group"),
        (NoteView(NoteKind.JOINED, actor=ALICE, name="Trip"), "Alice added you to “Trip”"),
        (NoteView(NoteKind.JOINED, actor=ALICE), "Alice added you to the group"),
        (NoteView(NoteKind.JOINED, actor=ME, name="Trip"), "You joined “Trip”"),
        (NoteView(NoteKind.JOINED), "You joined the group"),
        (NoteView(NoteKind.ADDED, actor=ALICE, members=(BOB, CAROL)), "Alice added Bob, Carol"),
        (NoteView(NoteKind.ADDED, actor=ME, members=(BOB,)), "You added Bob"),
        (NoteView(NoteKind.ADDED, members=(BOB,)), "Bob joined"),
        (NoteView(NoteKind.LEFT, actor=ALICE, members=(BOB, CAROL)), "Bob, Carol left"),
        (NoteView(NoteKind.REMOVED, actor=ALICE, members=(ME,)), "Alice removed You"),
        (NoteView(NoteKind.REMOVED, actor=ME, members=(CAROL,)), "You removed Carol"),
        (NoteView(NoteKind.REMOVED, members=(CAROL,)), "Carol left"),
        (
            NoteView(NoteKind.RENAMED, actor=ALICE, name="Road trip"),
            "Alice renamed the group to “Road trip”",
        ),
        (NoteView(NoteKind.RENAMED, actor=ME), "You renamed the group to no name"),
        (NoteView(NoteKind.RENAMED, name="Trip"), "The group is now “Trip”"),
        (NoteView(NoteKind.RENAMED), "The group is now no name"),
        (NoteView(NoteKind.YOU_LEFT), "You left"),
        (
            NoteView(NoteKind.YOU_WERE_REMOVED, actor=ALICE),
            "You were removed from the conversation",
        ),
        (NoteView(NoteKind.LEGACY_TEXT, text="Bob added Carol"), "Bob added Carol"),
    ],
)
def test_each_kind_renders_its_sentence(note: NoteView, text: str) -> None:
    assert note_text(note) == text


def test_every_kind_has_a_sentence() -> None:
    for kind in NoteKind:
        note = NoteView(kind, actor=ALICE, members=(BOB,), name="X", text="legacy")
        assert note_text(note)


def test_note_parameters_round_trip_and_survive_a_newer_kind() -> None:
    note = Note(NoteKind.ADDED, actor="alice-id", accounts=("bob-id", "carol-id"), name=None)
    assert Note.from_row(note.kind.value, note.to_json()) == note
    assert json.loads(note.to_json()) == {"actor": "alice-id", "accounts": ["bob-id", "carol-id"]}
    # A kind from a newer version, or junk parameters, still read as a note.
    assert Note.from_row("pinned", '{"text": 5}') == Note(NoteKind.LEGACY_TEXT)
    assert Note.from_row("left", "[1]") == Note(NoteKind.LEFT)


# -- through the sync pipeline --------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def notes(client: MessengerClient, conversation_id: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=100)
        if v.message.kind is MessageKind.SYSTEM
    ]


async def system_rows(client: MessengerClient) -> list[tuple[str | None, str, str]]:
    return await client._store.run(
        lambda s: s.db.query(
            "SELECT body, note_kind, note_params FROM messages WHERE kind = 'system' ORDER BY id"
        )
    )


@pytest.mark.anyio
async def test_group_notes_are_stored_without_english(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    carol = await server.client("carol")
    bob_id, carol_id = await account_id(bob), await account_id(carol)
    group = await alice.create_group("Trip", [bob_id])
    await alice.flush(FLUSH)
    await bob.sync()
    await bob.flush(FLUSH)
    await alice.sync()
    await alice.add_members(group.id, [carol_id])
    await alice.flush(FLUSH)
    await carol.sync()
    await carol.flush(FLUSH)  # her name, for the others
    await alice.sync()
    await alice.rename(group.id, "Road trip")
    await alice.flush(FLUSH)
    await alice.remove_member(group.id, carol_id)
    await alice.flush(FLUSH)
    (bob_group,) = await bob.conversations()
    await bob.sync()
    await bob.leave(bob_group.id)
    await bob.flush(FLUSH)
    await alice.sync()
    await alice.flush(FLUSH)
    await bob.sync()

    # The sentences the timeline always showed, worded when read.
    assert await notes(alice, group.id) == [
        "You created “Trip”",
        "You added bob",
        "You added carol",
        "You renamed the group to “Road trip”",
        "You removed carol",
        "bob left",
    ]
    assert await notes(bob, bob_group.id) == [
        "alice added you to “Trip”",
        "alice added carol",
        "alice renamed the group to “Road trip”",
        "alice removed carol",
        "You left",
    ]
    views = [v for v in await alice.messages(group.id) if v.note is not None]
    assert [v.note.kind for v in views if v.note is not None] == [
        NoteKind.CREATED,
        NoteKind.ADDED,
        NoteKind.ADDED,
        NoteKind.RENAMED,
        NoteKind.REMOVED,
        NoteKind.LEFT,
    ]

    # The rows hold kinds, account ids and group names: no sentence, no name.
    ids = {await account_id(c) for c in (alice, bob, carol)}
    for client in (alice, bob):
        rows = await system_rows(client)
        assert rows
        for body, kind, params in rows:
            assert body is None
            assert kind in set(NoteKind) - {NoteKind.LEGACY_TEXT}
            for key, value in json.loads(params).items():
                values = value if isinstance(value, list) else [value]
                allowed = ids if key in ("actor", "accounts") else {"Trip", "Road trip"}
                assert key != "text" and set(values) <= allowed, (key, value)
    # Nor is a note found by searching for its words.
    assert await alice.search("added") == []


# -- migration 5 ----------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as database:
        yield database


def test_migration_turns_old_sentences_into_kinds(db: Database) -> None:
    migrate(db, target=4)
    db.execute(
        "INSERT INTO conversations (id, group_id, kind, title, created_at, last_activity_at) "
        "VALUES (1, x'aa', 'group', 'Team', 1, 1)"
    )
    old = [
        ("system", "You created “Team”"),
        ("system", "You created the group"),
        ("system", "You joined “Team”"),
        ("system", "bob added you to “Team”"),
        ("system", "bob added carol"),
        ("system", "You left"),
        ("system", "You were removed from the conversation"),
        ("text", "You left"),
    ]
    db.executemany(
        "INSERT INTO messages (conversation_id, uid, sender_account_id, sender_client_id, "
        "outgoing, kind, body, status, sent_at, received_at) "
        "VALUES (1, randomblob(16), 'peer', 'c', 0, ?, ?, 'received', 1, 1)",
        old,
    )
    migrate(db)
    rows = db.query("SELECT kind, body, note_kind, note_params FROM messages ORDER BY id")
    assert [(r[0], r[1], r[2], json.loads(r[3]) if r[3] else None) for r in rows] == [
        ("system", None, "created", {"name": "Team"}),
        ("system", None, "created", {}),
        ("system", None, "joined", {"name": "Team"}),
        ("system", None, "legacy_text", {"text": "bob added you to “Team”"}),
        ("system", None, "legacy_text", {"text": "bob added carol"}),
        ("system", None, "you_left", {}),
        ("system", None, "you_were_removed", {}),
        ("text", "You left", None, None),
    ]
    # The search index dropped the notes' sentences and kept the text message.
    found = db.query("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'left'")
    assert found == [(8,)]
    db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")
