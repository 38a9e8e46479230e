"""Messages: the rows a conversation shows, and their full-text search.

One row per text, reply or system message. The other message kinds of the
content format change rows instead of adding them: an edit replaces
``body`` and sets ``edited_at``; a delete for everyone clears ``body`` and
sets ``deleted_at`` (a tombstone: the row stays so that replies and the
timeline keep their place); reactions and read receipts are in
:mod:`.reactions` and :mod:`.read_markers`; typing notices are not stored.

``uid`` is the id the sender gave the message (it is in the encrypted
content), unique within a conversation: edits, deletes, replies and
reactions name their target by it, and a message processed twice is caught
(:class:`DuplicateMessageError`). ``id`` is the local row id; it grows in
the order messages were stored, which is the timeline order. The index
``messages_by_conversation (conversation_id, id)`` makes
:meth:`MessageRepository.latest` a range scan of ``limit`` index entries.

Outgoing messages start ``pending`` (in the outbox), then become ``sent``,
``delivered`` or ``read`` -- or ``failed``. Incoming ones are ``received``.
``server_seq`` is the delivery queue sequence number the message came
with; ``epoch`` is the MLS epoch it was encrypted in.

A system message (someone joined, left, renamed the group) stores no
sentence: its ``body`` is NULL, and ``note_kind`` with ``note_params`` (JSON)
say what happened, naming accounts by id (:class:`Note`). The UI words and
translates it; :func:`messenger.client.note_text` gives the English.

A disappearing message (docs/attachments.md §7) has ``expires_after``, its
timer in seconds, and ``expires_at``, its deadline (Unix ms): set when it
is sent for this account's own messages, and when this user reads it for
the others (:meth:`MessageRepository.start_countdown`, the one owner of
that transition); NULL while the countdown has not started.
:mod:`..disappearing` deletes the rows whose deadline has passed.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DuplicateMessageError
from .database import Database, Row
from .search import HIGHLIGHT_END, HIGHLIGHT_START, SearchHit, fts_query

__all__ = [
    "Message",
    "MessageKind",
    "MessageRepository",
    "MessageStatus",
    "Note",
    "NoteKind",
]

_COLUMNS = (
    "id, conversation_id, uid, sender_account_id, sender_client_id, outgoing, kind, body, "
    "reply_to_uid, status, sent_at, received_at, edited_at, deleted_at, server_seq, epoch, "
    "note_kind, note_params, expires_after, expires_at"
)
_M_COLUMNS = ", ".join(f"m.{column.strip()}" for column in _COLUMNS.split(","))


class MessageKind(enum.StrEnum):
    TEXT = "text"
    REPLY = "reply"
    FILE = "file"
    """An attachment (docs/attachments.md); ``body`` is its caption (None: none)."""
    SYSTEM = "system"
    """Written by the client: someone joined, left, renamed the group..."""


class NoteKind(enum.StrEnum):
    """What a system message says; :class:`Note` holds who and what."""

    CREATED = "created"
    """This user created the group ``name`` (None: unnamed)."""
    JOINED = "joined"
    """This user joined the group ``name``: added by ``actor`` (None: joined by itself)."""
    ADDED = "added"
    """``actor`` added ``accounts`` (no ``actor``: they joined)."""
    LEFT = "left"
    """``accounts`` left."""
    REMOVED = "removed"
    """``actor`` removed ``accounts`` (no ``actor``: they left)."""
    RENAMED = "renamed"
    """``actor`` renamed the group to ``name`` (None: no name)."""
    YOU_LEFT = "you_left"
    """This user left."""
    YOU_WERE_REMOVED = "you_were_removed"
    """This user was removed (by ``actor``, if known)."""
    DEVICE_ADDED = "device_added"
    """``accounts`` (one contact) added a device to their account (docs/devices.md §4)."""
    DEVICE_REMOVED = "device_removed"
    """``accounts`` (one contact) removed a device from their account."""
    TIMER_CHANGED = "timer_changed"
    """``actor`` set the disappearing-message timer to ``seconds`` (0: turned it off)."""
    REJOIN_FAILED = "rejoin_failed"
    """This device (a restored backup) could not rejoin the group (docs/devices.md §5)."""
    STUCK = "stuck"
    """The group went where this client cannot follow: it can be started again."""
    RESTARTED = "restarted"
    """``actor`` started the conversation again, without ``accounts`` (RFC 9420 §11.3)."""
    LEGACY_TEXT = "legacy_text"
    """A note stored as an English sentence by an older version: ``text``."""


@dataclass(frozen=True, slots=True)
class Note:
    """A system message's kind and parameters; accounts are named by account id."""

    kind: NoteKind
    actor: str | None = None
    accounts: tuple[str, ...] = ()
    name: str | None = None
    text: str | None = None
    """Only for :attr:`NoteKind.LEGACY_TEXT`."""
    seconds: int | None = None
    """Only for :attr:`NoteKind.TIMER_CHANGED`."""

    def to_json(self) -> str:
        params: dict[str, object] = {}
        if self.actor is not None:
            params["actor"] = self.actor
        if self.accounts:
            params["accounts"] = list(self.accounts)
        if self.name is not None:
            params["name"] = self.name
        if self.text is not None:
            params["text"] = self.text
        if self.seconds is not None:
            params["seconds"] = self.seconds
        return json.dumps(params, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_row(cls, kind: str, params: str | None) -> Note:
        """The note of a row; an unknown kind (from a newer version) reads as legacy text."""
        values = json.loads(params) if params else {}
        if not isinstance(values, dict):
            values = {}
        try:
            note_kind = NoteKind(kind)
        except ValueError:
            note_kind = NoteKind.LEGACY_TEXT

        def text(key: str) -> str | None:
            value = values.get(key)
            return value if isinstance(value, str) else None

        accounts = values.get("accounts")
        seconds = values.get("seconds")
        return cls(
            note_kind,
            actor=text("actor"),
            accounts=tuple(a for a in accounts if isinstance(a, str))
            if isinstance(accounts, list)
            else (),
            name=text("name"),
            text=text("text"),
            seconds=seconds if type(seconds) is int and seconds >= 0 else None,
        )


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    RECEIVED = "received"


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    uid: bytes
    sender_account_id: str
    sender_client_id: str
    outgoing: bool
    kind: MessageKind
    body: str | None
    """None once deleted."""
    reply_to_uid: bytes | None
    status: MessageStatus
    sent_at: int
    """The sender's clock (not trusted for ordering)."""
    received_at: int
    """This client's clock when the message was stored."""
    edited_at: int | None
    deleted_at: int | None
    server_seq: int | None
    epoch: int | None
    note: Note | None = None
    """What a system message says (None for the other kinds)."""
    expires_after: int = 0
    """Its disappearing timer in seconds (0: it does not disappear)."""
    expires_at: int | None = None
    """When it is deleted (Unix ms); None while its countdown has not started."""

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


def _message(row: Row) -> Message:
    return Message(
        id=row[0],
        conversation_id=row[1],
        uid=row[2],
        sender_account_id=row[3],
        sender_client_id=row[4],
        outgoing=bool(row[5]),
        kind=MessageKind(row[6]),
        body=row[7],
        reply_to_uid=row[8],
        status=MessageStatus(row[9]),
        sent_at=row[10],
        received_at=row[11],
        edited_at=row[12],
        deleted_at=row[13],
        server_seq=row[14],
        epoch=row[15],
        note=None if row[16] is None else Note.from_row(row[16], row[17]),
        expires_after=row[18],
        expires_at=row[19],
    )


class MessageRepository:
    """Messages of all conversations."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        conversation_id: int,
        *,
        uid: bytes,
        sender_account_id: str,
        sender_client_id: str,
        outgoing: bool,
        body: str | None,
        sent_at: int,
        received_at: int,
        kind: MessageKind = MessageKind.TEXT,
        reply_to_uid: bytes | None = None,
        status: MessageStatus | None = None,
        server_seq: int | None = None,
        epoch: int | None = None,
        note: Note | None = None,
        expires_after: int = 0,
        expires_at: int | None = None,
        touch: bool = True,
    ) -> Message:
        """Store a message and move the conversation's activity time forward.

        ``status`` defaults to ``pending`` for outgoing messages and
        ``received`` for incoming ones. A system message has a ``note``
        and no ``body``. ``expires_after`` is a disappearing message's timer
        (seconds), ``expires_at`` its deadline if its countdown has started
        (own messages: ``sent_at`` plus the timer). DuplicateMessageError if
        the conversation already has a message with ``uid``. ``touch=False``
        leaves the activity time as it is: for a caller that knows it is
        ``received_at`` or later already (a burst of own messages).
        """
        if expires_at is not None and expires_after <= 0:
            raise ValueError("only a message with a timer has a deadline")
        if (kind is MessageKind.REPLY) != (reply_to_uid is not None):
            raise ValueError("a reply, and only a reply, names the message it replies to")
        if note is not None and (kind is not MessageKind.SYSTEM or body is not None):
            raise ValueError("a note is a system message without a body")
        if status is None:
            status = MessageStatus.PENDING if outgoing else MessageStatus.RECEIVED
        # Inside a caller's transaction no savepoint is needed: the only error raised
        # between the two statements (a duplicate) is raised before either wrote.
        atomic = contextlib.nullcontext() if self._db.in_transaction else self._db.transaction()
        with atomic:
            row = self._db.query_one(
                "INSERT INTO messages (conversation_id, uid, sender_account_id, sender_client_id, "  # noqa: S608
                "outgoing, kind, body, reply_to_uid, status, sent_at, received_at, server_seq, "
                "epoch, note_kind, note_params, expires_after, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT (conversation_id, uid) DO NOTHING RETURNING {_COLUMNS}",
                (
                    conversation_id,
                    uid,
                    sender_account_id,
                    sender_client_id,
                    int(outgoing),
                    kind.value,
                    body,
                    reply_to_uid,
                    status.value,
                    sent_at,
                    received_at,
                    server_seq,
                    epoch,
                    None if note is None else note.kind.value,
                    None if note is None else note.to_json(),
                    expires_after,
                    expires_at,
                ),
            )
            if row is None:
                raise DuplicateMessageError(f"message uid {uid.hex()} is already stored")
            if touch:
                # Only a later time writes the row (and its index entry): the
                # messages of one arrival, stored at one time, write it once.
                self._db.execute(
                    "UPDATE conversations SET last_activity_at = ? "
                    "WHERE id = ? AND last_activity_at < ?",
                    (received_at, conversation_id, received_at),
                )
        return _message(row)

    def get(self, message_id: int) -> Message | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM messages WHERE id = ?",  # noqa: S608
            (message_id,),
        )
        return None if row is None else _message(row)

    def get_many(self, message_ids: Sequence[int]) -> list[Message]:
        """The messages with these ids that exist, by id."""
        found: list[Message] = []
        for start in range(0, len(message_ids), 500):
            chunk = tuple(message_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = self._db.query(
                f"SELECT {_COLUMNS} FROM messages WHERE id IN ({marks}) ORDER BY id",  # noqa: S608
                chunk,
            )
            found += [_message(row) for row in rows]
        return sorted(found, key=lambda m: m.id)

    def by_uid(self, conversation_id: int, uid: bytes) -> Message | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM messages WHERE conversation_id = ? AND uid = ?",  # noqa: S608
            (conversation_id, uid),
        )
        return None if row is None else _message(row)

    def latest(
        self, conversation_id: int, limit: int = 50, *, before_id: int | None = None
    ) -> list[Message]:
        """The newest ``limit`` messages (older than ``before_id``), oldest first.

        Page backwards by passing the ``id`` of the first message returned.
        """
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM messages "  # noqa: S608
            "WHERE conversation_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (conversation_id, before_id if before_id is not None else 2**63 - 1, limit),
        )
        rows.reverse()
        return [_message(row) for row in rows]

    def after(self, conversation_id: int, after_id: int, limit: int = 50) -> list[Message]:
        """Up to ``limit`` messages newer than ``after_id``, oldest first."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM messages "  # noqa: S608
            "WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?",
            (conversation_id, after_id, limit),
        )
        return [_message(row) for row in rows]

    def count(self, conversation_id: int) -> int:
        return int(
            self._db.query_value(
                "SELECT count(*) FROM messages WHERE conversation_id = ?", (conversation_id,)
            )
        )

    def set_status(self, message_id: int, status: MessageStatus) -> bool:
        result = self._db.execute(
            "UPDATE messages SET status = ? WHERE id = ?", (status.value, message_id)
        )
        return result.rowcount > 0

    def mark_sent(self, message_ids: Sequence[int]) -> list[tuple[int, int]]:
        """The pending ones of ``message_ids`` become sent; ``(id, conversation_id)`` of those."""
        if not message_ids:
            return []
        marks = ", ".join("?" * len(message_ids))
        rows = self._db.query(
            "UPDATE messages SET status = 'sent' WHERE status = 'pending' "  # noqa: S608
            f"AND id IN ({marks}) RETURNING id, conversation_id",
            tuple(message_ids),
        )
        return sorted((int(row[0]), int(row[1])) for row in rows)

    def mark_read_up_to(self, conversation_id: int, message_id: int) -> list[int]:
        """Mark this client's sent messages up to ``message_id`` as read; the ids changed."""
        rows = self._db.query(
            "UPDATE messages SET status = 'read' WHERE conversation_id = ? AND outgoing = 1 "
            "AND status IN ('sent', 'delivered') AND id <= ? RETURNING id",
            (conversation_id, message_id),
        )
        return sorted(row[0] for row in rows)

    def start_countdown(self, conversation_id: int, up_to_id: int, *, now: int) -> int | None:
        """This user has read the conversation up to message ``up_to_id``: start the
        countdown of every received disappearing message up to it that has not
        started (docs/attachments.md §7). The earliest deadline set, or None."""
        rows = self._db.query(
            "UPDATE messages SET expires_at = ? + expires_after * 1000 "
            "WHERE conversation_id = ? AND id <= ? AND expires_after > 0 "
            "AND expires_at IS NULL RETURNING expires_at",
            (now, conversation_id, up_to_id),
        )
        return min((int(row[0]) for row in rows), default=None)

    def next_deadline(self) -> int | None:
        """The earliest deadline of a disappearing message (Unix ms), if any."""
        value = self._db.query_value(
            "SELECT min(expires_at) FROM messages WHERE expires_at IS NOT NULL"
        )
        return None if value is None else int(value)

    def edit(
        self, conversation_id: int, uid: bytes, *, editor_account_id: str, body: str, at: int
    ) -> Message | None:
        """Replace the text of a message; None if there is no such message by that sender.

        Only the sender may edit, and a deleted message stays deleted.
        """
        row = self._db.query_one(
            "UPDATE messages SET body = ?, edited_at = ? WHERE conversation_id = ? AND uid = ? "  # noqa: S608
            "AND sender_account_id = ? AND deleted_at IS NULL AND kind != 'system' "
            f"RETURNING {_COLUMNS}",
            (body, at, conversation_id, uid, editor_account_id),
        )
        return None if row is None else _message(row)

    def delete_for_everyone(
        self, conversation_id: int, uid: bytes, *, by_account_id: str, at: int
    ) -> Message | None:
        """Turn a message into a tombstone (text and reactions gone); None if not allowed.

        Only the sender may delete a message for everyone.
        """
        with self._db.transaction():
            row = self._db.query_one(
                "UPDATE messages SET body = NULL, deleted_at = ? WHERE conversation_id = ? "  # noqa: S608
                "AND uid = ? AND sender_account_id = ? AND deleted_at IS NULL "
                f"RETURNING {_COLUMNS}",
                (at, conversation_id, uid, by_account_id),
            )
            if row is None:
                return None
            self._db.execute("DELETE FROM reactions WHERE message_id = ?", (row[0],))
        return _message(row)

    def remove(self, message_id: int) -> bool:
        """Delete a message from this device only (with its reactions)."""
        return self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount > 0

    def search(
        self, query: str, limit: int = 50, *, conversation_id: int | None = None
    ) -> list[SearchHit]:
        """Messages whose text matches every term of ``query``, newest first.

        ``query`` is what the user typed: it is quoted term by term
        (:func:`~.search.fts_query`), so FTS5 syntax in it is searched for
        as text and cannot break or widen the query.
        """
        match = fts_query(query)
        if match is None or limit <= 0:
            return []
        where = "" if conversation_id is None else "AND m.conversation_id = ?"
        params: tuple[str | int, ...] = (HIGHLIGHT_START, HIGHLIGHT_END, match)
        if conversation_id is not None:
            params += (conversation_id,)
        rows = self._db.query(
            f"SELECT {_M_COLUMNS}, snippet(messages_fts, 0, ?, ?, '…', 12) "  # noqa: S608
            "FROM messages_fts JOIN messages AS m ON m.id = messages_fts.rowid "
            f"WHERE messages_fts MATCH ? {where} "
            "ORDER BY messages_fts.rowid DESC LIMIT ?",
            (*params, limit),
        )
        return [SearchHit(message=_message(row[:-1]), snippet=row[-1]) for row in rows]
