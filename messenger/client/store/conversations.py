"""Conversations: one per MLS group, with their members as the UI shows them.

A ``direct`` conversation is a two-member MLS group with one other account
(``peer_account_id``); a ``group`` conversation has a title and any number
of members. The authoritative member list is the MLS group's ratchet tree
(:mod:`.groups`); ``conversation_members`` is the client's copy by account,
updated in the same transaction as the group state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .database import Database, Row

__all__ = [
    "Conversation",
    "ConversationKind",
    "ConversationMember",
    "ConversationRepository",
]

_COLUMNS = (
    "id, group_id, kind, title, peer_account_id, created_at, last_activity_at, muted, "
    "archived, left_at"
)


class ConversationKind(enum.StrEnum):
    DIRECT = "direct"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation and its MLS group id."""

    id: int
    group_id: bytes
    kind: ConversationKind
    title: str | None
    peer_account_id: str | None
    created_at: int
    last_activity_at: int
    muted: bool
    archived: bool
    left_at: int | None


@dataclass(frozen=True, slots=True)
class ConversationMember:
    conversation_id: int
    account_id: str
    joined_at: int


def _conversation(row: Row) -> Conversation:
    return Conversation(
        id=row[0],
        group_id=row[1],
        kind=ConversationKind(row[2]),
        title=row[3],
        peer_account_id=row[4],
        created_at=row[5],
        last_activity_at=row[6],
        muted=bool(row[7]),
        archived=bool(row[8]),
        left_at=row[9],
    )


class ConversationRepository:
    """Conversations and their members."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        group_id: bytes,
        kind: ConversationKind,
        *,
        now: int,
        title: str | None = None,
        peer_account_id: str | None = None,
    ) -> Conversation:
        """A new conversation for the MLS group ``group_id``.

        A direct conversation needs ``peer_account_id``; a group one must not
        have it. ConstraintError if the group already has a conversation.
        """
        if (kind is ConversationKind.DIRECT) != (peer_account_id is not None):
            raise ValueError("a direct conversation, and only it, has a peer")
        result = self._db.execute(
            "INSERT INTO conversations (group_id, kind, title, peer_account_id, created_at, "
            "last_activity_at) VALUES (?, ?, ?, ?, ?, ?)",
            (group_id, kind.value, title, peer_account_id, now, now),
        )
        assert result.lastrowid is not None
        conversation = self.get(result.lastrowid)
        assert conversation is not None
        return conversation

    def get(self, conversation_id: int) -> Conversation | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM conversations WHERE id = ?",  # noqa: S608
            (conversation_id,),
        )
        return None if row is None else _conversation(row)

    def by_group(self, group_id: bytes) -> Conversation | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM conversations WHERE group_id = ?",  # noqa: S608
            (group_id,),
        )
        return None if row is None else _conversation(row)

    def direct_with(self, account_id: str) -> Conversation | None:
        """The most recent direct conversation with ``account_id`` that was not left."""
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM conversations "  # noqa: S608
            "WHERE peer_account_id = ? AND kind = 'direct' AND left_at IS NULL "
            "ORDER BY last_activity_at DESC, id DESC LIMIT 1",
            (account_id,),
        )
        return None if row is None else _conversation(row)

    def all(self, *, archived: bool = False) -> list[Conversation]:
        """The conversations (archived or not), most recently active first."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM conversations WHERE archived = ? "  # noqa: S608
            "ORDER BY last_activity_at DESC, id DESC",
            (int(archived),),
        )
        return [_conversation(row) for row in rows]

    def touch(self, conversation_id: int, at: int) -> None:
        """Move the last activity time forward to ``at`` (never back)."""
        self._db.execute(
            "UPDATE conversations SET last_activity_at = max(last_activity_at, ?) WHERE id = ?",
            (at, conversation_id),
        )

    def rename(self, conversation_id: int, title: str | None) -> bool:
        result = self._db.execute(
            "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
        )
        return result.rowcount > 0

    def set_muted(self, conversation_id: int, muted: bool) -> bool:
        result = self._db.execute(
            "UPDATE conversations SET muted = ? WHERE id = ?", (int(muted), conversation_id)
        )
        return result.rowcount > 0

    def set_archived(self, conversation_id: int, archived: bool) -> bool:
        result = self._db.execute(
            "UPDATE conversations SET archived = ? WHERE id = ?", (int(archived), conversation_id)
        )
        return result.rowcount > 0

    def mark_left(self, conversation_id: int, at: int) -> bool:
        """Record that this client left (or was removed from) the group."""
        result = self._db.execute(
            "UPDATE conversations SET left_at = ? WHERE id = ? AND left_at IS NULL",
            (at, conversation_id),
        )
        return result.rowcount > 0

    def rejoin(self, conversation_id: int) -> bool:
        """Clear ``left_at``: this client was added to the group again."""
        result = self._db.execute(
            "UPDATE conversations SET left_at = NULL WHERE id = ?", (conversation_id,)
        )
        return result.rowcount > 0

    def delete(self, conversation_id: int) -> bool:
        """Delete the conversation with its messages, members and read markers."""
        result = self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return result.rowcount > 0

    # -- members -----------------------------------------------------------------

    def add_member(self, conversation_id: int, account_id: str, *, joined_at: int) -> bool:
        """Add a member; whether they were not one already."""
        result = self._db.execute(
            "INSERT OR IGNORE INTO conversation_members (conversation_id, account_id, joined_at) "
            "VALUES (?, ?, ?)",
            (conversation_id, account_id, joined_at),
        )
        return result.rowcount > 0

    def remove_member(self, conversation_id: int, account_id: str) -> bool:
        result = self._db.execute(
            "DELETE FROM conversation_members WHERE conversation_id = ? AND account_id = ?",
            (conversation_id, account_id),
        )
        return result.rowcount > 0

    def members(self, conversation_id: int) -> list[ConversationMember]:
        rows = self._db.query(
            "SELECT conversation_id, account_id, joined_at FROM conversation_members "
            "WHERE conversation_id = ? ORDER BY joined_at, account_id",
            (conversation_id,),
        )
        return [ConversationMember(*row) for row in rows]
