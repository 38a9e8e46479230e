"""Attachments of file messages and their transfers (docs/attachments.md §4).

One row per file message in ``attachments``: what the MLS message said
(blob ID, capability, key, digest, size, media type, name, image size,
thumbnail) and where its transfer stands (:class:`TransferState`, bytes
done, attempts, the next attempt, a sentence for a failure). The row is
the transfer queue, so a transfer survives a restart with it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from .database import Database, Row, SqlValue

__all__ = ["ACTIVE_STATES", "Attachment", "AttachmentRepository", "TransferState"]


class TransferState(enum.StrEnum):
    """Where an attachment's transfer stands."""

    UPLOADING = "uploading"
    """Own file: encrypted here, being uploaded (the message waits for it)."""
    UPLOAD_FAILED = "upload_failed"
    """Own file: the upload gave up (``error`` says why); retry or cancel."""
    SENT = "sent"
    """Own file: uploaded; the encrypted copy here is readable."""
    AVAILABLE = "available"
    """Received: on the server, not downloaded (thumbnail only)."""
    DOWNLOADING = "downloading"
    """Received: being downloaded."""
    DOWNLOADED = "downloaded"
    """Received: the encrypted copy here is complete and verified."""
    FAILED = "failed"
    """Received: the download gave up (``error`` says why); retry."""
    GONE = "gone"
    """Received: the server no longer has it, or this device may not fetch it."""


_COLUMNS = (
    "message_id, blob_id, access, file_key, digest, size, media_type, name, width, height, "
    "thumbnail, state, local_file, done, error, attempts, next_attempt_at, updated_at"
)
#: States the transfer queue works on.
ACTIVE_STATES: Final = (TransferState.UPLOADING, TransferState.DOWNLOADING)


@dataclass(frozen=True, slots=True)
class Attachment:
    """One file message's attachment and its transfer (keys never in ``repr``)."""

    message_id: int
    blob_id: bytes
    """The server's blob ID (empty while an upload has not reserved one yet)."""
    access: bytes = field(repr=False)
    """The capability that lets members fetch the blob."""
    key: bytes = field(repr=False)
    digest: bytes
    size: int
    media_type: str
    name: str = field(repr=False)
    width: int
    height: int
    thumbnail: bytes = field(repr=False)
    state: TransferState
    local_file: str | None
    """The blob file in the profile's ``attachments/`` (``files.attachment_file``)."""
    done: int
    error: str | None
    attempts: int
    next_attempt_at: int
    updated_at: int

    @property
    def upload(self) -> bool:
        """Whether this is an own file (uploaded), not a received one."""
        return self.state in (
            TransferState.UPLOADING,
            TransferState.UPLOAD_FAILED,
            TransferState.SENT,
        )


def _attachment(row: Row) -> Attachment:
    return Attachment(
        message_id=int(row[0]),
        blob_id=bytes(row[1]),
        access=bytes(row[2]),
        key=bytes(row[3]),
        digest=bytes(row[4]),
        size=int(row[5]),
        media_type=str(row[6]),
        name=str(row[7]),
        width=int(row[8]),
        height=int(row[9]),
        thumbnail=bytes(row[10] or b""),
        state=TransferState(row[11]),
        local_file=row[12],
        done=int(row[13]),
        error=row[14],
        attempts=int(row[15]),
        next_attempt_at=int(row[16]),
        updated_at=int(row[17]),
    )


