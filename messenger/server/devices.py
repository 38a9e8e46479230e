"""Device tokens: a copy restored from a backup takes its client over.

A backup holds a client's signature key, so a restored copy and the copy the
backup was made from sign alike and read the same queue: they would
silently split the client's messages. Until devices can be linked, a
restore *takes the client over* (docs/server.md, "Takeover"):

* the restored copy calls ``POST /v1/clients/takeover`` (signed) with 32
  fresh random bytes, its device token; the server stores only their
  SHA-256 in ``clients.device_token_hash``, closes the client's open
  WebSockets and wakes its long polls;
* from then on every signed request and WebSocket of that client must carry
  the token (``X-Messenger-Device-Token``); without it, or with another
  one, the answer is ``device_replaced`` (401) and nothing is done. The
  hashes are compared in constant time (:func:`hmac.compare_digest`).

The stored hash is read with the recording of the request's nonce
(:mod:`.authentication`: one statement on PostgreSQL, one transaction on
SQLite) and compared in Python, so it is current on every server process,
with no cache to go stale. A WebSocket is re-checked once it is
registered here (a takeover that commits in between then closes it), and a
long poll once it returns. With several processes, the takeover's
``NOTIFY`` on :data:`DEVICE_CHANNEL` makes each process close the client's
sockets; after a lost LISTEN connection (which may have missed one), every
open socket is checked against the database again.

The takeover route itself does not need the current token: anyone holding
the client's signature key may take it over, which is what a restore is.
The token does not protect against the key's holder; it stops two copies
from silently competing, and the copy that is replaced is told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import Ident, b64decode
from messenger.api.signing import DEVICE_TOKEN_BYTES, HEADER_DEVICE_TOKEN

from .logs import log_event
from .payload_refs import PayloadRefs
from .push import Hub
from .storage import Database, StorageError, Tx

if TYPE_CHECKING:
    from .authentication import Principal
    from .contact_queues import ContactQueues
    from .links import Links
    from .queue_links import QueueLinks

__all__ = [
    "DEVICE_CHANNEL",
    "Devices",
    "check_device",
    "check_not_removed",
    "device_removed",
    "device_replaced",
    "device_token_hash",
    "presented_token",
    "removed_client_hash",
    "removed_queue_hash",
    "token_matches",
]

_log = logging.getLogger("messenger.server.devices")

#: The PostgreSQL notification channel of takeovers.
DEVICE_CHANNEL: Final = "messenger_devices"

_HASH_PREFIX: Final = b"messenger-device-token-v1\n"
#: The last word of a removal's notification on :data:`DEVICE_CHANNEL`.
_REMOVED: Final = "removed"

_REMOVED_LABEL: Final = b"messenger-removed-client-v1\n"
_REMOVED_QUEUE_LABEL: Final = b"messenger-removed-queue-v1\n"

#: Closes one open WebSocket of a client that was taken over or removed,
#: with the error code to give as the close reason.
Closer = Callable[[ErrorCode], Awaitable[None]]


def removed_client_hash(key: bytes, client_id: str) -> bytes:
    """The tombstone of a removed client: HMAC-SHA256 of its ID under ``key``.

    ``key`` is derived from the server secret (:mod:`.server_keys`), which is
    not in the database: a copy of the database does not tell which client
    IDs were removed.
    """
    return hmac.new(key, _REMOVED_LABEL + client_id.encode("ascii"), hashlib.sha256).digest()


def removed_queue_hash(key: bytes, queue_id: str) -> bytes:
    """The tombstone of a removed client's queue (same key, another label).

    A member that has not yet applied the commit removing a removed device's
    leaves still names its queue in the member set of its own commits; the
    Delivery Service skips such queues instead of refusing the commit.
    """
    return hmac.new(key, _REMOVED_QUEUE_LABEL + queue_id.encode("ascii"), hashlib.sha256).digest()


def device_removed() -> ApiError:
    return ApiError(
        ErrorCode.DEVICE_REMOVED,
        "this device was removed from its account by one of the account's devices",
    )


def no_such_client() -> ApiError:
    """The one answer for an unknown client and another account's client."""
    return ApiError(ErrorCode.NOT_FOUND, "no such client")


