"""Incoming messages that cannot be processed yet (RFC 9420 §14, §15.3).

A message can arrive before what it depends on: a message of an epoch this
client has not reached (the commit that starts it is still to come), or a
message of a group whose Welcome has not been processed. Such a message is
kept here, in the same transaction that moves the queue cursor past it, and
offered to the group again after each commit or Welcome. Rows that never
become processable are dropped after a while.

Anyone who can get bytes into this client's queue can make rows here: a
stranger only has to add the queue to a server group of their own and send
messages for it (docs/threat-model.md). So the table is bounded
(:class:`PendingLimits`) in rows, bytes and age -- per group, for all the
groups this client has no state for together ("unknown" groups, the
stranger's vector), and in total. A message that would exceed a bound is
*refused* (not kept); rows already kept are never evicted to make room:

* per group, the oldest rows are the ones the next commit or Welcome will
  let in first (the queue is in order), so a flooded group keeps its first
  messages and loses only the newest ones;
* across groups, evicting would let the owner of one group (a junk group)
  push out another group's messages; refusing new ones means a junk flood
  only ever hurts itself and later messages of other unknown groups;
* unknown groups have a budget of their own (below the total), so junk for
  groups the client does not know can never use up the room that pending
  messages of its real groups need, and they expire sooner.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from .database import Database

__all__ = [
    "DEFAULT_PENDING_LIMITS",
    "PendingAdmission",
    "PendingInbound",
    "PendingInboundRepository",
    "PendingLimits",
]

_MIB: Final = 1 << 20
_DAY_MS: Final = 86_400_000


@dataclass(frozen=True, slots=True)
class PendingLimits:
    """The bounds of the pending table (rows, bytes of message data, age).

    * ``group_items`` / ``group_bytes`` -- for any one group (256 rows,
      8 MiB): far more than a group legitimately has in flight across one
      missing commit, while one group cannot fill the disk;
    * ``unknown_items`` / ``unknown_bytes`` -- for all groups without local
      state together (512 rows, 16 MiB): messages that arrive before their
      Welcome are rare (the server queues the Welcome before them), and this
      is where a stranger's junk lands;
    * ``total_items`` / ``total_bytes`` -- for the whole table (2,048 rows,
      64 MiB);
    * ``ttl_ms`` -- rows of a known group are dropped after 14 days;
      ``unknown_ttl_ms`` -- rows of an unknown group after 1 day (a Welcome
      comes before, or right after, its group's first messages; the age is
      counted from when this client received the row, so time spent offline
      does not count).
    """

    group_items: int = 256
    group_bytes: int = 8 * _MIB
    unknown_items: int = 512
    unknown_bytes: int = 16 * _MIB
    total_items: int = 2048
    total_bytes: int = 64 * _MIB
    ttl_ms: int = 14 * _DAY_MS
    unknown_ttl_ms: int = 1 * _DAY_MS

    def __post_init__(self) -> None:
        values = (
            self.group_items,
            self.group_bytes,
            self.unknown_items,
            self.unknown_bytes,
            self.total_items,
            self.total_bytes,
            self.ttl_ms,
            self.unknown_ttl_ms,
        )
        if min(values) <= 0:
            raise ValueError("every pending limit is positive")


DEFAULT_PENDING_LIMITS: Final = PendingLimits()


class PendingAdmission(enum.StrEnum):
    """What :meth:`PendingInboundRepository.admit` did with a message."""

    KEPT = "kept"
    GROUP_FULL = "group_full"
    """The group already has its share of rows or bytes."""
    UNKNOWN_FULL = "unknown_full"
    """Groups without local state already have their share."""
    TOTAL_FULL = "total_full"
    """The table is full."""


@dataclass(frozen=True, slots=True)
class PendingInbound:
    id: int
    group_id: bytes
    epoch: int
    seq: int
    """The delivery queue sequence number it came with."""
    data: bytes = field(repr=False)
    received_at: int


_UNKNOWN: Final = "group_id NOT IN (SELECT group_id FROM mls_groups)"


class PendingInboundRepository:
    """Messages waiting for their epoch or group."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, group_id: bytes, epoch: int, seq: int, data: bytes, *, now: int) -> None:
        """Keep a message, without checking any limit (see :meth:`admit`)."""
        self._db.execute(
            "INSERT INTO pending_inbound (group_id, epoch, seq, data, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (group_id, epoch, seq, data, now),
        )

    def admit(
        self,
        group_id: bytes,
        epoch: int,
        seq: int,
        data: bytes,
        *,
        now: int,
        limits: PendingLimits = DEFAULT_PENDING_LIMITS,
    ) -> PendingAdmission:
        """Keep a message if the limits allow it; what was done.

        Expired rows are dropped first, so old junk never stands in the way;
        rows already kept are never evicted (see the module docstring).
        """
        self.delete_expired(now=now, limits=limits)
        size = len(data)
        count, used = self._usage("group_id = ?", (group_id,))
        if count + 1 > limits.group_items or used + size > limits.group_bytes:
            return PendingAdmission.GROUP_FULL
        known = self._db.query_value("SELECT 1 FROM mls_groups WHERE group_id = ?", (group_id,))
        if known is None:
            count, used = self._usage(_UNKNOWN, ())
            if count + 1 > limits.unknown_items or used + size > limits.unknown_bytes:
                return PendingAdmission.UNKNOWN_FULL
        count, used = self._usage("1", ())
        if count + 1 > limits.total_items or used + size > limits.total_bytes:
            return PendingAdmission.TOTAL_FULL
        self.add(group_id, epoch, seq, data, now=now)
        return PendingAdmission.KEPT

    def _usage(self, where: str, args: tuple[bytes, ...]) -> tuple[int, int]:
        """Rows and bytes of data matching ``where`` (a fixed SQL condition)."""
        row = self._db.query_one(
            f"SELECT count(*), coalesce(sum(length(data)), 0) FROM pending_inbound WHERE {where}",  # noqa: S608
            args,
        )
        assert row is not None
        return int(row[0]), int(row[1])

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

    def total_bytes(self) -> int:
        """The bytes of message data kept."""
        return self._usage("1", ())[1]

    def usage_by_group(self) -> dict[bytes, tuple[int, int]]:
        """Rows and bytes kept, by group (for diagnostics and tests)."""
        rows = self._db.query(
            "SELECT group_id, count(*), coalesce(sum(length(data)), 0) FROM pending_inbound "
            "GROUP BY group_id"
        )
        return {bytes(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def delete_older_than(self, cutoff: int) -> int:
        return self._db.execute(
            "DELETE FROM pending_inbound WHERE received_at < ?", (cutoff,)
        ).rowcount

    def delete_expired(self, *, now: int, limits: PendingLimits = DEFAULT_PENDING_LIMITS) -> int:
        """Drop rows past their age (shorter for unknown groups); how many."""
        dropped = self.delete_older_than(now - limits.ttl_ms)
        dropped += self._db.execute(
            f"DELETE FROM pending_inbound WHERE received_at < ? AND {_UNKNOWN}",  # noqa: S608
            (now - limits.unknown_ttl_ms,),
        ).rowcount
        return dropped
