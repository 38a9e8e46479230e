"""Hashes of the MLS messages this client sent (RFC 9420 §6, RFC 9750 §5.2).

The server puts every group message into every member's queue, the
sender's own included (docs/threat-model.md). A client cannot process its
own PrivateMessage again (its key for that generation is gone, RFC 9420
§9.2), so it recognises the echo by the SHA-256 of the message bytes,
stored here in the same transaction as the outbox item that carries them.
A hash is deleted when its echo arrives, or after a while (a send that was
built again in a newer epoch never comes back).
"""

from __future__ import annotations

from collections.abc import Sequence

from .database import Database

__all__ = ["SentMessageRepository"]


class SentMessageRepository:
    """SHA-256 digests of sent MLS messages, by group."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, digest: bytes, group_id: bytes, *, now: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO sent_messages (hash, group_id, created_at) VALUES (?, ?, ?)",
            (digest, group_id, now),
        )

    def add_many(self, digests: Sequence[bytes], group_id: bytes, *, now: int) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO sent_messages (hash, group_id, created_at) VALUES (?, ?, ?)",
            [(digest, group_id, now) for digest in digests],
        )

    def contained(self, digests: Sequence[bytes]) -> set[bytes]:
        """Which of ``digests`` are hashes of messages this client sent."""
        if not digests:
            return set()
        marks = ", ".join("?" * len(digests))
        rows = self._db.query(
            f"SELECT hash FROM sent_messages WHERE hash IN ({marks})",  # noqa: S608
            tuple(digests),
        )
        return {bytes(row[0]) for row in rows}

    def remove_many(self, digests: Sequence[bytes]) -> None:
        self._db.executemany("DELETE FROM sent_messages WHERE hash = ?", [(d,) for d in digests])

    def contains(self, digest: bytes) -> bool:
        return (
            self._db.query_value("SELECT 1 FROM sent_messages WHERE hash = ?", (digest,))
            is not None
        )

    def remove(self, digest: bytes) -> bool:
        return self._db.execute("DELETE FROM sent_messages WHERE hash = ?", (digest,)).rowcount > 0

    def delete_older_than(self, cutoff: int) -> int:
        """Forget hashes recorded before ``cutoff``; how many."""
        return self._db.execute(
            "DELETE FROM sent_messages WHERE created_at < ?", (cutoff,)
        ).rowcount