def device_token_hash(token: bytes) -> bytes:
    """What the server keeps of a device token: a domain-separated SHA-256."""
    return hashlib.sha256(_HASH_PREFIX + token).digest()


def presented_token(headers: Mapping[str, str]) -> bytes | None:
    """The device token a request carries (``None``: none, or not well formed)."""
    raw = headers.get(HEADER_DEVICE_TOKEN)
    if raw is None:
        return None
    try:
        token = b64decode(raw)
    except ValueError:
        return None
    return token if len(token) == DEVICE_TOKEN_BYTES else None


def token_matches(stored_hash: bytes | None, presented: bytes | None) -> bool:
    """Whether a request may act for a client whose token hash is ``stored_hash``.

    A client that was never taken over (``None``) accepts any request. The
    comparison of the hashes is constant-time; a missing token is compared
    as the hash of nothing, so every refusal takes the same path.
    """
    if stored_hash is None:
        return True
    candidate = device_token_hash(presented if presented is not None else b"")
    return hmac.compare_digest(candidate, stored_hash) and presented is not None


def device_replaced() -> ApiError:
    return ApiError(
        ErrorCode.DEVICE_REPLACED,
        "this client was taken over by a restored copy; this copy may no longer use it",
    )


async def check_not_removed(tx: Tx, client_id: str) -> None:
    """``device_removed`` if the client is gone (removed since its request was authenticated).

    For the operations that change an account's devices or links: run after
    the account's row is locked, so a removal that committed meanwhile is seen.
    """
    if await tx.fetchone("SELECT 1 FROM clients WHERE client_id = ?", client_id) is None:
        raise device_removed()


async def check_device(tx: Tx, client_id: str, presented: bytes | None) -> None:
    """``device_replaced`` unless ``presented`` is the client's current device token."""
    row = await tx.fetchone("SELECT device_token_hash FROM clients WHERE client_id = ?", client_id)
    stored = None if row is None or row[0] is None else bytes(row[0])
    if not token_matches(stored, presented):
        raise device_replaced()


