"""The account's devices as this device knows them, and its devices group.

``devices_group`` holds the MLS group ID of the account's devices group
(docs/devices.md §3; one row); its conversation is of kind ``devices``.
``devices`` has a row per device seen in that group: its signature key
(from its leaf), the name and last-seen time its device records said, when
it was first seen and, once it left the group or was removed, when.
Nothing here comes from the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from .database import Database, Row

__all__ = ["Device", "DeviceRepository"]

_COLUMNS = "client_id, signature_key, name, last_seen_at, added_at, removed_at"


@dataclass(frozen=True, slots=True)
class Device:
    """One device of this account."""

    client_id: str
    signature_key: bytes
    name: str | None
    last_seen_at: int | None
    """Unix ms, by the device's own clock (its last device record)."""
    added_at: int
    removed_at: int | None

    @property
    def active(self) -> bool:
        return self.removed_at is None


def _device(row: Row) -> Device:
    return Device(row[0], bytes(row[1]), row[2], row[3], row[4], row[5])


class DeviceRepository:
    """The devices group's ID and the account's devices."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # -- the devices group ---------------------------------------------------------------

    def group_id(self) -> bytes | None:
        """The devices group's MLS group ID (None: this device has none yet)."""
        value = self._db.query_value("SELECT group_id FROM devices_group WHERE singleton = 1")
        return None if value is None else bytes(value)

    def set_group_id(self, group_id: bytes) -> None:
        """Record the devices group (replacing an earlier one)."""
        self._db.execute(
            "INSERT INTO devices_group (singleton, group_id) VALUES (1, ?) "
            "ON CONFLICT (singleton) DO UPDATE SET group_id = excluded.group_id",
            (group_id,),
        )

    # -- devices -------------------------------------------------------------------------

    def forget_group(self) -> None:
        """No devices group any more (one that could not be rejoined): the next
        start makes a new one."""
        self._db.execute("DELETE FROM devices_group")

    def get(self, client_id: str) -> Device | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM devices WHERE client_id = ?",  # noqa: S608
            (client_id,),
        )
        return None if row is None else _device(row)

    def all(self, *, include_removed: bool = False) -> list[Device]:
        """The devices, first seen first (removed ones only with ``include_removed``)."""
        where = "" if include_removed else "WHERE removed_at IS NULL "
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM devices {where}"  # noqa: S608
            "ORDER BY added_at, client_id"
        )
        return [_device(row) for row in rows]

    def seen(self, client_id: str, signature_key: bytes, *, now: int) -> bool:
        """A device is a member of the devices group; whether that is news.

        A device seen again (re-added) is active again; a new signature key
        for a known client ID replaces the old one.
        """
        result = self._db.execute(
            "INSERT INTO devices (client_id, signature_key, added_at) VALUES (?, ?, ?) "
            "ON CONFLICT (client_id) DO UPDATE SET signature_key = excluded.signature_key, "
            "removed_at = NULL "
            "WHERE devices.removed_at IS NOT NULL "
            "OR devices.signature_key != excluded.signature_key",
            (client_id, signature_key, now),
        )
        return result.rowcount > 0

    def mark_removed(self, client_id: str, *, at: int) -> bool:
        """The device left the devices group or was removed; whether that is news."""
        result = self._db.execute(
            "UPDATE devices SET removed_at = ? WHERE client_id = ? AND removed_at IS NULL",
            (at, client_id),
        )
        return result.rowcount > 0

    def set_name(self, client_id: str, name: str | None) -> bool:
        """Whether the name changed (the device must be known)."""
        result = self._db.execute(
            "UPDATE devices SET name = ? WHERE client_id = ? AND name IS NOT ?",
            (name, client_id, name),
        )
        return result.rowcount > 0

    def set_last_seen(self, client_id: str, at: int) -> bool:
        """Move the last-seen time forward (never back); whether it moved."""
        result = self._db.execute(
            "UPDATE devices SET last_seen_at = ? WHERE client_id = ? "
            "AND (last_seen_at IS NULL OR last_seen_at < ?)",
            (at, client_id, at),
        )
        return result.rowcount > 0
