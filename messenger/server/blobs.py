"""The blob store: encrypted attachments, padded and opaque (docs/attachments.md §3).

An attachment travels in two parts. Its key, name, media type, exact size
and caption go inside an MLS application message (RFC 9420 §6.3), which
the server cannot read; the encrypted file goes here, as a *blob*: bytes
padded to a Padmé size (:func:`messenger.api.blobs.padme`), uploaded in
parts of at most :data:`~messenger.api.blobs.MAX_BLOB_PART_BYTES`.

Who may do what (each route takes a queue request, which names no client,
or a client's signed request that proves its queue: :class:`BlobCaller`):

* **create**: a queue that is a member of the group now (anyone else gets
  ``unknown_group``, as for a group that does not exist, :mod:`.delivery`);
  the blob is that queue's;
* **upload, delete**: the owner (a blob from before queues owned them: a
  signed request of its account);
* **status**: the owner, or a member of the group now with the
  capability;
* **download, fetched**: a member of the group now (RFC 9420 §12.1.3: a
  removed member is not) that shows the *capability*, 32 random bytes the
  MLS message carries; the server keeps only their SHA-256 and compares in
  constant time.

Every refusal of these is the same ``404 not_found`` as for a blob that does
not exist (:func:`no_such_blob`): a stranger cannot tell a guessed ID from a
wrong capability.

A group whose members send the keys has its member set sealed under its
data key (:mod:`.state_keys`, docs/metadata.md §2): the server reads it only
with a send token of an epoch since the group's last removal. So a request
that needs membership carries the group's current send token: ``token`` in
:class:`~messenger.api.models.CreateBlobRequest`, the
:data:`~messenger.api.blobs.HEADER_GROUP_TOKEN` header on the last part of
an upload (its recipients), a download, ``fetched``, and ``status`` asked
by a recipient. A token that opens nothing is ``unknown_group``: for
create, as for a non-member; for the others, once the capability matched
(so a guessed ID is still ``not_found``), whether the client was removed
or is behind a removal it has not processed yet (it catches up and asks
again).

Stored (docs/threat-model.md): the blob ID, the group, a keyed hash of the
owning queue (for the quota and the owner's rights; the key comes from the
server secret, so a copy of the database does not name the uploader; rows
from before name the account so), the padded size, the bytes received, the SHA-256 of the
capability, times rounded to the hour, and the recipients of a complete
blob, each as an HMAC of (blob ID, queue) under a key from the server
secret, so that a copy of the database cannot tell which member queue is
not among them (the uploader's). The bytes live in ``data_dir/blobs/`` (0700; files 0600),
each file named by the hex of an HMAC of the blob ID, so that the directory
and the database can be matched only with the server secret.

Upload: a part must start at ``received`` (else ``409 blob_offset`` with
``received`` in the details). Each part is written and synced before it is
recorded, so a crash between the two leaves a file longer than
``received``; the next part truncates it first. The last part completes the
blob and snapshots its recipients: the member queues of the group at that
moment but the uploader's own, as keyed hashes. A blob is deleted when all of them have said
``fetched``, when a recipient leaves the group (it no longer counts; the
sweep, which has no token, cannot see that in a group sealed under its
members' keys: there another recipient's ``fetched`` drops it), when
its retention ends, or, unfinished, when its upload time runs out
(:meth:`Blobs.sweep`, which also removes files that have no row: a crash
between creating the file and storing the row, or between deleting the row
and the file).

File reads and writes run in worker threads (:func:`asyncio.to_thread`), so
a large part does not stall other requests; memory is bounded by one part.
Parts of one blob are written one at a time within a process; two processes
writing the same part of one blob at once (only its owner may) can at
worst garble that owner's own blob, which its recipients then
refuse (the digest in the MLS message).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from messenger.api.blobs import BLOB_ID_BYTES, MAX_BLOB_PART_BYTES, is_padme, padme
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64decode
from messenger.api.models import (
    SEND_TOKEN_BYTES,
    BlobStatus,
    CreateBlobRequest,
    CreateBlobResponse,
)

from .logs import log_event
from .member_sets import MemberSets, live_queues
from .metrics import Metrics
from .server_keys import make_private_dir
from .storage import Database, Tx

__all__ = [
    "ACCESS_BYTES",
    "BLOB_DIR",
    "CHUNK_BYTES",
    "ORPHAN_GRACE_SECONDS",
    "BlobCaller",
    "BlobSweep",
    "Blobs",
    "max_stored_size",
    "no_such_blob",
    "parse_access",
    "parse_blob_id",
    "parse_group_token",
]

_log = logging.getLogger("messenger.server.blobs")


@dataclass(frozen=True, slots=True)
class BlobCaller:
    """Who asks about a blob: the queue the request shows (a queue request's, or
    the one a signed request proves), and the account of a signed request
    (None for a queue request, which names no client).

    A blob's owner is the queue that reserved it (:meth:`Blobs._owner`): the
    quota, the parts and the withdrawal are that queue's. Blobs reserved
    before queues owned them are their account's, which a signed request
    still shows.
    """

    queue_id: str
    account_id: str | None


#: Before a queue's ID in the name of a blob's owner (:meth:`Blobs._owner`).
_QUEUE_OWNER: Final = b"queue "
#: The blob directory's name inside the data directory.
BLOB_DIR: Final = "blobs"
#: Length of the access capability.
ACCESS_BYTES: Final = 32
#: The plaintext chunk of the attachment encryption (docs/attachments.md §2):
#: each sealed chunk adds a 16-byte tag.
CHUNK_BYTES: Final = 1 << 20
_TAG_BYTES: Final = 16
#: A file without a row is removed only once it is this old: a blob being
#: created has its file a moment before its row.
ORPHAN_GRACE_SECONDS: Final = 3600

_HOUR_MS: Final = 3_600_000
_NAME_LABEL: Final = b"messenger-blob-file-v1\n"
_OWNER_LABEL: Final = b"messenger-blob-owner-v1\n"
_RECIPIENT_LABEL: Final = b"messenger-blob-recipient-v1\n"
_CHUNK: Final = 500


def max_stored_size(max_blob_bytes: int) -> int:
    """The largest stored (padded) blob for files of up to ``max_blob_bytes``.

    A file of ``n`` bytes is sealed into ``ceil(n / CHUNK_BYTES)`` chunks (at
    least one), each 16 bytes longer, then padded to a Padmé size; one more
    tag's worth of slack covers the empty last chunk of a whole number of
    chunks.
    """
    chunks = -(-max_blob_bytes // CHUNK_BYTES)
    return padme(max_blob_bytes + _TAG_BYTES * chunks + _TAG_BYTES)


def no_such_blob() -> ApiError:
    """The one answer for an unknown blob and for every refused request about one."""
    return ApiError(ErrorCode.NOT_FOUND, "no such blob")


def parse_blob_id(raw: str) -> bytes:
    """The blob ID of a path segment; a malformed one cannot exist: ``not_found``."""
    try:
        blob_id = b64decode(raw)
    except ValueError:
        raise no_such_blob() from None
    if len(blob_id) != BLOB_ID_BYTES:
        raise no_such_blob()
    return blob_id


def _header_bytes(header: str | None, size: int) -> bytes | None:
    """``size`` bytes in a header (unpadded base64url), or ``None``."""
    if header is None or len(header) > 2 * size:
        return None
    try:
        value = b64decode(header)
    except ValueError:
        return None
    return value if len(value) == size else None


def parse_access(header: str | None) -> bytes | None:
    """The capability of the access header (unpadded base64url of 32 bytes), or ``None``."""
    return _header_bytes(header, ACCESS_BYTES)


def parse_group_token(header: str | None) -> bytes | None:
    """The send token of the group token header (unpadded base64url of 32 bytes), or ``None``."""
    return _header_bytes(header, SEND_TOKEN_BYTES)


def _unknown_group() -> ApiError:
    """A group the client is not in, or whose state its token does not open (:mod:`.delivery`)."""
    return ApiError(ErrorCode.UNKNOWN_GROUP, "no such group")


def _hour_floor(ms: int) -> int:
    return ms // _HOUR_MS * _HOUR_MS


def _hour_ceil(ms: int) -> int:
    return -(-ms // _HOUR_MS) * _HOUR_MS


def _offset_error(received: int) -> ApiError:
    return ApiError(
        ErrorCode.BLOB_OFFSET,
        "a part must start where the blob ends; resume from the bytes received",
        {"received": received},
    )


def _no_space() -> ApiError:
    return ApiError(ErrorCode.NO_SPACE, "the server is out of storage space; retry later")


def _placeholders(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: Sequence[bytes]) -> list[Sequence[bytes]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


@dataclass(frozen=True, slots=True)
class _Blob:
    group_id: bytes
    owner_hash: bytes
    size: int
    received: int
    complete: bool
    access_hash: bytes
    expires_at: int
    #: The group's sealed member set (None: no such group), its state keys and
    #: what seals it (``group_info_sealed``, :mod:`.state_keys`).
    members_box: object
    state_keys: object
    sealed: object


_SELECT_BLOB: Final = (
    "SELECT b.group_id, b.owner_hash, b.size, b.received, b.complete, b.access_hash, "
    "b.expires_at, g.members_box, g.state_keys, g.group_info_sealed FROM blobs b "
    "LEFT JOIN mls_groups g ON g.group_id = b.group_id WHERE b.blob_id = ?"
)


async def _delete_blobs(tx: Tx, condition: str, *args: object) -> list[bytes]:
    """Delete the blobs matching ``condition`` (on ``blobs``) with their recipients."""
    for table in ("blob_fetchers", "blob_recipients"):  # the latter: rows from before migration 10
        await tx.execute(
            f"DELETE FROM {table} WHERE blob_id IN "  # noqa: S608
            f"(SELECT blob_id FROM blobs WHERE {condition})",
            *args,
        )
    rows = await tx.fetchall(
        f"DELETE FROM blobs WHERE {condition} RETURNING blob_id",  # noqa: S608
        *args,
    )
    return [bytes(r[0]) for r in rows]


@dataclass(frozen=True, slots=True)
class BlobSweep:
    """What one sweep removed."""

    expired: int
    done: int
    orphans: int


@dataclass(slots=True)
class _Turn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Blobs:
    """The blob store of this server."""

    def __init__(
        self,
        db: Database,
        metrics: Metrics,
        clock: Callable[[], float],
        directory: Path,
        key: bytes,
        member_sets: MemberSets,
        *,
        max_blob_bytes: int,
        quota_bytes: int,
        reserve_bytes: int,
        upload_ttl_seconds: int,
        retention_seconds: int,
    ) -> None:
        self._db = db
        self._members = member_sets
        self._metrics = metrics
        self._clock = clock
        self.directory = directory
        self._name_key = hmac.new(key, _NAME_LABEL, hashlib.sha256).digest()
        self._owner_key = hmac.new(key, _OWNER_LABEL, hashlib.sha256).digest()
        self._recipient_key = hmac.new(key, _RECIPIENT_LABEL, hashlib.sha256).digest()
        self.max_blob_bytes = max_blob_bytes
        self.max_stored_bytes = max_stored_size(max_blob_bytes)
        self._quota = quota_bytes
        self._reserve = reserve_bytes
        self._upload_ttl_ms = upload_ttl_seconds * 1000
        self._retention_ms = retention_seconds * 1000
        #: Parts of one blob are written one at a time in this process.
        self._turns: dict[bytes, _Turn] = {}
        make_private_dir(directory)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @staticmethod
    async def _select(tx: Tx, blob_id: bytes, now: int) -> _Blob | None:
        """The blob if it exists and has not expired, with its group's sealed member set."""
        row = await tx.fetchone(_SELECT_BLOB, blob_id)
        if row is None or int(row[6]) <= now:
            return None
        return _Blob(
            bytes(row[0]),
            bytes(row[1]),
            int(row[2]),
            int(row[3]),
            bool(row[4]),
            bytes(row[5]),
            int(row[6]),
            row[7],
            row[8],
            row[9],
        )

    def _listed(self, blob: _Blob, token: bytes | None) -> list[str]:
        """Every queue the blob's group lists (none if there is no such group);
        ``unknown_group`` if its members' keys seal it and ``token`` opens none."""
        if blob.members_box is None:
            return []
        listed = self._members.unlock(
            blob.group_id, blob.members_box, blob.state_keys, blob.sealed, token
        )
        if listed is None:
            raise _unknown_group()
        return listed

    def file_name(self, blob_id: bytes) -> str:
        """The name of a blob's file: hex of an HMAC of its ID."""
        return hmac.new(self._name_key, blob_id, hashlib.sha256).hexdigest()

    def path(self, blob_id: bytes) -> Path:
        """Where a blob's bytes are."""
        return self.directory / self.file_name(blob_id)

    def _owner(self, caller: BlobCaller) -> bytes:
        """The keyed hash that names the owner of a blob ``caller`` reserves: its
        queue, under a label no account ID can make (an ID has no space)."""
        return self._hash_owner(_QUEUE_OWNER + caller.queue_id.encode())

    def _owns(self, caller: BlobCaller, blob: _Blob) -> bool:
        """Whether ``caller`` owns ``blob``: its queue reserved it, or (a blob from
        before queues owned them) its account did."""
        names = [_QUEUE_OWNER + caller.queue_id.encode()]
        if caller.account_id is not None:
            names.append(caller.account_id.encode())
        return any(hmac.compare_digest(blob.owner_hash, self._hash_owner(n)) for n in names)

    def _hash_owner(self, name: bytes) -> bytes:
        return hmac.new(self._owner_key, name, hashlib.sha256).digest()

    def recipient(self, blob_id: bytes, queue_id: str) -> bytes:
        """How ``blob_fetchers`` names a recipient queue of a blob: a keyed hash."""
        message = len(blob_id).to_bytes(1, "big") + blob_id + queue_id.encode()
        return hmac.new(self._recipient_key, message, hashlib.sha256).digest()

    async def _adopt_legacy_recipients(self, tx: Tx) -> None:
        """Move rows of ``blob_recipients`` (queue IDs, from before migration 10) to
        ``blob_fetchers`` as keyed hashes; a no-op once that table is empty."""
        rows = await tx.fetchall("SELECT blob_id, queue_id FROM blob_recipients")
        if not rows:
            return
        await tx.executemany(
            "INSERT INTO blob_fetchers (blob_id, recipient) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(bytes(b), self.recipient(bytes(b), str(q))) for b, q in rows],
        )
        await tx.execute("DELETE FROM blob_recipients")

    async def _drop_departed(self, tx: Tx, blobs: Sequence[tuple[bytes, Sequence[str]]]) -> None:
        """Forget the recipients of each ``(blob_id, members of its group now)`` that
        left the group: they can no longer fetch it, so they do not hold its deletion back."""
        gone: list[tuple[bytes, bytes]] = []
        for blob_id, members in blobs:
            current = {self.recipient(blob_id, q) for q in members}
            rows = await tx.fetchall(
                "SELECT recipient FROM blob_fetchers WHERE blob_id = ?", blob_id
            )
            gone += [(blob_id, bytes(r[0])) for r in rows if bytes(r[0]) not in current]
        if gone:
            await tx.executemany(
                "DELETE FROM blob_fetchers WHERE blob_id = ? AND recipient = ?", gone
            )

    @contextlib.asynccontextmanager
    async def _turn(self, blob_id: bytes) -> AsyncIterator[None]:
        turn = self._turns.setdefault(blob_id, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[blob_id]

    async def _free_bytes(self) -> int:
        usage = await asyncio.to_thread(shutil.disk_usage, self.directory)
        return int(usage.free)

    def _check_capable(
        self, blob: _Blob, queue_id: str, access: bytes | None, token: bytes | None
    ) -> list[str]:
        """The queues the blob's group lists, if ``queue_id`` is among them and
        ``access`` is the capability; else ``not_found``.

        The capability is checked first, so that a stranger's guess is
        ``not_found`` whatever the group; a holder of the capability whose
        ``token`` does not open the group's state gets ``unknown_group``
        (:meth:`_listed`).
        """
        if access is None or not hmac.compare_digest(
            hashlib.sha256(access).digest(), blob.access_hash
        ):
            raise no_such_blob()
        listed = self._listed(blob, token)
        if queue_id not in listed:
            raise no_such_blob()
        return listed

    # -- operations -----------------------------------------------------------------

    async def create(self, caller: BlobCaller, req: CreateBlobRequest) -> CreateBlobResponse:
        """Reserve a blob of ``req.size`` stored bytes for a group whose member set
        lists the caller's queue (``req.token`` opens the member set of a group
        sealed under its members' keys); the caller owns it."""
        if not is_padme(req.size):
            raise ApiError.invalid_field("size", "not a Padmé size (pad the blob first)")
        if req.size > self.max_stored_bytes:
            raise ApiError(
                ErrorCode.BLOB_TOO_LARGE,
                f"a file may have at most {self.max_blob_bytes} bytes on this server",
                {"max_blob_bytes": self.max_blob_bytes},
            )
        free = await self._free_bytes()
        now = self._now_ms()
        blob_id = secrets.token_bytes(BLOB_ID_BYTES)
        owner = self._owner(caller)
        queue_id = caller.queue_id
        expires_at = _hour_ceil(now + self._upload_ttl_ms)

        async def op(tx: Tx) -> None:
            # The owning queue's row serialises creation per owner (the quota,
            # PostgreSQL), whichever kind of request it comes by.
            await tx.fetchone(
                "SELECT 1 FROM queues WHERE queue_id = ?" + tx.for_update,  # noqa: S608
                queue_id,
            )
            members = await self._members.read(tx, req.group_id, req.token)
            if members is None or queue_id not in members:
                raise _unknown_group()
            row = await tx.fetchone(
                "SELECT COALESCE(SUM(size), 0) FROM blobs WHERE owner_hash = ? AND expires_at > ?",
                owner,
                now,
            )
            used = int(row[0]) if row is not None else 0
            if used + req.size > self._quota:
                raise ApiError(
                    ErrorCode.QUOTA_EXCEEDED,
                    "this device's files use all the storage it may have on this server; "
                    "wait until they are fetched or expire",
                    {"quota_bytes": self._quota, "used_bytes": used},
                )
            # Space promised to unfinished uploads is as good as used.
            row = await tx.fetchone(
                "SELECT COALESCE(SUM(size - received), 0) FROM blobs "
                "WHERE complete = 0 AND expires_at > ?",
                now,
            )
            promised = int(row[0]) if row is not None else 0
            if free - promised - req.size < self._reserve:
                raise _no_space()
            await tx.execute(
                "INSERT INTO blobs (blob_id, group_id, owner_hash, size, received, complete, "
                "access_hash, created_at, completed_at, expires_at) "
                "VALUES (?, ?, ?, ?, 0, 0, ?, ?, NULL, ?)",
                blob_id,
                req.group_id,
                owner,
                req.size,
                req.access_hash,
                _hour_floor(now),
                expires_at,
            )

        await self._db.transaction(op)
        self._metrics.blobs.labels(event="created").inc()
        log_event(_log, "blob created", size=req.size)
        return CreateBlobResponse(blob_id, expires_at, MAX_BLOB_PART_BYTES)

    async def upload(
        self,
        caller: BlobCaller,
        blob_id: bytes,
        offset: int,
        data: bytes,
        token: bytes | None = None,
    ) -> BlobStatus:
        """Append ``data`` at ``offset`` (which must be the bytes received so far).

        The last part snapshots the recipients, so it needs ``token`` for a
        group sealed under its members' keys (``unknown_group`` otherwise,
        before the part is written).
        """
        async with self._turn(blob_id):
            now = self._now_ms()
            blob = await self._db.read(lambda tx: self._select(tx, blob_id, now))
            if blob is None or not self._owns(caller, blob):
                raise no_such_blob()
            if offset != blob.received:
                raise _offset_error(blob.received)
            if not data:
                raise ApiError.invalid_field("body", "a part carries at least one byte")
            end = offset + len(data)
            if end > blob.size:
                raise ApiError.invalid_field("body", "the part goes past the end of the blob")
            if end == blob.size:
                self._listed(blob, token)  # the recipients will be readable
            if self._reserve and await self._free_bytes() - len(data) < self._reserve:
                raise _no_space()
            path = self.path(blob_id)
            on_disk = await asyncio.to_thread(_write_part, path, offset, data)
            if on_disk < offset:
                # Recorded bytes are missing from the file (it was lost or cut
                # short outside the server): resume from what is there.
                await self._db.transaction(
                    lambda tx: tx.execute(
                        "UPDATE blobs SET received = ? WHERE blob_id = ? AND received = ?",
                        on_disk,
                        blob_id,
                        offset,
                    )
                )
                _log.warning("a blob's file was shorter than recorded")
                raise _offset_error(on_disk)

            async def op(tx: Tx) -> bool:
                row = await tx.fetchone(
                    "SELECT received, size, group_id FROM blobs WHERE blob_id = ?" + tx.for_update,  # noqa: S608
                    blob_id,
                )
                if row is None:
                    raise no_such_blob()
                if int(row[0]) != offset:
                    raise _offset_error(int(row[0]))
                if end < int(row[1]):
                    await tx.execute(
                        "UPDATE blobs SET received = ? WHERE blob_id = ?", end, blob_id
                    )
                    return False
                await tx.execute(
                    "UPDATE blobs SET received = ?, complete = 1, completed_at = ?, "
                    "expires_at = ? WHERE blob_id = ?",
                    end,
                    _hour_floor(now),
                    _hour_ceil(now + self._retention_ms),
                    blob_id,
                )
                # The group's members now, read with the token (checked above;
                # a removal since then refuses the part, which is not recorded).
                members = await self._members.read(tx, bytes(row[2]), token)
                if members is None:
                    raise _unknown_group()
                await tx.executemany(
                    "INSERT INTO blob_fetchers (blob_id, recipient) VALUES (?, ?)",
                    [
                        (blob_id, self.recipient(blob_id, q))
                        for q in members
                        if q != caller.queue_id  # the uploader's own
                    ],
                )
                return True

            try:
                complete = await self._db.transaction(op)
            except ApiError as exc:
                if exc.code is ErrorCode.NOT_FOUND:
                    # Deleted while the part was written: the write may have
                    # made the file again.
                    await asyncio.to_thread(_unlink, path)
                raise
        self._metrics.blob_bytes.labels(direction="uploaded").inc(len(data))
        if complete:
            self._metrics.blobs.labels(event="completed").inc()
            log_event(_log, "blob complete", size=blob.size)
        return BlobStatus(blob.size, end, complete)

    async def status(
        self,
        caller: BlobCaller,
        blob_id: bytes,
        access: bytes | None,
        token: bytes | None = None,
    ) -> BlobStatus:
        """How much of the blob the server holds: for its owner, or a capable member."""
        now = self._now_ms()
        blob = await self._db.read(lambda tx: self._select(tx, blob_id, now))
        if blob is None:
            raise no_such_blob()
        if not self._owns(caller, blob):
            self._check_capable(blob, caller.queue_id, access, token)
        return BlobStatus(blob.size, blob.received, blob.complete)

    async def download(
        self,
        queue_id: str,
        blob_id: bytes,
        access: bytes | None,
        offset: int,
        length: int | None,
        token: bytes | None = None,
    ) -> bytes:
        """Bytes ``offset`` to ``offset + length`` of a complete blob (capable
        members only: ``queue_id`` is the reader's, from a queue request or a
        signed one's proof)."""
        now = self._now_ms()
        blob = await self._db.read(lambda tx: self._select(tx, blob_id, now))
        if blob is None or not blob.complete:
            raise no_such_blob()
        self._check_capable(blob, queue_id, access, token)
        if offset >= blob.size:
            raise ApiError.invalid_field("offset", "past the end of the blob")
        want = min(length if length is not None else MAX_BLOB_PART_BYTES, blob.size - offset)
        try:
            data = await asyncio.to_thread(_read_range, self.path(blob_id), offset, want)
        except FileNotFoundError:
            raise no_such_blob() from None  # deleted meanwhile
        if len(data) != want:
            _log.warning("a blob's file is shorter than its size")
            raise no_such_blob()
        self._metrics.blob_bytes.labels(direction="downloaded").inc(len(data))
        return data

    async def fetched(
        self,
        queue_id: str,
        blob_id: bytes,
        access: bytes | None,
        token: bytes | None = None,
    ) -> None:
        """``queue_id`` (the reader's) has the blob; the last recipient's deletes it."""
        now = self._now_ms()

        async def op(tx: Tx) -> bool:
            blob = await self._select(tx, blob_id, now)
            if blob is None or not blob.complete:
                raise no_such_blob()
            listed = self._check_capable(blob, queue_id, access, token)
            await self._adopt_legacy_recipients(tx)
            await tx.execute(
                "DELETE FROM blob_fetchers WHERE blob_id = ? AND recipient = ?",
                blob_id,
                self.recipient(blob_id, queue_id),
            )
            await self._drop_departed(tx, [(blob_id, await live_queues(tx, listed))])
            if await tx.fetchone("SELECT 1 FROM blob_fetchers WHERE blob_id = ?", blob_id):
                return False
            await _delete_blobs(tx, "blob_id = ?", blob_id)
            return True

        if await self._db.transaction(op):
            await asyncio.to_thread(_unlink, self.path(blob_id))
            self._metrics.blobs.labels(event="fetched").inc()
            log_event(_log, "blob fetched by all")

    async def delete(self, caller: BlobCaller, blob_id: bytes) -> None:
        """Delete a blob: its owner only (a cancelled upload)."""
        now = self._now_ms()

        async def op(tx: Tx) -> None:
            blob = await self._select(tx, blob_id, now)
            if blob is None or not self._owns(caller, blob):
                raise no_such_blob()
            await _delete_blobs(tx, "blob_id = ?", blob_id)

        await self._db.transaction(op)
        await asyncio.to_thread(_unlink, self.path(blob_id))
        self._metrics.blobs.labels(event="deleted").inc()
        log_event(_log, "blob deleted")

    # -- retention ------------------------------------------------------------------

    async def sweep(self) -> BlobSweep:
        """Delete expired and fully fetched blobs, departed recipients, and orphan files."""
        now = self._now_ms()

        async def op(tx: Tx) -> tuple[list[bytes], list[bytes], list[bytes], int, int]:
            # A recipient that left the group can no longer fetch: it does not
            # count. The member set of a group sealed under its members' keys
            # opens only with a token, which the sweep has not: its departed
            # recipients go when a member says fetched, or at retention.
            await self._adopt_legacy_recipients(tx)
            waiting = await tx.fetchall(
                "SELECT b.blob_id, b.group_id FROM blobs b "
                "LEFT JOIN mls_groups g ON g.group_id = b.group_id "
                "WHERE b.complete = 1 AND g.state_keys IS NULL AND EXISTS "
                "(SELECT 1 FROM blob_fetchers f WHERE f.blob_id = b.blob_id) ORDER BY b.group_id"
            )
            members: dict[bytes, list[str]] = {}
            for _, group in waiting:
                group_id = bytes(group)
                if group_id not in members:
                    members[group_id] = await self._members.read(tx, group_id) or []
            await self._drop_departed(tx, [(bytes(b), members[bytes(g)]) for b, g in waiting])
            expired = await _delete_blobs(tx, "expires_at <= ?", now)
            done = await _delete_blobs(
                tx,
                "complete = 1 AND NOT EXISTS (SELECT 1 FROM blob_fetchers f "
                "WHERE f.blob_id = blobs.blob_id)",
            )
            live = [bytes(r[0]) for r in await tx.fetchall("SELECT blob_id FROM blobs")]
            row = await tx.fetchone("SELECT COALESCE(SUM(received), 0) FROM blobs")
            return expired, done, live, len(live), int(row[0]) if row is not None else 0

        expired, done, live, stored, stored_bytes = await self._db.transaction(op)
        for blob_id in (*expired, *done):
            await asyncio.to_thread(_unlink, self.path(blob_id))
        keep = {self.file_name(b) for b in live}
        orphans = await asyncio.to_thread(
            _remove_orphans, self.directory, keep, self._clock() - ORPHAN_GRACE_SECONDS
        )
        self._metrics.blobs.labels(event="expired").inc(len(expired))
        self._metrics.blobs.labels(event="fetched").inc(len(done))
        self._metrics.blobs_stored.set(stored)
        self._metrics.blob_bytes_stored.set(stored_bytes)
        if expired or done or orphans:
            log_event(_log, "blob sweep", expired=len(expired), done=len(done), orphans=orphans)
        return BlobSweep(len(expired), len(done), orphans)


# -- files (run in worker threads) ------------------------------------------------------


def _write_part(path: Path, offset: int, data: bytes) -> int:
    """Write ``data`` at ``offset`` and sync; the file's length before, if short of ``offset``.

    A file longer than ``offset`` (a part written but not recorded) is cut to
    ``offset`` first. Returns ``offset`` when the part was written.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        length = os.fstat(fd).st_size
        if length < offset:
            return length
        if length > offset:
            os.ftruncate(fd, offset)
        view = memoryview(data)
        position = offset
        while view:
            written = os.pwrite(fd, view, position)
            view = view[written:]
            position += written
        os.fsync(fd)
    finally:
        os.close(fd)
    return offset


def _read_range(path: Path, offset: int, length: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts: list[bytes] = []
        got = 0
        while got < length:
            chunk = os.pread(fd, length - got, offset + got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _remove_orphans(directory: Path, keep: set[str], older_than: float) -> int:
    """Remove files of ``directory`` not in ``keep`` and last written before ``older_than``."""
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name in keep:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime >= older_than:
                continue
            os.unlink(entry.path)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                _log.warning("could not remove an orphan blob file: %s", exc.strerror)
            continue
        removed += 1
    return removed