class Devices:
    """Takeovers and removals, and the open WebSockets to close when one happens."""

    def __init__(
        self,
        db: Database,
        hub: Hub,
        *,
        removed_key: bytes,
        queue_links: QueueLinks,
        contact_queues: ContactQueues,
        payload_refs: PayloadRefs,
        links: Links | None = None,
    ) -> None:
        self._db = db
        self._queue_links = queue_links
        self._contact_queues = contact_queues
        self._refs = payload_refs
        self._hub = hub
        self._removed_key = removed_key
        self._links = links
        #: Open WebSockets: client ID -> {closer: the device token it presented}.
        self._sockets: dict[str, dict[Closer, bytes | None]] = {}
        #: Open WebSockets of queue requests (no client): queue ID -> closers.
        self._queue_sockets: dict[str, set[Closer]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def take_over(self, principal: Principal, token: bytes) -> None:
        """Make ``token`` the client's device token; close its other connections."""
        digest = device_token_hash(token)
        payload = f"{self._hub.origin} {principal.client_id} {principal.queue_id}"

        async def op(tx: Tx) -> None:
            # A queue with a key of its own is read with that key alone, which
            # the copy taken over holds too: the app no longer takes over (a
            # restore registers a new device, docs/devices.md §5), so such a
            # client cannot be.
            keyed = await tx.fetchone(
                "SELECT 1 FROM queues WHERE queue_id = ? AND auth_key IS NOT NULL",
                principal.queue_id,
            )
            if keyed is not None:
                raise ApiError(
                    ErrorCode.KEY_IN_USE,
                    "this device's queue has a key of its own: restore it as a new device",
                )
            await tx.execute(
                "UPDATE clients SET device_token_hash = ? WHERE client_id = ?",
                digest,
                principal.client_id,
            )
            await tx.notify(DEVICE_CHANNEL, payload)

        await self._db.transaction(op)
        log_event(_log, "client taken over")
        await self._replaced(principal.client_id, principal.queue_id)

    async def remove(
        self,
        principal: Principal,
        client_id: str,
        queue_kill: bytes | None = None,
        contact_kill: bytes | None = None,
    ) -> None:
        """Remove ``client_id``, a client of ``principal``'s account (itself included).

        Another account's client and an unknown ID get the same ``not_found``;
        the account's last client ``last_device``. In one transaction: the
        client's KeyPackages, its queue and its contact queue
        (:mod:`.contact_queues`) with their entries (so it leaves every
        group: a sealed member set that still names a queue skips it,
        :mod:`.member_sets`, and the other members remove its leaves with a
        commit, RFC 9420 §12.1.3), the links it opened and its row go, and
        its tombstones and its queues' are stored, so that its requests and
        its queues' get ``device_removed`` from then on (:mod:`.authentication`).
        A client whose queue has a key of its own is joined to its queue by
        no row: ``queue_kill`` names the queue (the kill secret its account's
        devices derive, :mod:`.queue_links`), else ``invalid_field``; so is a
        contact queue with a kill hash (``contact_killable``, docs/metadata.md
        §1): ``contact_kill`` names it, else ``invalid_field``
        (:meth:`~.contact_queues.ContactQueues.of_removed`). A refusal changes nothing.
        Then its WebSockets, and those its queues' keys opened, are closed and
        its long polls woken, here and, through ``NOTIFY``, in every other
        process.
        """
        try:
            Ident("client_id").parse(client_id, "client_id")
        except ApiError:
            raise no_such_client() from None

        async def op(tx: Tx) -> list[str]:
            # The account's row serialises device changes of one account, so
            # two devices removing each other cannot remove the last one.
            await tx.fetchone(
                "SELECT 1 FROM accounts WHERE account_id = ?" + tx.for_update,  # noqa: S608
                principal.account_id,
            )
            await check_not_removed(tx, principal.client_id)
            found = await self._queue_links.of_client(tx, client_id)
            if found is None or found[0] != principal.account_id:
                raise no_such_client()
            queue_id = found[1]
            if queue_id is None:
                if queue_kill is None:
                    raise ApiError.invalid_field(
                        "queue_kill", "this device's queue has a key of its own: send its kill"
                    )
                queue_id = await self._queue_links.killed(tx, queue_kill)
                if queue_id is None:
                    raise ApiError.invalid_field("queue_kill", "names no queue")
            # Its row locked: a contact queue given meanwhile is seen, or waits.
            contact = await self._contact_queues.of_removed(tx, client_id, queue_id, contact_kill)
            queues = sorted({queue_id} if contact is None else {queue_id, contact})
            count = await tx.fetchone(
                "SELECT COUNT(*) FROM clients WHERE account_id = ?", principal.account_id
            )
            if count is None or int(count[0]) <= 1:
                raise ApiError(ErrorCode.LAST_DEVICE, "the account's last device cannot be removed")
            await tx.execute("DELETE FROM key_packages WHERE client_id = ?", client_id)
            if self._links is not None:
                await self._links.delete_of_client(tx, client_id)
            # The queue rows first (in ID order, as appends lock them), then
            # their entries and payloads: the order of an ack.
            for queue in queues:
                await tx.fetchone(
                    "SELECT 1 FROM queues WHERE queue_id = ?" + tx.for_update,  # noqa: S608
                    queue,
                )
            for queue in queues:
                entries = await tx.fetchall(
                    "DELETE FROM queue_entries WHERE queue_id = ? RETURNING payload_ref", queue
                )
                await self._refs.release(tx, queue, (e[0] for e in entries))
            await tx.execute("DELETE FROM clients WHERE client_id = ?", client_id)
            await tx.executemany("DELETE FROM queues WHERE queue_id = ?", [(q,) for q in queues])
            await tx.executemany(
                "INSERT INTO removed_clients (tombstone) VALUES (?) ON CONFLICT DO NOTHING",
                [
                    (removed_client_hash(self._removed_key, client_id),),
                    *((removed_queue_hash(self._removed_key, q),) for q in queues),
                ],
            )
            origin = self._hub.origin
            for queue in queues:
                await tx.notify(DEVICE_CHANNEL, f"{origin} {client_id} {queue} {_REMOVED}")
            return queues

        queues = await self._db.transaction(op)
        log_event(_log, "client removed")
        for queue in queues:
            await self._replaced(client_id, queue, ErrorCode.DEVICE_REMOVED)

    async def check_current(self, client_id: str, headers: Mapping[str, str]) -> None:
        """After a long poll: ``device_removed`` or ``device_replaced`` if either happened."""
        presented = presented_token(headers)

        async def op(tx: Tx) -> bool | None:
            row = await tx.fetchone(
                "SELECT device_token_hash FROM clients WHERE client_id = ?", client_id
            )
            if row is None:
                return None
            return token_matches(None if row[0] is None else bytes(row[0]), presented)

        current = await self._db.read(op)
        if current is None:
            raise device_removed()
        if not current:
            raise device_replaced()

    async def check_queue_current(self, queue_id: str) -> None:
        """After a long poll of a queue request: ``device_removed`` if the queue went."""

        async def op(tx: Tx) -> bool:
            return (
                await tx.fetchone("SELECT 1 FROM queues WHERE queue_id = ?", queue_id) is not None
            )

        if not await self._db.read(op):
            raise device_removed()

    @contextlib.contextmanager
    def queue_socket(self, queue_id: str, closer: Closer) -> Iterator[None]:
        """Register an open WebSocket of a queue request while the block runs
        (closed with ``device_removed`` when the queue's device is removed)."""
        self._queue_sockets.setdefault(queue_id, set()).add(closer)
        try:
            yield
        finally:
            closers = self._queue_sockets.get(queue_id)
            if closers is not None:
                closers.discard(closer)
                if not closers:
                    del self._queue_sockets[queue_id]

    @contextlib.contextmanager
    def socket(self, client_id: str, headers: Mapping[str, str], closer: Closer) -> Iterator[None]:
        """Register an open WebSocket of ``client_id`` while the block runs."""
        self._sockets.setdefault(client_id, {})[closer] = presented_token(headers)
        try:
            yield
        finally:
            closers = self._sockets.get(client_id)
            if closers is not None:
                closers.pop(closer, None)
                if not closers:
                    del self._sockets[client_id]

    def on_notification(self, payload: str) -> None:
        """A takeover or removal in any process (see :meth:`take_over`, :meth:`remove`).

        ``*`` (the LISTEN connection was lost and is back): check every open
        socket again, since a takeover or removal may have gone unheard.
        """
        origin, _, rest = payload.partition(" ")
        client_id, _, rest = rest.partition(" ")
        queue_id, _, kind = rest.partition(" ")
        code = ErrorCode.DEVICE_REMOVED if kind == _REMOVED else ErrorCode.DEVICE_REPLACED
        if origin == "*":
            self._spawn(self._recheck_all())
        elif origin != self._hub.origin and client_id:
            self._spawn(self._replaced(client_id, queue_id, code))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _replaced(
        self, client_id: str, queue_id: str, code: ErrorCode = ErrorCode.DEVICE_REPLACED
    ) -> None:
        """Close the client's WebSockets, and those its queue's key opened, and
        wake its long polls (they re-check)."""
        for closer in [*self._sockets.get(client_id, ()), *self._queue_sockets.get(queue_id, ())]:
            with contextlib.suppress(Exception):
                await closer(code)
        self._hub.wake_queue(queue_id)

    async def _recheck_all(self) -> None:
        """Close every open socket whose device token is no longer its client's,
        and every socket of a queue request whose queue is gone."""
        for queue_id, closers in list(self._queue_sockets.items()):
            try:
                await self.check_queue_current(queue_id)
            except StorageError:
                _log.exception("re-checking queues failed")
                return
            except ApiError as exc:
                for closer in list(closers):
                    with contextlib.suppress(Exception):
                        await closer(exc.code)
        for client_id, sockets in list(self._sockets.items()):

            async def stored(tx: Tx, client_id: str = client_id) -> tuple[bool, bytes | None]:
                row = await tx.fetchone(
                    "SELECT device_token_hash FROM clients WHERE client_id = ?", client_id
                )
                if row is None:
                    return False, None
                return True, None if row[0] is None else bytes(row[0])

            try:
                exists, current = await self._db.read(stored)
            except StorageError:
                _log.exception("re-checking device tokens failed")
                return
            for closer, token in list(sockets.items()):
                if not exists:
                    with contextlib.suppress(Exception):
                        await closer(ErrorCode.DEVICE_REMOVED)
                elif not token_matches(current, token):
                    with contextlib.suppress(Exception):
                        await closer(ErrorCode.DEVICE_REPLACED)
