"""The SQLCipher connection: transactions, error mapping, thread binding."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import (
    ConstraintError,
    DiskFullError,
    GroupStateRegressionError,
    StoreError,
    StoreNotFoundError,
)
from messenger.client.store import Database, DatabaseKey, Store
from messenger.client.store.database import map_sqlite_error

from .helpers import add_text, direct_conversation


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with Database.open(tmp_path / "t.db", DatabaseKey.generate(), create=True) as database:
        database.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        yield database


def _values(db: Database) -> list[int]:
    return [row[0] for row in db.query("SELECT x FROM t ORDER BY x")]


def test_open_sets_wal_foreign_keys_and_busy_timeout(db: Database) -> None:
    assert db.query_value("PRAGMA journal_mode") == "wal"
    assert db.query_value("PRAGMA foreign_keys") == 1
    assert db.query_value("PRAGMA busy_timeout") == 5000
    assert db.query_value("PRAGMA cipher_version").startswith("4.")


def test_open_does_not_create_unless_asked(tmp_path: Path) -> None:
    with pytest.raises(StoreNotFoundError):
        Database.open(tmp_path / "absent.db", DatabaseKey.generate())
    assert not (tmp_path / "absent.db").exists()


def test_an_exception_rolls_back_everything(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        with db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("boom")
    assert _values(db) == []
    assert not db.in_transaction


def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError), db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("inner")
        db.execute("INSERT INTO t VALUES (3)")
    assert _values(db) == [1, 3]


def test_a_failed_statement_inside_a_transaction_can_be_caught(db: Database) -> None:
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ConstraintError):
            db.execute("INSERT INTO t VALUES (1)")
        db.execute("INSERT INTO t VALUES (2)")
    assert _values(db) == [1, 2]


def test_disk_full_is_mapped_and_rolled_back(db: Database) -> None:
    db.execute("INSERT INTO t VALUES (0)")
    pages = int(db.query_value("PRAGMA page_count"))
    db.execute("CREATE TABLE big (b BLOB)")
    db.query_value(f"PRAGMA max_page_count = {pages + 3}")
    with pytest.raises(DiskFullError) as info, db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        for _ in range(50):
            db.execute("INSERT INTO big VALUES (randomblob(3000))")
    assert "full" in info.value.user_message
    assert _values(db) == [0]
    assert db.query_value("SELECT count(*) FROM big") == 0
    # The connection stays usable.
    db.execute("INSERT INTO t VALUES (5)")
    assert _values(db) == [0, 5]


def test_after_sqlite_rolled_back_a_transaction_nothing_autocommits(db: Database) -> None:
    """A caught full-disk error must not let the rest of the block commit piecemeal."""
    db.execute("CREATE TABLE big (b BLOB)")
    pages = int(db.query_value("PRAGMA page_count"))
    db.query_value(f"PRAGMA max_page_count = {pages + 3}")
    with pytest.raises(StoreError), db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(DiskFullError):
            for _ in range(50):
                db.execute("INSERT INTO big VALUES (randomblob(3000))")
        db.execute("INSERT INTO t VALUES (2)")
    assert _values(db) == []


def test_store_disk_full_in_a_repository(store: Store) -> None:
    conversation = direct_conversation(store)
    pages = int(store.db.query_value("PRAGMA page_count"))
    store.db.query_value(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(DiskFullError):
        for i in range(500):
            add_text(store, conversation.id, f"message {i} " + "x" * 2000)
    store.db.query_value("PRAGMA max_page_count = 1000000")
    add_text(store, conversation.id, "after")


def test_stage_persist_merge_writes_state_and_messages_together(store: Store) -> None:
    conversation = direct_conversation(store)
    store.groups.save(conversation.group_id, 1, b"state-1", now=1)

    class MergeFailedError(Exception):
        pass

    with pytest.raises(MergeFailedError), store.transaction():
        store.groups.save(conversation.group_id, 2, b"state-2", now=2)
        add_text(store, conversation.id, "from epoch 2")
        raise MergeFailedError
    group = store.groups.get(conversation.group_id)
    assert group is not None and (group.epoch, group.state) == (1, b"state-1")
    assert store.messages.latest(conversation.id) == []

    with store.transaction():
        store.groups.save(conversation.group_id, 2, b"state-2", now=2)
        add_text(store, conversation.id, "from epoch 2")
    assert store.groups.epoch(conversation.group_id) == 2
    assert [m.body for m in store.messages.latest(conversation.id)] == ["from epoch 2"]


def test_group_state_never_goes_back(store: Store) -> None:
    store.groups.save(b"g", 3, b"s3", now=1)
    store.groups.save(b"g", 3, b"s3b", now=2)  # same epoch: ratchet advanced
    with pytest.raises(GroupStateRegressionError):
        store.groups.save(b"g", 2, b"s2", now=3)
    group = store.groups.get(b"g")
    assert group is not None and group.state == b"s3b"


def test_the_connection_belongs_to_its_thread(db: Database) -> None:
    errors: list[BaseException] = []

    def use() -> None:
        try:
            db.query("SELECT 1")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert errors and not isinstance(errors[0], StoreError)


def test_bad_sql_is_a_bug_not_a_store_error(db: Database) -> None:
    with pytest.raises(Exception) as info:
        db.execute("INSERT INTO t VALUES (?)", (1, 2))  # wrong number of bindings
    assert not isinstance(info.value, StoreError)


def test_error_mapping_falls_back_on_the_message() -> None:
    assert isinstance(map_sqlite_error(Exception("database or disk is full")), DiskFullError)
    assert type(map_sqlite_error(Exception("no such table: x"))) is StoreError


def test_export_copies_schema_data_and_version(db: Database, tmp_path: Path) -> None:
    db.execute("INSERT INTO t VALUES (7)")
    db.execute("PRAGMA user_version = 9")
    key = DatabaseKey.generate()
    db.export_to(tmp_path / "copy.db", key)
    with Database.open(tmp_path / "copy.db", key) as copy:
        assert _values(copy) == [7]
        assert copy.query_value("PRAGMA user_version") == 9
        copy.check_integrity()
    with pytest.raises(StoreError), db.transaction():
        db.export_to(tmp_path / "again.db", key)
