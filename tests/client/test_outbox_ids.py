"""Outbox item IDs are never used again (client store migration 14).

An item's ID is how the outbox sender, the inbound pipeline (which removes an
item when its echo comes back from the queue) and the store refer to it
across awaits. When SQLite gave a new item the ID of one just removed, a send
still on its way for the removed item wrote its request into the new item
and removed it as sent: the new message was lost. These tests check the IDs,
the migration of an outbox from before, and the race itself.
"""

from __future__ import annotations

from pathlib import Path

from messenger.client.store import Database, DatabaseKey, Store
from messenger.client.store.migrations import migrate
from messenger.client.store.outbox import OutboxKind

GROUP = b"G" * 32


def test_an_emptied_outbox_does_not_give_an_id_again(store: Store) -> None:
    first = store.outbox.enqueue(OutboxKind.MESSAGE, b"", now=1, group_id=GROUP)
    store.outbox.remove_many([first.id])  # its echo came back: sent
    second = store.outbox.enqueue(OutboxKind.MESSAGE, b"", now=2, group_id=GROUP)
    assert second.id > first.id
    # What a send still on its way for the first item does when it is answered:
    # it names the first item's ID, which now names nothing.
    store.outbox.set_built_many([(first.id, b"stale request", 1, b"h" * 32)])
    assert store.outbox.remove_many([first.id]) == []
    kept = store.outbox.get(second.id)
    assert kept is not None
    assert (kept.payload, kept.idempotency_key) == (b"", second.idempotency_key)


def test_migration_14_keeps_every_item_and_its_id(tmp_path: Path) -> None:
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as db:
        migrate(db, target=13)
        for item_id, key in ((3, b"k" * 16), (7, b"j" * 16)):
            db.execute(
                "INSERT INTO outbox (id, idempotency_key, kind, group_id, payload, "
                "next_attempt_at, created_at, intent, content, message_hash) "
                "VALUES (?, ?, 'message', ?, x'01', 5, 4, 'text', x'02', ?)",
                (item_id, key, GROUP, bytes([item_id]) * 32),
            )
        assert migrate(db) >= 14
        rows = db.query(
            "SELECT id, idempotency_key, group_id, payload, intent, content, message_hash "
            "FROM outbox ORDER BY id"
        )
        assert [tuple(r) for r in rows] == [
            (3, b"k" * 16, GROUP, b"\x01", "text", b"\x02", b"\x03" * 32),
            (7, b"j" * 16, GROUP, b"\x01", "text", b"\x02", b"\x07" * 32),
        ]
        indexes = {
            str(r[0]) for r in db.query("SELECT name FROM sqlite_master WHERE tbl_name = 'outbox'")
        }
        assert {"outbox_due", "outbox_by_message", "outbox_by_hash"} <= indexes
        db.execute("DELETE FROM outbox")
        db.execute(
            "INSERT INTO outbox (idempotency_key, kind, payload, next_attempt_at, created_at) "
            "VALUES (x'00', 'message', x'', 1, 1)"
        )
        assert db.query_value("SELECT id FROM outbox") == 8