class AttachmentRepository:
    """The ``attachments`` table: one row per file message, and the transfer queue."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        message_id: int,
        *,
        blob_id: bytes,
        access: bytes,
        key: bytes,
        digest: bytes,
        size: int,
        media_type: str,
        name: str,
        width: int = 0,
        height: int = 0,
        thumbnail: bytes = b"",
        state: TransferState,
        local_file: str | None = None,
        now: int,
    ) -> Attachment:
        row = self._db.query_one(
            f"INSERT INTO attachments ({_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, 0, ?, ?) "
            f"RETURNING {_COLUMNS}",
            (
                message_id,
                blob_id,
                access,
                key,
                digest,
                size,
                media_type,
                name,
                width,
                height,
                thumbnail or None,
                state.value,
                local_file,
                now,
                now,
            ),
        )
        assert row is not None
        return _attachment(row)

    def get(self, message_id: int) -> Attachment | None:
        row = self._db.query_one(
            f"SELECT {_COLUMNS} FROM attachments WHERE message_id = ?",  # noqa: S608
            (message_id,),
        )
        return None if row is None else _attachment(row)

    def for_messages(self, message_ids: Sequence[int]) -> dict[int, Attachment]:
        """The attachments of these messages, by message id."""
        found: dict[int, Attachment] = {}
        for start in range(0, len(message_ids), 500):
            part = tuple(message_ids[start : start + 500])
            marks = ", ".join("?" * len(part))
            rows = self._db.query(
                f"SELECT {_COLUMNS} FROM attachments WHERE message_id IN ({marks})",  # noqa: S608
                part,
            )
            for row in rows:
                item = _attachment(row)
                found[item.message_id] = item
        return found

    def due(self, *, now: int, limit: int = 8) -> list[Attachment]:
        """Transfers to work on now (uploading or downloading, due), oldest first."""
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM attachments WHERE state IN (?, ?) "  # noqa: S608
            "AND next_attempt_at <= ? ORDER BY next_attempt_at, message_id LIMIT ?",
            (*(s.value for s in ACTIVE_STATES), now, limit),
        )
        return [_attachment(row) for row in rows]

    def next_attempt_at(self, *, exclude: Sequence[int] = ()) -> int | None:
        """When the next transfer is due, leaving out the messages ``exclude``
        (those running); None: none waiting."""
        marks = ", ".join("?" * len(exclude))
        value = self._db.query_value(
            "SELECT min(next_attempt_at) FROM attachments WHERE state IN (?, ?)"  # noqa: S608
            + (f" AND message_id NOT IN ({marks})" if exclude else ""),
            (*(s.value for s in ACTIVE_STATES), *exclude),
        )
        return None if value is None else int(value)

    def update(
        self,
        message_id: int,
        *,
        now: int,
        state: TransferState | None = None,
        done: int | None = None,
        error: str | None = None,
        clear_error: bool = False,
        local_file: str | None = None,
        clear_local_file: bool = False,
        blob_id: bytes | None = None,
        next_attempt_at: int | None = None,
        reset_attempts: bool = False,
        expect: Sequence[TransferState] = (),
    ) -> Attachment | None:
        """Change a row; None if it is gone or (with ``expect``) not in one of those states."""
        sets = ["updated_at = ?"]
        params: list[SqlValue] = [now]
        for column, value in (
            ("state", None if state is None else state.value),
            ("done", done),
            ("local_file", local_file),
            ("blob_id", blob_id),
            ("next_attempt_at", next_attempt_at),
        ):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if error is not None:
            sets.append("error = ?")
            params.append(error[:500])
        elif clear_error:
            sets.append("error = NULL")
        if clear_local_file:
            sets.append("local_file = NULL")
        if reset_attempts:
            sets.append("attempts = 0")
        where = "message_id = ?"
        params.append(message_id)
        if expect:
            where += f" AND state IN ({', '.join('?' * len(expect))})"
            params.extend(s.value for s in expect)
        row = self._db.query_one(
            f"UPDATE attachments SET {', '.join(sets)} WHERE {where} "  # noqa: S608
            f"RETURNING {_COLUMNS}",
            tuple(params),
        )
        return None if row is None else _attachment(row)

    def record_failure(
        self, message_id: int, *, error: str, next_attempt_at: int, now: int
    ) -> Attachment | None:
        """Count a failed attempt (network) and schedule the next one."""
        row = self._db.query_one(
            "UPDATE attachments SET attempts = attempts + 1, error = ?, "  # noqa: S608
            "next_attempt_at = ?, updated_at = ? WHERE message_id = ? "
            f"RETURNING {_COLUMNS}",
            (error[:500], next_attempt_at, now, message_id),
        )
        return None if row is None else _attachment(row)

    def remove(self, message_id: int) -> Attachment | None:
        """Delete a row; what it was (to delete its file)."""
        row = self._db.query_one(
            f"DELETE FROM attachments WHERE message_id = ? RETURNING {_COLUMNS}",  # noqa: S608
            (message_id,),
        )
        return None if row is None else _attachment(row)

    def local_files(self, message_ids: Sequence[int]) -> list[str]:
        """The blob files of these messages' attachments (to delete with them)."""
        return [a.local_file for a in self.for_messages(message_ids).values() if a.local_file]

    def all_local_files(self) -> set[str]:
        """Every blob file the store knows (files not among them are leftovers)."""
        rows = self._db.query("SELECT local_file FROM attachments WHERE local_file IS NOT NULL")
        return {str(row[0]) for row in rows}
