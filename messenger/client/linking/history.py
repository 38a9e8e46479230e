"""The history snapshot a linked device may get (docs/devices.md §2, step 7).

:func:`export_history` reads the store's conversations -- messages,
reactions, read markers, archived and mute state -- into one JSON
document, compressed with zlib. The creator cuts it into chunks, seals each
and ends with the count and SHA-256 of the whole (:mod:`.existing`).

:func:`import_history` is run by the new device once the digest matched,
in one transaction, and only for the groups whose conversation it has:
its conversations are made by the Welcomes of the groups it was added to
(RFC 9420 §12.4.3.1), so a conversation's history is attached to it by
group ID and never creates one (a Welcome for a known group ID is refused,
:mod:`..sync.inbound`). The new device therefore keeps the snapshot until
its Welcomes are processed (:mod:`.joining`). Messages are keyed by their
uid per conversation, so one that arrives again later (or is already
there) is not stored twice (``UNIQUE (conversation_id, uid)``).

Imported messages get row IDs *below* every stored one, in their original
order, so they show before what the device received since it joined
(timelines are ordered by row ID). A pending own message of the creator
is imported as sent: the creator's outbox, not this device's, delivers it.

The snapshot comes from a device of the same account over the link's
authenticated channel; it is still checked field by field, and its
decompressed size is bounded.

Disappearing messages (those with a timer, docs/attachments.md §7) and
their reactions are left out: a copy on a new device would outlive the
countdown the other devices keep.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any, Final

from messenger.api.fields import b64decode, b64encode

from ..errors import LinkFailedError
from ..store.database import SqlValue
from ..store.messages import MessageKind, MessageStatus
from ..store.store import Store

__all__ = ["HistoryCounts", "export_history", "import_history"]

_VERSION: Final = 1
#: The most a snapshot may grow to when decompressed.
MAX_HISTORY_BYTES: Final = 2 << 30
_LEVEL: Final = 6
_STATUSES: Final = {s.value for s in MessageStatus}
_KINDS: Final = {k.value for k in MessageKind}


@dataclass(frozen=True, slots=True)
class HistoryCounts:
    conversations: int
    messages: int


def _b(value: bytes | None) -> str | None:
    return None if value is None else b64encode(value)


def export_history(store: Store) -> bytes:
    """The compressed snapshot of every active conversation's history."""
    db = store.db
    conversations: list[dict[str, Any]] = []
    rows = db.query(
        "SELECT id, group_id, archived, muted_until FROM conversations "
        "WHERE left_at IS NULL ORDER BY id"
    )
    for conversation_id, group_id, archived, muted_until in rows:
        messages = [
            [
                b64encode(uid),
                sender_account,
                sender_client,
                outgoing,
                kind,
                body,
                _b(reply_to),
                status,
                sent_at,
                received_at,
                edited_at,
                deleted_at,
                note_kind,
                note_params,
            ]
            for (
                uid,
                sender_account,
                sender_client,
                outgoing,
                kind,
                body,
                reply_to,
                status,
                sent_at,
                received_at,
                edited_at,
                deleted_at,
                note_kind,
                note_params,
            ) in db.query(
                "SELECT uid, sender_account_id, sender_client_id, outgoing, kind, body, "
                "reply_to_uid, status, sent_at, received_at, edited_at, deleted_at, note_kind, "
                "note_params FROM messages WHERE conversation_id = ? AND expires_after = 0 "
                "ORDER BY id",
                (conversation_id,),
            )
        ]
        reactions = [
            [b64encode(uid), account, emoji, at]
            for uid, account, emoji, at in db.query(
                "SELECT m.uid, r.account_id, r.emoji, r.reacted_at FROM reactions r "
                "JOIN messages m ON m.id = r.message_id WHERE m.conversation_id = ? "
                "AND m.expires_after = 0",
                (conversation_id,),
            )
        ]
        markers = [
            [account, b64encode(uid), at]
            for account, uid, at in db.query(
                "SELECT r.account_id, m.uid, r.read_at FROM read_markers r "
                "JOIN messages m ON m.id = r.message_id WHERE r.conversation_id = ?",
                (conversation_id,),
            )
        ]
        conversations.append(
            {
                "group_id": b64encode(group_id),
                "archived": bool(archived),
                "muted_until": muted_until,
                "messages": messages,
                "reactions": reactions,
                "read_markers": markers,
            }
        )
    document = {"version": _VERSION, "conversations": conversations}
    data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return zlib.compress(data, _LEVEL)


def _decompress(compressed: bytes) -> bytes:
    decompressor = zlib.decompressobj()
    try:
        data = decompressor.decompress(compressed, MAX_HISTORY_BYTES)
    except zlib.error:
        raise LinkFailedError("the history does not decompress") from None
    if decompressor.unconsumed_tail or not decompressor.eof:
        raise LinkFailedError("the history is truncated or too large")
    return data


def _fail(what: str) -> LinkFailedError:
    return LinkFailedError(f"the history has {what}")


def _text(value: object, *, optional: bool = False, max_len: int = 1 << 20) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise _fail("a field that is not a text")
    return value


