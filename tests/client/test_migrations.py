"""Schema migrations: from an empty file, from version 1 with data, and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import Profile, StoreError, StoreVersionError
from messenger.client.store import Database, DatabaseKey, Keychain, Store
from messenger.client.store.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    migrate,
    schema_version,
)

from .helpers import FAST_KDF, PASSPHRASE


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as database:
        yield database


def _tables(db: Database) -> set[str]:
    return {row[0] for row in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_versions_are_contiguous_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))
    assert LATEST_VERSION >= 2


def test_a_new_database_migrates_to_the_latest(db: Database) -> None:
    assert schema_version(db) == 0
    assert migrate(db) == LATEST_VERSION
    assert {"messages", "outbox", "mls_groups", "messages_fts"} <= _tables(db)
    assert migrate(db) == LATEST_VERSION  # idempotent
    assert db.query("PRAGMA foreign_key_check") == []


def test_v1_with_data_migrates_and_keeps_it(db: Database) -> None:
    migrate(db, target=1)
    assert schema_version(db) == 1
    assert "messages_fts" not in _tables(db)
    db.execute(
        "INSERT INTO conversations (id, group_id, kind, peer_account_id, created_at, "
        "last_activity_at) VALUES (1, x'aa', 'direct', 'peer', 1, 1)"
    )
    rows = [(i, f"old message number {i}" if i != 3 else None) for i in range(1, 6)]
    db.executemany(
        "INSERT INTO messages (id, conversation_id, uid, sender_account_id, sender_client_id, "
        "outgoing, kind, body, status, sent_at, received_at) "
        "VALUES (?, 1, randomblob(16), 'peer', 'c', 0, 'text', ?, 'received', 1, 1)",
        rows,
    )
    db.execute("INSERT INTO settings VALUES ('sync.cursor', '41')")
    db.execute(
        "INSERT INTO mls_groups (group_id, epoch, state, updated_at) VALUES (x'aa', 4, x'0102', 1)"
    )

    assert migrate(db) == LATEST_VERSION

    assert db.query("SELECT id, body FROM messages ORDER BY id") == rows
    assert db.query_value("SELECT value FROM settings WHERE key = 'sync.cursor'") == "41"
    assert db.query("SELECT epoch, state FROM mls_groups") == [(4, b"\x01\x02")]
    # The new full-text index covers the rows stored before it existed...
    found = db.query(
        "SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'number' ORDER BY rowid"
    )
    assert [r[0] for r in found] == [1, 2, 4, 5]
    # ... and its triggers keep it in step afterwards.
    db.execute("UPDATE messages SET body = 'edited text' WHERE id = 1")
    assert db.query("SELECT rowid FROM messages_fts WHERE messages_fts MATCH 'edited'") == [(1,)]
    db.execute("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')")


def test_store_open_migrates_an_old_store(
    profile: Profile, keychain: Keychain, tmp_path: Path
) -> None:
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF):
        pass
    key = keychain.load(profile.id)
    assert key is not None
    # Rebuild it as a version-1 database with one message.
    for path in profile.db_files:
        path.unlink(missing_ok=True)
    with Database.open(profile.db_path, key, create=True) as db:
        migrate(db, target=1)
        db.execute(
            "INSERT INTO conversations (id, group_id, kind, title, created_at, last_activity_at) "
            "VALUES (1, x'bb', 'group', 'Team', 1, 1)"
        )
        db.execute(
            "INSERT INTO messages (conversation_id, uid, sender_account_id, sender_client_id, "
            "outgoing, kind, body, status, sent_at, received_at) "
            "VALUES (1, x'01', 'a', 'c', 0, 'text', 'kept across versions', 'received', 1, 1)"
        )
    with Store.open(profile, keychain=keychain) as store:
        assert store.schema_version == LATEST_VERSION
        hits = store.messages.search("across")
        assert [h.message.body for h in hits] == ["kept across versions"]


def test_a_newer_database_is_refused_untouched(db: Database) -> None:
    migrate(db)
    db.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(StoreVersionError):
        migrate(db)
    assert schema_version(db) == LATEST_VERSION + 1


def test_store_refuses_a_newer_database(profile: Profile, keychain: Keychain) -> None:
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as store:
        store.db.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    with pytest.raises(StoreVersionError) as info:
        Store.open(profile, keychain=keychain)
    assert "newer version" in info.value.user_message


def test_a_failing_migration_changes_nothing(db: Database) -> None:
    def half_done(database: Database) -> None:
        database.execute("CREATE TABLE half (x)")
        raise RuntimeError("migration bug")

    migrations = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "broken", half_done))
    with pytest.raises(RuntimeError):
        migrate(db, migrations=migrations)
    assert schema_version(db) == LATEST_VERSION
    assert "half" not in _tables(db)


def test_a_table_rebuild_migration_with_foreign_keys_off(db: Database) -> None:
    migrate(db)
    db.execute(
        "INSERT INTO conversations (id, group_id, kind, title, created_at, last_activity_at) "
        "VALUES (1, x'cc', 'group', 'T', 1, 1)"
    )
    db.execute("INSERT INTO conversation_members VALUES (1, 'a', 1)")

    def rebuild(database: Database) -> None:
        # The 12-step recipe: new table, copy, drop old, rename.
        database.execute(
            "CREATE TABLE conversation_members_new (conversation_id INTEGER NOT NULL "
            "REFERENCES conversations (id) ON DELETE CASCADE, account_id TEXT NOT NULL, "
            "joined_at INTEGER NOT NULL, role TEXT NOT NULL DEFAULT 'member', "
            "PRIMARY KEY (conversation_id, account_id)) WITHOUT ROWID"
        )
        database.execute(
            "INSERT INTO conversation_members_new (conversation_id, account_id, joined_at) "
            "SELECT conversation_id, account_id, joined_at FROM conversation_members"
        )
        database.execute("DROP TABLE conversation_members")
        database.execute("ALTER TABLE conversation_members_new RENAME TO conversation_members")

    migrations = (*MIGRATIONS, Migration(LATEST_VERSION + 1, "roles", rebuild, True))
    migrate(db, migrations=migrations)
    assert db.query("SELECT * FROM conversation_members") == [(1, "a", 1, "member")]
    assert db.query_value("PRAGMA foreign_keys") == 1

    def dangling(database: Database) -> None:
        database.execute("INSERT INTO conversation_members VALUES (99, 'b', 1, 'member')")

    migrations = (*migrations, Migration(LATEST_VERSION + 2, "dangling", dangling, True))
    with pytest.raises(StoreError):
        migrate(db, migrations=migrations)
    assert schema_version(db) == LATEST_VERSION + 1


def test_migrate_checks_its_arguments(db: Database) -> None:
    with pytest.raises(ValueError):
        migrate(db, target=LATEST_VERSION + 1)
    with pytest.raises(ValueError):
        migrate(db, migrations=(MIGRATIONS[1],))
