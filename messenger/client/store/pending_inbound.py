"""Incoming messages that cannot be processed yet (RFC 9420 §14, §15.3).

A message can arrive before what it depends on: a message of an epoch this
client has not reached (the commit that starts it is still to come), or a
message of a group whose Welcome has not been processed. Such a message is
kept here, in the same transaction that moves the queue cursor past it, and
offered to the group again after each commit or Welcome. Rows that never
become processable are dropped after a while.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .database import Database

__all__ = ["PendingInbound", "PendingInboundRepository"]


@dataclass(frozen=True, slots=True)
class PendingInbound:
    id: int
    group_id: bytes
    epoch: int
    seq: int
    """The delivery queue sequence number it came with."""
    data: bytes = field(repr=False)
    received_at: int


class PendingInboundRepository:
    """Messages waiting for their epoch or group."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, group_id: bytes, epoch: int, seq: int, data: bytes, *, now: int) -> None:
        self._db.execute(
            "INSERT INTO pending_inbound (group_id, epoch, seq, data, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (group_id, epoch, seq, data, now),
        )

    def for_group(self, group_id: bytes) -> list[PendingInbound]:
        """The group's waiting messages, in the order they arrived."""
        rows = self._db.query(
            "SELECT id, group_id, epoch, seq, data, received_at FROM pending_inbound "
            "WHERE group_id = ? ORDER BY id",
            (group_id,),
        )
        return [PendingInbound(*row) for row in rows]

    def remove(self, pending_id: int) -> bool:
        return (
            self._db.execute("DELETE FROM pending_inbound WHERE id = ?", (pending_id,)).rowcount > 0
        )

    def count(self) -> int:
        return int(self._db.query_value("SELECT count(*) FROM pending_inbound"))

    def delete_older_than(self, cutoff: int) -> int:
        return self._db.execute(
            "DELETE FROM pending_inbound WHERE received_at < ?", (cutoff,)
        ).rowcount
