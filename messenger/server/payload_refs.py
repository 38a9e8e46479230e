"""Queue entries' references to stored messages: sealed, counted, released.

A message sent to a group is stored once (``payloads``, sealed at rest) and
each member queue gets an entry that refers to it. An entry holding the
payload's ID in the clear would show a copy of the database which
pseudonymous queues hold the same message, and hence share a group, for as
long as it waits unread (docs/metadata.md §2). So:

* ``queue_entries.payload_ref`` is the payload's ID sealed under a key from
  the server secret, bound to the entry's queue, with a fresh nonce
  (:mod:`.at_rest`): the entries of one message share no value.
* ``payloads.holders_box`` counts the entries still holding the message
  (no join can count them), sealed under the same key and bound to the
  payload ID, 8 bytes in every box: a count in the clear would tell how
  many queues the message went to, the size of its group (server
  migration 18; the plain ``holders`` column is 0). Releasing entries (an
  ack, a device's removal) opens the counts, takes the entries off, seals
  them again with fresh nonces and drops the payloads no entry holds.
  Retention drops payloads by the hour they were stored
  (``payloads.created_at``), the hour their entries carry.
* Payload IDs are drawn at random by the server, so that it can seal the
  references before the insert (one statement on PostgreSQL), and so that
  they do not show the order messages came in. Two IDs collide with a
  chance of about n / 2^62 per message, n the messages stored; the insert
  then fails on the primary key and the client sends again.

Entries stored before (server migration 15) keep their plain reference in
``legacy_payload`` until :meth:`PayloadRefs.seal_legacy` seals it when the
server starts; payloads stored before migration 18 keep their plain count
until :meth:`PayloadRefs.seal_legacy_counts` seals it.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from typing import Final

from .at_rest import SealedColumn
from .storage import StorageError, Tx

__all__ = ["PayloadRefs"]

#: Payload IDs are drawn from [1, 2^62): positive in a signed 64-bit column.
_ID_LIMIT: Final = 1 << 62
_ID_BYTES: Final = 8
#: Rows per statement: the IDs of one ``IN (...)`` list, entries sealed at start.
_CHUNK: Final = 500


def _chunks(items: list[int]) -> list[list[int]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _row(payload_id: int) -> bytes:
    """What binds a sealed count to its payload."""
    return payload_id.to_bytes(_ID_BYTES, "big")


class PayloadRefs:
    """Draw payload IDs; seal, open and release the references queue entries hold."""

    __slots__ = ("_column", "_counts")

    def __init__(self, key: bytes) -> None:
        self._column = SealedColumn(key, "queue_entries.payload_ref")
        self._counts = SealedColumn(key, "payloads.holders_box")

    @staticmethod
    def new_id() -> int:
        """A fresh random payload ID."""
        return secrets.randbelow(_ID_LIMIT - 1) + 1

    def seal(self, queue_id: str, payload_id: int) -> bytes:
        """The ``payload_ref`` of an entry of ``queue_id`` that holds ``payload_id``."""
        return self._column.seal(queue_id.encode("ascii"), payload_id.to_bytes(_ID_BYTES, "big"))

    def open(self, queue_id: str, ref: object) -> int:
        """The payload ID an entry of ``queue_id`` refers to; :class:`StorageError` if none."""
        if not isinstance(ref, bytes | memoryview):
            raise StorageError("a queue entry has no payload reference")
        data = self._column.open(queue_id.encode("ascii"), bytes(ref))
        if len(data) != _ID_BYTES:
            raise StorageError("a queue entry's payload reference is malformed")
        return int.from_bytes(data, "big")

    def seal_count(self, payload_id: int, holders: int) -> bytes:
        """The ``holders_box`` of a payload that ``holders`` entries hold."""
        if not 0 < holders < _ID_LIMIT:
            raise ValueError("a count of holders is out of range")
        return self._counts.seal(_row(payload_id), holders.to_bytes(_ID_BYTES, "big"))

    def open_count(self, payload_id: int, box: object, legacy: object) -> int:
        """How many entries hold a payload, from its sealed box (or a row not yet sealed)."""
        if box is None and isinstance(legacy, int):
            return legacy
        if not isinstance(box, bytes | memoryview):
            raise StorageError("a stored message has no count of holders")
        data = self._counts.open(_row(payload_id), bytes(box))
        if len(data) != _ID_BYTES:
            raise StorageError("a stored message's count of holders is malformed")
        return int.from_bytes(data, "big")

    async def release(self, tx: Tx, queue_id: str, refs: Iterable[object]) -> int:
        """Take deleted entries of ``queue_id`` off their payloads' counts; payloads dropped.

        ``refs`` are the deleted entries' ``payload_ref`` values. Payload
        rows are locked in ID order, the order every release uses, so two
        releases never deadlock on PostgreSQL: the second waits for the
        first to commit.
        """
        released = Counter(self.open(queue_id, ref) for ref in refs)
        if not released:
            return 0
        ordered = sorted(released)
        # The members of a group ack the same messages at about the same
        # time: read (and on PostgreSQL lock) the rows in ID order (ORDER BY
        # comes before the lock), so that their acks queue up instead of
        # deadlocking. (SQLite runs one write transaction at a time.)
        left: dict[int, int] = {}
        for chunk in _chunks(ordered):
            rows = await tx.fetchall(
                "SELECT payload_id, holders_box, holders FROM payloads "  # noqa: S608
                f"WHERE payload_id IN ({_placeholders(len(chunk))}) "
                "ORDER BY payload_id" + tx.for_update,
                *chunk,
            )
            for payload_id, box, legacy in rows:
                pid = int(payload_id)
                left[pid] = self.open_count(pid, box, legacy) - released[pid]
        # A payload retention already dropped is not in ``left``.
        kept = [(self.seal_count(pid, n), pid) for pid, n in left.items() if n > 0]
        if kept:
            await tx.executemany(
                "UPDATE payloads SET holders_box = ?, holders = 0 WHERE payload_id = ?", kept
            )
        dropped = 0
        for chunk in _chunks([pid for pid, n in left.items() if n <= 0]):
            dropped += await tx.execute(
                f"DELETE FROM payloads WHERE payload_id IN ({_placeholders(len(chunk))})",  # noqa: S608
                *chunk,
            )
        return dropped

    async def seal_legacy(self, tx: Tx) -> int:
        """Seal the references of entries stored before server migration 15; how many.

        In batches of 500 (a sealed entry no longer matches the partial
        index), so memory stays bounded however many entries wait. The
        migration already counted each payload's holders. The update is
        conditional, so processes starting together do not both seal one.
        """
        sealed = 0
        while True:
            rows = await tx.fetchall(
                "SELECT queue_id, seq, legacy_payload FROM queue_entries "
                "WHERE legacy_payload IS NOT NULL LIMIT ?",
                _CHUNK,
            )
            if not rows:
                return sealed
            await tx.executemany(
                "UPDATE queue_entries SET payload_ref = ?, legacy_payload = NULL "
                "WHERE queue_id = ? AND seq = ? AND legacy_payload IS NOT NULL",
                [
                    (self.seal(str(queue_id), int(payload_id)), str(queue_id), int(seq))
                    for queue_id, seq, payload_id in rows
                ],
            )
            sealed += len(rows)

    async def seal_legacy_counts(self, tx: Tx) -> int:
        """Seal the counts of payloads stored before server migration 18; how many.

        In batches of 500 (a sealed row no longer matches the partial
        index). The update is conditional, so processes starting together do
        not both seal one (the second would seal the 0 left by the first). A
        count of 0 or less (no entry holds the payload any more) drops it.
        """
        sealed = 0
        while True:
            rows = await tx.fetchall(
                "SELECT payload_id, holders FROM payloads WHERE holders_box IS NULL LIMIT ?",
                _CHUNK,
            )
            if not rows:
                return sealed
            held = [(int(p), int(h)) for p, h in rows]
            boxes = [(self.seal_count(p, h), p) for p, h in held if h > 0]
            if boxes:
                await tx.executemany(
                    "UPDATE payloads SET holders_box = ?, holders = 0 "
                    "WHERE payload_id = ? AND holders_box IS NULL",
                    boxes,
                )
            for chunk in _chunks([p for p, h in held if h <= 0]):
                await tx.execute(
                    "DELETE FROM payloads WHERE holders_box IS NULL AND payload_id IN "  # noqa: S608
                    f"({_placeholders(len(chunk))})",
                    *chunk,
                )
            sealed += len(rows)
