"""The clock of each value synced between this account's devices (docs/devices.md §3).

A synced value -- a contact's name, a conversation's draft, a setting -- is
named by a record type and a key. Its row says when, by whose clock, it was
last written and by which client: the last writer wins, by ``(updated_at,
by_client)`` compared in that order (the client ID breaks ties), so every
device ends with the same value whatever order the records arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database

__all__ = ["ClockEntry", "SyncClockRepository"]


@dataclass(frozen=True, slots=True, order=True)
class ClockEntry:
    """When a value was written (Unix ms, the writer's clock), and by which client."""

    updated_at: int
    by_client: str


class SyncClockRepository:
    """Last-writer-wins clocks per (record, key)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, record: str, key: str) -> ClockEntry | None:
        row = self._db.query_one(
            "SELECT updated_at, by_client FROM sync_clock WHERE record = ? AND key = ?",
            (record, key),
        )
        return None if row is None else ClockEntry(row[0], row[1])

    def advance(self, record: str, key: str, entry: ClockEntry) -> bool:
        """Record ``entry`` if it is later than the stored one; whether it wins.

        A write that does not win must not be applied: a later one already was.
        """
        result = self._db.execute(
            "INSERT INTO sync_clock (record, key, updated_at, by_client) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (record, key) DO UPDATE SET updated_at = excluded.updated_at, "
            "by_client = excluded.by_client "
            "WHERE (excluded.updated_at, excluded.by_client) "
            "> (sync_clock.updated_at, sync_clock.by_client)",
            (record, key, entry.updated_at, entry.by_client),
        )
        return result.rowcount > 0

    def stamp(self, record: str, key: str, *, now: int, client_id: str) -> ClockEntry:
        """A local write now: the entry recorded, later than any stored one.

        If another device's clock ran ahead, the local write still wins: its
        time is moved past the stored one (a Lamport clock over wall time).
        """
        stored = self.get(record, key)
        at = now if stored is None or now > stored.updated_at else stored.updated_at + 1
        entry = ClockEntry(at, client_id)
        if not self.advance(record, key, entry):  # the same time by a larger client ID
            entry = ClockEntry(at + 1, client_id)
            self.advance(record, key, entry)
        return entry

    def all(self) -> list[tuple[str, str, ClockEntry]]:
        """Every clock, for a snapshot sent to a new device."""
        rows = self._db.query(
            "SELECT record, key, updated_at, by_client FROM sync_clock ORDER BY record, key"
        )
        return [(row[0], row[1], ClockEntry(row[2], row[3])) for row in rows]
