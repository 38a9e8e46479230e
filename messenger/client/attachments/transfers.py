"""The background transfer queue: uploads and downloads of attachments (docs/attachments.md §4).

The queue is the ``attachments`` table (:mod:`..store.attachments`): a row
in state ``uploading`` or ``downloading`` whose ``next_attempt_at`` has
come is a transfer to run. :class:`TransferQueue` runs a few side by side,
so it survives restarts with the rows:

* an **upload** reserves the blob (``POST /v1/blobs``) unless the row has
  its ID, asks the server how much it holds (``GET .../status``) and sends
  the rest of the encrypted file in parts of :data:`PART_BYTES`. Once the
  server has all of it, one store transaction marks the row ``sent`` and
  queues the MLS application message that carries the file's key (RFC 9420
  §6.3; content kind ``file``) for the message row that waited, pending;
* a **download** resumes from the bytes already in its file: they are
  checked again (:func:`.crypto.verify_file`), then the rest is fetched
  part by part, each part checked (:class:`.crypto.BlobVerifier`) before it
  is written. Once the digest matches, the row is ``downloaded`` and the
  server is told (``POST .../fetched``).

Every request that needs membership carries the send token of the group's
current epoch (docs/metadata.md §2: the server reads the member set of a
group sealed under its members' keys only with it). A token from before a
removal opens nothing (``unknown_group``): the client catches up with its
queue and asks again with the token of the epoch it reached; if that does
not move it on, it is no longer a member.

Network failures are retried with backoff (:mod:`..net.backoff`);
``not_found`` or ``unknown_group`` on a download means the server no longer
has the blob or this device may no longer fetch it (``gone``); quota and disk space refusals, and
a blob that fails a check, end the transfer with the error's sentence
(``upload_failed``, ``failed``) -- nothing else changes. Progress goes out
as :class:`~..events.TransferProgress` events (at most
:data:`PROGRESS_PER_SECOND` a second per transfer), a change of state as a
:class:`~..events.MessageUpdated`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import gc
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

from messenger.api import models as m
from messenger.api.blobs import MAX_BLOB_PART_BYTES

from ..errors import (
    AttachmentCorruptError,
    AttachmentError,
    AttachmentUnavailableError,
    ClientError,
    DeviceRemovedError,
    DeviceReplacedError,
    DiskFullError,
    ProtocolError,
    RateLimitedError,
    ServerRejectedError,
)
from ..events import Event, MessageReceived, MessageUpdated, TransferProgress
from ..net.backoff import Backoff
from ..sealed_sending import send_token
from ..store.attachments import Attachment, TransferState
from ..store.outbox import OutboxKind
from ..wake import wait_event
from .crypto import BlobVerifier, stored_size, verify_file
from .files import attachment_file, attachments_dir, new_local_file, remove_attachment_files

if TYPE_CHECKING:
    from ..session import Session
    from ..store.store import Store

__all__ = [
    "MAX_PARALLEL",
    "PART_BYTES",
    "PROGRESS_PER_SECOND",
    "WATCH_DEBOUNCE_S",
    "TransferQueue",
    "file_content",
]

#: How long after a new message the queue looks for work (see ``_watch``).
WATCH_DEBOUNCE_S: Final = 0.25
#: The bytes of one upload or download request.
PART_BYTES: Final = min(4 << 20, MAX_BLOB_PART_BYTES)
#: Transfers run side by side.
MAX_PARALLEL: Final = 3
#: TransferProgress events per second and transfer, at most.
PROGRESS_PER_SECOND: Final = 4

_log = logging.getLogger(__name__)

_UNAVAILABLE: Final = AttachmentUnavailableError().user_message
#: How many times a request refused ``unknown_group`` is asked again after a
#: catch-up moved the group on (each a removal the client had not seen).
_TOKEN_TRIES: Final = 3
#: The server's answer to a send token that does not open the group's state.
_UNKNOWN_GROUP: Final = "unknown_group"

_T = TypeVar("_T")


def file_content(s: Store, attachment: Attachment) -> bytes | None:
    """The encoded MLS content announcing an uploaded attachment (None: its message is gone)."""
    from ..content import Content, File, encode_content

    message = s.messages.get(attachment.message_id)
    if message is None:
        return None
    body = File(
        attachment.blob_id,
        attachment.access,
        attachment.key,
        attachment.digest,
        attachment.size,
        attachment.media_type,
        attachment.name,
        attachment.width,
        attachment.height,
        attachment.thumbnail,
        message.body or "",
    )
    return encode_content(Content(message.uid, message.sent_at, body, message.expires_after))


class _Stop(Exception):
    """The transfer ends here (its row was updated already)."""


class TransferQueue:
    """Runs the due transfers of the ``attachments`` table, a few at a time."""

    def __init__(
        self,
        session: Session,
        profile_dir: Path,
        *,
        backoff: Backoff | None = None,
        catch_up: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._s = session
        self._dir = profile_dir
        #: Fetches and processes the queue (the inbound pipeline's), after a
        #: request whose token the server no longer takes.
        self._catch_up = catch_up
        chosen = backoff or Backoff(base=0.5, maximum=30.0)
        self._backoff = dataclasses.replace(chosen, random=_secure_fraction)
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._stopped = False

    def wake(self) -> None:
        """Look at the queue now (a transfer was queued, or retried)."""
        self._wake.set()

    async def run(self) -> None:
        """Run transfers forever: when woken, when a retry is due, when messages arrive."""
        watcher = asyncio.create_task(self._watch(), name="transfers-watch")
        try:
            while not self._stopped:
                self._wake.clear()
                due = await self._start_due()
                timeout = None if due is None else max(0.0, (due - self._s.now_ms()) / 1000)
                await wait_event(self._wake, timeout)
        finally:
            watcher.cancel()
            running = list(self._running.values())
            for task in running:
                task.cancel()
            await asyncio.gather(watcher, *running, return_exceptions=True)

    async def _watch(self) -> None:
        """Wake on new messages: a received attachment may be queued for download.

        A burst of messages wakes the queue once, :data:`WATCH_DEBOUNCE_S`
        after its first message, not once per message (the queue's look is
        two store reads, on the store's one thread that the burst needs)."""
        loop = asyncio.get_running_loop()
        pending: asyncio.TimerHandle | None = None

        def wake() -> None:
            nonlocal pending
            pending = None
            self._wake.set()

        try:
            async for event in self._s.events.subscribe():
                if isinstance(event, MessageReceived | MessageUpdated) and pending is None:
                    pending = loop.call_later(WATCH_DEBOUNCE_S, wake)
        finally:
            if pending is not None:
                pending.cancel()

    async def _start_due(self) -> int | None:
        """Start due transfers (up to :data:`MAX_PARALLEL`); when the next one is due."""
        now = self._s.now_ms()
        free = MAX_PARALLEL - len(self._running)
        if free > 0:
            busy = set(self._running)

            def due(s: Store) -> list[Attachment]:
                return [
                    a
                    for a in s.attachments.due(now=now, limit=free + len(busy))
                    if a.message_id not in busy
                ][:free]

            for attachment in await self._s.store.run(due):
                self._start(attachment)
        if len(self._running) >= MAX_PARALLEL:
            return None  # woken when one ends
        running = tuple(self._running)
        return await self._s.store.run(lambda s: s.attachments.next_attempt_at(exclude=running))

    def _start(self, attachment: Attachment) -> None:
        message_id = attachment.message_id
        work = self._upload if attachment.state is TransferState.UPLOADING else self._download
        task = asyncio.create_task(work(attachment), name=f"transfer-{message_id}")
        self._running[message_id] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._running.get(message_id) is finished:
                del self._running[message_id]
            if not finished.cancelled() and (exc := finished.exception()) is not None:
                _log.error("a transfer failed unexpectedly: %s", type(exc).__name__)
            self._wake.set()

        task.add_done_callback(done)

    async def cancel(self, message_id: int) -> None:
        """Stop the running transfer of this message, if any, and wait until it stopped."""
        task = self._running.get(message_id)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    def running(self, message_id: int) -> bool:
        return message_id in self._running

    # -- uploads -------------------------------------------------------------------------

    async def _upload(self, attachment: Attachment) -> None:
        try:
            await self._try_upload(attachment)
        except _Stop:
            return
        except (DeviceReplacedError, DeviceRemovedError):
            self._stopped = True
            self._wake.set()
        except AttachmentError as exc:
            await self._give_up(attachment, TransferState.UPLOAD_FAILED, exc.user_message)
        except ServerRejectedError as exc:
            if exc.code == "not_found" and attachment.blob_id:
                # The reservation lapsed (24 h) or was withdrawn: reserve anew.
                await self._retry(attachment, exc, blob_id=b"")
            else:
                await self._give_up(attachment, TransferState.UPLOAD_FAILED, exc.user_message)
        except ClientError as exc:  # the network, the store: try again later
            await self._retry(attachment, exc)
        except (OSError, ValueError):  # the encrypted copy is gone, or not ours
            await self._give_up(
                attachment,
                TransferState.UPLOAD_FAILED,
                "The encrypted copy of this file on this device is missing; send it again.",
            )

    async def _try_upload(self, attachment: Attachment) -> None:
        transport = self._s.transport
        if attachment.local_file is None:
            raise OSError("no local file")
        path = attachment_file(self._dir, attachment.local_file)
        total = stored_size(attachment.size)
        if os.stat(path).st_size != total:
            raise OSError("the local file has the wrong size")
        blob_id = attachment.blob_id
        group_id = await self._s.store.run(_group_of, attachment.message_id)
        if group_id is None:
            raise _Stop
        if not blob_id:
            access_hash = hashlib.sha256(attachment.access).digest()
            created = await self._with_token(
                group_id,
                lambda token: transport.create_blob(
                    m.CreateBlobRequest(group_id, total, access_hash, token)
                ),
            )
            blob_id = created.blob_id
            updated = await self._update(
                attachment, blob_id=blob_id, done=0, expect=(TransferState.UPLOADING,)
            )
            attachment = updated
        status = await transport.blob_status(blob_id)
        if status.size != total or not 0 <= status.received <= total:
            raise ProtocolError("the server's blob does not match the upload")
        received = status.received
        progress = await self._progress(attachment, total, upload=True)
        refused = 0
        with open(path, "rb") as f:
            while received < total:
                f.seek(received)
                part = await asyncio.to_thread(f.read, min(PART_BYTES, total - received))
                try:
                    status = await self._with_token(
                        group_id,
                        functools.partial(transport.upload_blob_part, blob_id, received, part),
                    )
                except ServerRejectedError as exc:
                    refused += 1
                    if exc.code != "blob_offset" or refused > 3:
                        raise
                    status = await transport.blob_status(blob_id)  # go on from where it is
                    if not 0 <= status.received <= total:
                        raise ProtocolError("the server's blob does not match the upload") from None
                    received = status.received
                    continue
                if not received < status.received <= total:
                    raise ProtocolError("the server did not take the part")
                received, refused = status.received, 0
                _release_parts()
                if progress.report(received):  # the row's count, as often as the events
                    await self._update(attachment, done=received, expect=(TransferState.UPLOADING,))
        await self._uploaded(attachment)

    async def _uploaded(self, attachment: Attachment) -> None:
        """Mark the row sent and queue its MLS message, in one transaction."""
        now = self._s.now_ms()
        message_id = attachment.message_id

        def write(s: Store) -> tuple[bytes | None, list[Event]]:
            row = s.attachments.get(message_id)
            if row is None or row.state is not TransferState.UPLOADING:
                return None, []
            content = file_content(s, row)
            message = s.messages.get(message_id)
            group_id = _group_of(s, message_id)
            if content is None or message is None or group_id is None:
                return None, []
            s.attachments.update(
                message_id,
                now=now,
                state=TransferState.SENT,
                done=stored_size(row.size),
                clear_error=True,
            )
            s.outbox.enqueue(
                OutboxKind.MESSAGE,
                b"",
                now=now,
                group_id=group_id,
                message_id=message_id,
                content=content,
            )
            return group_id, self._views(s, [MessageUpdated(message.conversation_id, message_id)])

        group_id, events = await self._s.store.transaction(write)
        if group_id is not None:
            self._s.outbox_queued(group_id)
        self._s.events.publish(*events)

    # -- downloads -----------------------------------------------------------------------

    async def _download(self, attachment: Attachment) -> None:
        try:
            await self._try_download(attachment)
        except _Stop:
            return
        except (DeviceReplacedError, DeviceRemovedError):
            self._stopped = True
            self._wake.set()
        except AttachmentCorruptError as exc:
            await self._give_up(attachment, TransferState.FAILED, exc.user_message, discard=True)
        except AttachmentError as exc:
            await self._give_up(attachment, TransferState.FAILED, exc.user_message)
        except ServerRejectedError as exc:
            if exc.code in ("not_found", _UNKNOWN_GROUP):  # gone, or no longer a member
                await self._give_up(attachment, TransferState.GONE, _UNAVAILABLE, discard=True)
            else:
                await self._give_up(attachment, TransferState.FAILED, exc.user_message)
        except ClientError as exc:  # the network, the store: try again later
            await self._retry(attachment, exc)
        except (OSError, ValueError) as exc:
            full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
            error = DiskFullError() if full else AttachmentError()
            await self._give_up(attachment, TransferState.FAILED, error.user_message)

    async def _try_download(self, attachment: Attachment) -> None:
        transport = self._s.transport
        if attachment.local_file is None:
            attachments_dir(self._dir)
            name = new_local_file()
            attachment = await self._update(
                attachment, local_file=name, done=0, expect=(TransferState.DOWNLOADING,)
            )
        assert attachment.local_file is not None
        group_id = await self._s.store.run(_group_of, attachment.message_id)
        if group_id is None:
            raise _Stop
        path = attachment_file(self._dir, attachment.local_file)
        verifier = await asyncio.to_thread(_resume, path, attachment)
        total = verifier.total
        progress = await self._progress(attachment, total, upload=False)
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
        try:
            while verifier.received < total:
                offset = verifier.received
                length = min(PART_BYTES, total - offset)
                data = await self._with_token(
                    group_id,
                    functools.partial(
                        transport.download_blob,
                        attachment.blob_id,
                        attachment.access,
                        offset,
                        length,
                    ),
                )
                if not data or len(data) > length:
                    raise AttachmentCorruptError(
                        f"attachment blob: a part of {len(data)} bytes, asked for {length}"
                    )
                await asyncio.to_thread(_check_and_write, verifier, fd, data)
                del data
                _release_parts()
                if progress.report(verifier.received):
                    await self._update(
                        attachment, done=verifier.received, expect=(TransferState.DOWNLOADING,)
                    )
            verifier.finish()
            await asyncio.to_thread(os.fsync, fd)
        finally:
            os.close(fd)
        now = self._s.now_ms()
        message_id = attachment.message_id

        def write(s: Store) -> list[Event]:
            row = s.attachments.update(
                message_id,
                now=now,
                state=TransferState.DOWNLOADED,
                done=total,
                clear_error=True,
                expect=(TransferState.DOWNLOADING,),
            )
            message = s.messages.get(message_id)
            if row is None or message is None:
                return []
            return self._views(s, [MessageUpdated(message.conversation_id, message_id)])

        events = await self._s.store.transaction(write)
        self._s.events.publish(*events)
        if events:
            try:
                await self._with_token(
                    group_id,
                    lambda token: transport.blob_fetched(
                        attachment.blob_id, attachment.access, token
                    ),
                )
            except ClientError as exc:  # the server keeps it until its retention ends
                _log.info("telling the server a blob was fetched failed: %s", type(exc).__name__)

    # -- the group's token ---------------------------------------------------------------

    async def _token(self, group_id: bytes) -> tuple[bytes | None, int | None]:
        """The send token of the group's current epoch, and the epoch (None: not a member)."""
        epochs = self._s.epochs
        async with epochs.lock(group_id):
            group = await epochs.get(group_id)
            if group is None or not group.active:
                return None, None
            return await self._s.mls(send_token, group), group.epoch

    async def _with_token(
        self, group_id: bytes, call: Callable[[bytes | None], Awaitable[_T]]
    ) -> _T:
        """``call`` with the group's send token (docs/metadata.md §2).

        The server answers ``unknown_group`` to a token that no longer opens
        the group's state: a member was removed in an epoch this client has
        not processed yet. It then catches up and asks again with the new
        epoch's token; if the epoch did not move, the answer stands (this
        client is not a member).
        """
        token, epoch = await self._token(group_id)
        for _ in range(_TOKEN_TRIES):
            try:
                return await call(token)
            except ServerRejectedError as exc:
                if exc.code != _UNKNOWN_GROUP or epoch is None:
                    raise
                if self._catch_up is not None:
                    await self._catch_up()
                token, now = await self._token(group_id)
                if now is None or now == epoch:
                    raise
                epoch = now
        return await call(token)

    # -- the row -------------------------------------------------------------------------

    async def _update(
        self,
        attachment: Attachment,
        *,
        expect: tuple[TransferState, ...],
        done: int | None = None,
        local_file: str | None = None,
        blob_id: bytes | None = None,
    ) -> Attachment:
        """Write progress to the row; _Stop if it was cancelled or deleted meanwhile."""
        now = self._s.now_ms()
        updated = await self._s.store.run(
            lambda s: s.attachments.update(
                attachment.message_id,
                now=now,
                done=done,
                local_file=local_file,
                blob_id=blob_id,
                expect=expect,
            )
        )
        if updated is None:
            raise _Stop
        return updated

    async def _retry(
        self, attachment: Attachment, exc: ClientError, *, blob_id: bytes | None = None
    ) -> None:
        """A failure worth another try: count it, and schedule the next attempt."""
        now = self._s.now_ms()
        row = await self._s.store.run(lambda s: s.attachments.get(attachment.message_id))
        if row is None or row.state is not attachment.state:
            return
        delay = self._backoff.delay(row.attempts)
        if isinstance(exc, RateLimitedError):
            delay = max(delay, exc.retry_after)
        due = now + int(delay * 1000)
        _log.info("a transfer will be retried: %s", type(exc).__name__)

        def write(s: Store) -> None:
            s.attachments.record_failure(
                attachment.message_id, error=exc.user_message, next_attempt_at=due, now=now
            )
            if blob_id is not None:
                s.attachments.update(attachment.message_id, now=now, blob_id=blob_id, done=0)

        await self._s.store.transaction(write)

    async def _give_up(
        self,
        attachment: Attachment,
        state: TransferState,
        sentence: str,
        *,
        discard: bool = False,
    ) -> None:
        """End the transfer with ``sentence`` for the user (``discard``: and delete
        the partial or refused download)."""
        now = self._s.now_ms()
        message_id = attachment.message_id

        def write(s: Store) -> tuple[str | None, list[Event]]:
            before = s.attachments.get(message_id)
            if before is None or before.state is not attachment.state:
                return None, []
            s.attachments.update(
                message_id,
                now=now,
                state=state,
                error=sentence,
                done=0 if discard else None,
                clear_local_file=discard,
            )
            message = s.messages.get(message_id)
            local_file = before.local_file if discard else None
            if message is None:
                return local_file, []
            events = self._views(s, [MessageUpdated(message.conversation_id, message_id)])
            return local_file, events

        local_file, events = await self._s.store.transaction(write)
        if local_file is not None:
            remove_attachment_files(self._dir, [local_file])
        self._s.events.publish(*events)

    def _views(self, s: Store, events: list[Event]) -> list[Event]:
        from ..models import with_views

        return with_views(s, events, self._s.account.account_id, now=self._s.now_ms())

    def progress(self, event: TransferProgress) -> None:
        self._s.events.publish(event)

    async def _progress(self, attachment: Attachment, total: int, *, upload: bool) -> _Progress:
        message_id = attachment.message_id
        conversation_id = await self._s.store.run(_conversation_of, message_id)
        if conversation_id is None:
            raise _Stop
        return _Progress(self, conversation_id, message_id, total, upload=upload)


class _Progress:
    """Publishes TransferProgress, at most :data:`PROGRESS_PER_SECOND` a second."""

    def __init__(
        self,
        queue: TransferQueue,
        conversation_id: int,
        message_id: int,
        total: int,
        *,
        upload: bool,
    ) -> None:
        self._queue = queue
        self._ids = (conversation_id, message_id)
        self._total = total
        self._upload = upload
        self._last = 0.0

    def report(self, done: int) -> bool:
        """Publish ``done`` unless one was published just now; whether it was."""
        now = time.monotonic()
        if done < self._total and now - self._last < 1 / PROGRESS_PER_SECOND:
            return False
        self._last = now
        conversation_id, message_id = self._ids
        self._queue.progress(
            TransferProgress(conversation_id, message_id, done, self._total, self._upload)
        )
        return True


def _conversation_of(s: Store, message_id: int) -> int | None:
    message = s.messages.get(message_id)
    return None if message is None else message.conversation_id


def _group_of(s: Store, message_id: int) -> bytes | None:
    message = s.messages.get(message_id)
    if message is None:
        return None
    conversation = s.conversations.get(message.conversation_id)
    return None if conversation is None else conversation.group_id


def _resume(path: Path, attachment: Attachment) -> BlobVerifier:
    """A verifier fed with what the download's file holds (made empty if it fails)."""
    if path.exists():
        try:
            return verify_file(path, attachment.key, attachment.size, attachment.digest)
        except AttachmentCorruptError:
            # A partial write cut short by a crash; fetch it all again.
            _log.info("a resumed download's file did not check; starting again")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    os.close(os.open(path, flags, 0o600))
    return BlobVerifier(attachment.key, attachment.size, attachment.digest)


def _check_and_write(verifier: BlobVerifier, fd: int, data: bytes) -> None:
    verifier.feed(data)  # raises before a bad part is written
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _release_parts() -> None:
    """Free the parts of the requests just made.

    httpx keeps each response in a reference cycle (the response and its
    stream), which holds the request's or the answer's body -- a part of
    4 MiB -- until the cyclic collector runs; with the few objects a
    transfer allocates, that is many parts later. Collecting the young
    generations (well under a millisecond) keeps memory to a few parts.
    """
    gc.collect(1)


def _secure_fraction() -> float:
    return secrets.randbelow(1 << 30) / (1 << 30)
