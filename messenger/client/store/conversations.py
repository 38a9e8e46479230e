"""Conversations: one per MLS group, with their members as the UI shows them.

A ``direct`` conversation is a two-member MLS group with one other account
(``peer_account_id``); a ``group`` conversation has a title and any number
of members. The authoritative member list is the MLS group's ratchet tree
(:mod:`.groups`); ``conversation_members`` is the client's copy by account,
updated in the same transaction as the group state.

Per conversation the user chooses: muted (``muted_until``: until when, or
for good), archived, whether to send read receipts and typing notices
(``None``: as the global setting says), and keeps a draft.

``disappearing_seconds`` is the group's disappearing-message timer as the
conversation-info GroupContext extension of the current epoch says (RFC
9420 §12.1.7; docs/attachments.md §7): 0 when off.
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
    "archived, left_at, muted_until, read_receipts, typing_indicators, draft, draft_updated_at, "
    "disappearing_seconds"
)


class ConversationKind(enum.StrEnum):
    DIRECT = "direct"
    GROUP = "group"
    DEVICES = "devices"
    """The account's devices group (docs/devices.md §3): never listed or counted."""


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
    muted_until: int | None = None
    """With ``muted``: muted until this time (Unix ms); None: until unmuted."""
    read_receipts: bool | None = None
    """Send read receipts here (None: as the global setting says)."""
    typing_indicators: bool | None = None
    """Send typing notices here (None: as the global setting says)."""
    draft: str | None = None
    draft_updated_at: int | None = None
    disappearing_seconds: int = 0
    """The group's disappearing-message timer in seconds (0: off)."""

    def muted_at(self, now: int) -> bool:
        """Whether the conversation is muted at ``now`` (Unix ms)."""
        return self.muted and (self.muted_until is None or now < self.muted_until)


def _optional_bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


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
        muted_until=row[10],
        read_receipts=_optional_bool(row[11]),
        typing_indicators=_optional_bool(row[12]),
        draft=row[13],
        draft_updated_at=row[14],
        disappearing_seconds=row[15],
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
        """The conversations (archived or not), most recently active first.

        The devices group (kind ``devices``) is never among them.
        """
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM conversations "  # noqa: S608
            "WHERE archived = ? AND kind != 'devices' "
            "ORDER BY last_activity_at DESC, id DESC",
            (int(archived),),
        )
        return [_conversation(row) for row in rows]

    def touch(self, conversation_id: int, at: int) -> None:
        """Move the last activity time forward to ``at`` (never back)."""
        self._db.execute(  # an earlier or equal time writes nothing
            "UPDATE conversations SET last_activity_at = ? WHERE id = ? AND last_activity_at < ?",
            (at, conversation_id, at),
        )

    def rename(self, conversation_id: int, title: str | None) -> bool:
        result = self._db.execute(
            "UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id)
        )
        return result.rowcount > 0

    def set_disappearing(self, conversation_id: int, seconds: int) -> bool:
        """Record the group's disappearing-message timer; whether it changed."""
        result = self._db.execute(
            "UPDATE conversations SET disappearing_seconds = ? "
            "WHERE id = ? AND disappearing_seconds != ?",
            (seconds, conversation_id, seconds),
        )
        return result.rowcount > 0

    def set_muted(self, conversation_id: int, muted: bool, *, until: int | None = None) -> bool:
        """Mute (until ``until``, Unix ms, or for good) or unmute."""
        result = self._db.execute(
            "UPDATE conversations SET muted = ?, muted_until = ? WHERE id = ?",
            (int(muted), until if muted else None, conversation_id),
        )
        return result.rowcount > 0

    def set_read_receipts(self, conversation_id: int, enabled: bool | None) -> bool:
        """Send read receipts here or not (None: as the global setting says)."""
        result = self._db.execute(
            "UPDATE conversations SET read_receipts = ? WHERE id = ?",
            (None if enabled is None else int(enabled), conversation_id),
        )
        return result.rowcount > 0

    def set_typing_indicators(self, conversation_id: int, enabled: bool | None) -> bool:
        """Send typing notices here or not (None: as the global setting says)."""
        result = self._db.execute(
            "UPDATE conversations SET typing_indicators = ? WHERE id = ?",
            (None if enabled is None else int(enabled), conversation_id),
        )
        return result.rowcount > 0

    def set_draft(self, conversation_id: int, text: str | None, *, at: int) -> bool:
        """Keep ``text`` as the conversation's draft (None or empty: no draft)."""
        text = text or None
        result = self._db.execute(
            "UPDATE conversations SET draft = ?, draft_updated_at = ? WHERE id = ?",
            (text, at if text is not None else None, conversation_id),
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

    def move_to_group(self, conversation_id: int, group_id: bytes) -> bool:
        """Continue the conversation in another MLS group: the successor of a ReInit
        (RFC 9420 §11.2; docs/pq-suites.md). Its messages, members and read
        markers name it by id and stay; ConstraintError if the group has one."""
        result = self._db.execute(
            "UPDATE conversations SET group_id = ? WHERE id = ?", (group_id, conversation_id)
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

    def with_member(self, account_id: str) -> list[int]:
        """The ids of the conversations ``account_id`` is a member (or the peer) of."""
        rows = self._db.query(
            "SELECT conversation_id FROM conversation_members WHERE account_id = ? "
            "UNION SELECT id FROM conversations WHERE peer_account_id = ? ORDER BY 1",
            (account_id, account_id),
        )
        return [row[0] for row in rows]

    def members(self, conversation_id: int) -> list[ConversationMember]:
        rows = self._db.query(
            "SELECT conversation_id, account_id, joined_at FROM conversation_members "
            "WHERE conversation_id = ? ORDER BY joined_at, account_id",
            (conversation_id,),
        )
        return [ConversationMember(*row) for row in rows]