def _int(value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if type(value) is not int or not -(1 << 62) < value < (1 << 62):
        raise _fail("a field that is not a number")
    return value


def _rows_of(
    value: object, arity: int, uid_at: int, ids: dict[bytes, int], what: str
) -> list[tuple[list[object], int]]:
    """The rows of ``value`` (each a list of ``arity`` fields) whose message
    (the uid at ``uid_at``) is stored, with that message's row ID."""
    found = []
    for item in _list(value):
        fields = _list(item)
        if len(fields) != arity:
            raise _fail(f"{what} of the wrong shape")
        message_id = ids.get(_bytes(fields[uid_at]) or b"")
        if message_id is not None:
            found.append((fields, message_id))
    return found


def _bytes(value: object, *, optional: bool = False) -> bytes | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 1024:
        raise _fail("a field that is not base64url")
    try:
        return b64decode(value)
    except ValueError:
        raise _fail("a field that is not base64url") from None


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _fail("a field that is not a list")
    return value


def _message_row(conversation_id: int, item: object) -> tuple[SqlValue, ...]:
    row = _list(item)
    if len(row) != 14:
        raise _fail("a message of the wrong shape")
    kind, status = _text(row[4]), _text(row[7])
    if kind not in _KINDS or status not in _STATUSES:
        raise _fail("a message of an unknown kind or status")
    if status == MessageStatus.PENDING.value:
        status = MessageStatus.SENT.value
    outgoing = row[3]
    if outgoing not in (0, 1) or type(outgoing) is not int:
        raise _fail("a message with a bad direction")
    reply_to = _bytes(row[6], optional=True)
    if (kind == MessageKind.REPLY.value) != (reply_to is not None):
        raise _fail("a reply without its message")
    return (
        conversation_id,
        _bytes(row[0]),
        _text(row[1], max_len=64),
        _text(row[2], max_len=64),
        outgoing,
        kind,
        _text(row[5], optional=True),
        reply_to,
        status,
        _int(row[8]),
        _int(row[9]),
        _int(row[10], optional=True),
        _int(row[11], optional=True),
        _text(row[12], optional=True, max_len=64),
        _text(row[13], optional=True, max_len=1 << 16),
    )


def _parse(data: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _fail("no JSON document") from None
    if not isinstance(document, dict) or document.get("version") != _VERSION:
        raise _fail("an unknown version")
    conversations = _list(document.get("conversations"))
    for conversation in conversations:
        if not isinstance(conversation, dict) or set(conversation) != {
            "group_id",
            "archived",
            "muted_until",
            "messages",
            "reactions",
            "read_markers",
        }:
            raise _fail("a conversation of the wrong shape")
    return conversations


def import_history(
    store: Store, compressed: bytes, groups: set[bytes] | None = None
) -> HistoryCounts:
    """Import a snapshot into the conversations this device has, in one transaction.

    Only groups in ``groups`` (default: all) are imported; a group without a
    conversation here is skipped. LinkFailedError (nothing imported) if the
    snapshot is malformed.
    """
    conversations = _parse(_decompress(compressed))
    db = store.db
    imported_conversations = imported_messages = 0
    with store.transaction():
        lowest = db.query_value("SELECT min(id) FROM messages")
        next_id = min(0, int(lowest) if lowest is not None else 0)
        planned: list[tuple[int, dict[str, Any], list[tuple[SqlValue, ...]]]] = []
        total = 0
        for conversation in conversations:
            group_id = _bytes(conversation["group_id"])
            assert group_id is not None
            if groups is not None and group_id not in groups:
                continue
            local = db.query_one(
                "SELECT id FROM conversations WHERE group_id = ? AND left_at IS NULL", (group_id,)
            )
            if local is None:
                continue
            rows = [_message_row(int(local[0]), item) for item in _list(conversation["messages"])]
            planned.append((int(local[0]), conversation, rows))
            total += len(rows)
        next_id -= total  # the imported rows take the IDs below every stored one
        for conversation_id, conversation, rows in planned:
            archived = conversation["archived"]
            if type(archived) is not bool:
                raise _fail("a bad archived flag")
            muted_until = _int(conversation["muted_until"], optional=True)
            numbered: list[tuple[SqlValue, ...]] = []
            for row in rows:
                numbered.append((next_id, *row))
                next_id += 1
            count = "SELECT count(*) FROM messages WHERE conversation_id = ?"
            before = db.query_value(count, (conversation_id,))
            db.executemany(
                "INSERT INTO messages (id, conversation_id, uid, sender_account_id, "
                "sender_client_id, outgoing, kind, body, reply_to_uid, status, sent_at, "
                "received_at, edited_at, deleted_at, note_kind, note_params) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (conversation_id, uid) DO NOTHING",
                numbered,
            )
            inserted = int(db.query_value(count, (conversation_id,))) - int(before)
            imported_messages += inserted
            imported_conversations += 1
            ids = {
                uid: message_id
                for message_id, uid in db.query(
                    "SELECT id, uid FROM messages WHERE conversation_id = ?", (conversation_id,)
                )
            }
            # Reactions: (message uid, account, emoji, time); read markers:
            # (account, message uid, time). Rows of unknown messages are dropped.
            reactions: list[tuple[SqlValue, ...]] = [
                (message_id, _text(f[1], max_len=64), _text(f[2], max_len=64), _int(f[3]))
                for f, message_id in _rows_of(conversation["reactions"], 4, 0, ids, "a reaction")
            ]
            db.executemany(
                "INSERT INTO reactions (message_id, account_id, emoji, reacted_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                reactions,
            )
            markers: list[tuple[SqlValue, ...]] = [
                (conversation_id, _text(f[0], max_len=64), message_id, _int(f[2]))
                for f, message_id in _rows_of(
                    conversation["read_markers"], 3, 1, ids, "a read marker"
                )
            ]
            db.executemany(
                "INSERT INTO read_markers (conversation_id, account_id, message_id, read_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                markers,
            )
            db.execute(
                "UPDATE conversations SET archived = ?, muted_until = coalesce(muted_until, ?), "
                "last_activity_at = max(last_activity_at, "
                "coalesce((SELECT max(received_at) FROM messages WHERE conversation_id = ?), 0)) "
                "WHERE id = ?",
                (int(archived), muted_until, conversation_id, conversation_id),
            )
    return HistoryCounts(imported_conversations, imported_messages)
