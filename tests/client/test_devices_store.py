"""The devices group's store: migration 9 from a version-8 store with data, the
device list, and last-writer-wins clocks (docs/devices.md §3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client.errors import StoreError
from messenger.client.store import Database, DatabaseKey, Store
from messenger.client.store.conversations import ConversationKind
from messenger.client.store.migrations import migrate, schema_version
from messenger.client.store.sync_clock import ClockEntry

from .helpers import new_uid


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as database:
        yield database


def _v8_with_data(db: Database) -> None:
    migrate(db, target=8)
    db.execute(
        "INSERT INTO conversations (id, group_id, kind, title, peer_account_id, created_at, "
        "last_activity_at, muted, archived, muted_until, read_receipts, draft, draft_updated_at) "
        "VALUES (1, x'aa', 'direct', NULL, 'peer', 1, 5, 1, 0, 99, 0, 'half typed', 4), "
        "(2, x'bb', 'group', 'Team', NULL, 2, 6, 0, 1, NULL, NULL, NULL, NULL)"
    )
    db.execute(
        "INSERT INTO conversation_members (conversation_id, account_id, joined_at) "
        "VALUES (1, 'me', 1), (1, 'peer', 1), (2, 'me', 2)"
    )
    db.executemany(
        "INSERT INTO messages (id, conversation_id, uid, sender_account_id, sender_client_id, "
        "outgoing, kind, body, status, sent_at, received_at) "
        "VALUES (?, ?, ?, 'peer', 'c', 0, 'text', ?, 'received', 1, 1)",
        [
            (1, 1, new_uid(), "hello there"),
            (2, 1, new_uid(), "general kenobi"),
            (3, 2, new_uid(), "team news"),
        ],
    )
    db.execute(
        "INSERT INTO read_markers (conversation_id, account_id, message_id, read_at) "
        "VALUES (1, 'me', 1, 3)"
    )


def test_migration_9_rebuilds_conversations_and_keeps_everything(db: Database) -> None:
    _v8_with_data(db)
    before = db.query("SELECT * FROM conversations ORDER BY id")
    migrate(db, target=9)  # later migrations add columns
    assert schema_version(db) == 9
    assert db.query("SELECT * FROM conversations ORDER BY id") == before
    assert db.query("PRAGMA foreign_key_check") == []
    assert db.query_value("PRAGMA foreign_keys") == 1
    # The children still point at their conversations, and cascade from them.
    assert db.query_value("SELECT count(*) FROM messages") == 3
    assert db.query_value("SELECT count(*) FROM read_markers") == 1
    indexes = {row[0] for row in db.query("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"conversations_by_activity", "conversations_by_peer"} <= indexes
    # Search still works over the old messages (the FTS triggers are on messages).
    hits = db.query("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'kenobi'")
    assert hits == [(2,)]
    db.execute("DELETE FROM conversations WHERE id = 1")
    assert db.query_value("SELECT count(*) FROM messages") == 1
    assert db.query_value("SELECT count(*) FROM conversation_members") == 1
    assert db.query_value("SELECT count(*) FROM read_markers") == 0


def test_the_devices_kind_is_accepted_and_still_checked(db: Database) -> None:
    migrate(db)
    db.execute(
        "INSERT INTO conversations (group_id, kind, created_at, last_activity_at) "
        "VALUES (x'dd', 'devices', 1, 1)"
    )
    with pytest.raises(StoreError):
        db.execute(
            "INSERT INTO conversations (group_id, kind, created_at, last_activity_at) "
            "VALUES (x'ee', 'other', 1, 1)"
        )
    with pytest.raises(StoreError):  # only a direct conversation has a peer
        db.execute(
            "INSERT INTO conversations (group_id, kind, peer_account_id, created_at, "
            "last_activity_at) VALUES (x'ef', 'devices', 'peer', 1, 1)"
        )


def test_the_devices_conversation_is_never_listed(store: Store) -> None:
    chat = store.conversations.create(
        b"\x01" * 32, ConversationKind.DIRECT, now=1, peer_account_id="bob"
    )
    devices = store.conversations.create(b"\x02" * 32, ConversationKind.DEVICES, now=2)
    store.devices.set_group_id(devices.group_id)
    assert [c.id for c in store.conversations.all()] == [chat.id]
    store.conversations.set_archived(devices.id, True)
    assert store.conversations.all(archived=True) == []
    found = store.conversations.by_group(devices.group_id)
    assert found is not None and found.kind is ConversationKind.DEVICES
    assert store.devices.group_id() == devices.group_id


def test_the_device_list(store: Store) -> None:
    assert store.devices.group_id() is None
    assert store.devices.seen("c1", b"k" * 32, now=10)
    assert not store.devices.seen("c1", b"k" * 32, now=11)  # nothing new
    assert store.devices.seen("c2", b"j" * 32, now=12)
    assert store.devices.set_name("c1", "Laptop")
    assert not store.devices.set_name("c1", "Laptop")
    assert store.devices.set_last_seen("c1", 50)
    assert not store.devices.set_last_seen("c1", 40)  # never back
    assert store.devices.mark_removed("c2", at=60)
    assert not store.devices.mark_removed("c2", at=61)
    assert [d.client_id for d in store.devices.all()] == ["c1"]
    assert [d.client_id for d in store.devices.all(include_removed=True)] == ["c1", "c2"]
    c1 = store.devices.get("c1")
    assert c1 is not None and (c1.name, c1.last_seen_at, c1.added_at) == ("Laptop", 50, 10)
    assert store.devices.seen("c2", b"j" * 32, now=70)  # added again
    assert store.devices.get("c2") is not None and store.devices.all()[-1].client_id == "c2"


def test_last_writer_wins_with_the_client_as_tie_break(store: Store) -> None:
    clock = store.sync_clock
    assert clock.advance("contact_name", "bob", ClockEntry(100, "b"))
    assert not clock.advance("contact_name", "bob", ClockEntry(99, "z"))  # older
    assert not clock.advance("contact_name", "bob", ClockEntry(100, "a"))  # tie, smaller id
    assert not clock.advance("contact_name", "bob", ClockEntry(100, "b"))  # the same write
    assert clock.advance("contact_name", "bob", ClockEntry(100, "c"))  # tie, larger id
    assert clock.get("contact_name", "bob") == ClockEntry(100, "c")
    assert clock.advance("contact_name", "carol", ClockEntry(1, "a"))  # keys are separate


def test_a_local_write_wins_over_a_clock_that_ran_ahead(store: Store) -> None:
    clock = store.sync_clock
    clock.advance("setting", "read_receipts", ClockEntry(5_000, "other"))
    stamped = clock.stamp("setting", "read_receipts", now=1_000, client_id="me")
    assert stamped.updated_at > 5_000
    assert clock.get("setting", "read_receipts") == stamped
    fresh = clock.stamp("setting", "typing_indicators", now=1_000, client_id="me")
    assert fresh == ClockEntry(1_000, "me")
    # The same time by a larger client ID than ours: still moved past it.
    clock.advance("draft", "x", ClockEntry(2_000, "zzz"))
    assert clock.stamp("draft", "x", now=2_000, client_id="aaa").updated_at > 2_000
