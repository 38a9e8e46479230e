"""Reactions: an emoji that an account put on a message.

An account may put several different emoji on one message, each once.
Removing the message (or deleting it for everyone) removes its reactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .database import Database

__all__ = ["MAX_EMOJI_LENGTH", "Reaction", "ReactionRepository"]

#: Long enough for any emoji ZWJ sequence, short enough to refuse prose.
MAX_EMOJI_LENGTH: Final = 32


@dataclass(frozen=True, slots=True)
class Reaction:
    message_id: int
    account_id: str
    emoji: str
    reacted_at: int


class ReactionRepository:
    """Reactions on messages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, message_id: int, account_id: str, emoji: str, *, at: int) -> bool:
        """Add a reaction; whether it is new (False if the account already put it)."""
        if not 0 < len(emoji) <= MAX_EMOJI_LENGTH:
            raise ValueError("an emoji is 1 to 32 characters")
        result = self._db.execute(
            "INSERT OR IGNORE INTO reactions (message_id, account_id, emoji, reacted_at) "
            "VALUES (?, ?, ?, ?)",
            (message_id, account_id, emoji, at),
        )
        return result.rowcount > 0

    def remove(self, message_id: int, account_id: str, emoji: str) -> bool:
        result = self._db.execute(
            "DELETE FROM reactions WHERE message_id = ? AND account_id = ? AND emoji = ?",
            (message_id, account_id, emoji),
        )
        return result.rowcount > 0

    def for_message(self, message_id: int) -> list[Reaction]:
        """The reactions on a message, oldest first."""
        return self.for_messages([message_id]).get(message_id, [])

    def for_messages(self, message_ids: Sequence[int]) -> dict[int, list[Reaction]]:
        """The reactions on each of ``message_ids`` (for a page of the timeline)."""
        found: dict[int, list[Reaction]] = {}
        for start in range(0, len(message_ids), 500):
            chunk = list(message_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = self._db.query(
                "SELECT message_id, account_id, emoji, reacted_at FROM reactions "  # noqa: S608
                f"WHERE message_id IN ({marks}) ORDER BY message_id, reacted_at, account_id",
                chunk,
            )
            for row in rows:
                found.setdefault(row[0], []).append(Reaction(*row))
        return found
