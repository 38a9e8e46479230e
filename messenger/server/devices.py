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
from messenger.api.fields import b64decode
from messenger.api.signing import DEVICE_TOKEN_BYTES, HEADER_DEVICE_TOKEN

from .logs import log_event
from .push import Hub
from .storage import Database, StorageError, Tx

if TYPE_CHECKING:
    from .authentication import Principal

__all__ = [
    "DEVICE_CHANNEL",
    "Devices",
    "check_device",
    "device_replaced",
    "device_token_hash",
    "presented_token",
    "token_matches",
]

_log = logging.getLogger("messenger.server.devices")

#: The PostgreSQL notification channel of takeovers.
DEVICE_CHANNEL: Final = "messenger_devices"

_HASH_PREFIX: Final = b"messenger-device-token-v1\n"

#: Closes one open WebSocket of a client that was taken over.
Closer = Callable[[], Awaitable[None]]


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


async def check_device(tx: Tx, client_id: str, presented: bytes | None) -> None:
    """``device_replaced`` unless ``presented`` is the client's current device token."""
    row = await tx.fetchone("SELECT device_token_hash FROM clients WHERE client_id = ?", client_id)
    stored = None if row is None or row[0] is None else bytes(row[0])
    if not token_matches(stored, presented):
        raise device_replaced()


class Devices:
    """Takeovers, and the open WebSockets to close when one happens."""

    def __init__(self, db: Database, hub: Hub) -> None:
        self._db = db
        self._hub = hub
        #: Open WebSockets: client ID -> {closer: the device token it presented}.
        self._sockets: dict[str, dict[Closer, bytes | None]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def take_over(self, principal: Principal, token: bytes) -> None:
        """Make ``token`` the client's device token; close its other connections."""
        digest = device_token_hash(token)
        payload = f"{self._hub.origin} {principal.client_id} {principal.queue_id}"

        async def op(tx: Tx) -> None:
            await tx.execute(
                "UPDATE clients SET device_token_hash = ? WHERE client_id = ?",
                digest,
                principal.client_id,
            )
            await tx.notify(DEVICE_CHANNEL, payload)

        await self._db.transaction(op)
        log_event(_log, "client taken over")
        await self._replaced(principal.client_id, principal.queue_id)

    async def is_current(self, client_id: str, headers: Mapping[str, str]) -> bool:
        """Whether a request with ``headers`` still speaks for the client (a read)."""
        presented = presented_token(headers)

        async def op(tx: Tx) -> bool:
            try:
                await check_device(tx, client_id, presented)
            except ApiError:
                return False
            return True

        return await self._db.read(op)

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
        """A takeover in any process (see :meth:`take_over`): act on it here too.

        ``*`` (the LISTEN connection was lost and is back): check every open
        socket again, since a takeover may have gone unheard.
        """
        origin, _, rest = payload.partition(" ")
        client_id, _, queue_id = rest.partition(" ")
        if origin == "*":
            self._spawn(self._recheck_all())
        elif origin != self._hub.origin and client_id:
            self._spawn(self._replaced(client_id, queue_id))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _replaced(self, client_id: str, queue_id: str) -> None:
        """Close the client's WebSockets and wake its long polls (they re-check)."""
        for closer in list(self._sockets.get(client_id, ())):
            with contextlib.suppress(Exception):
                await closer()
        self._hub.wake_queue(queue_id)

    async def _recheck_all(self) -> None:
        """Close every open socket whose device token is no longer its client's."""
        for client_id, sockets in list(self._sockets.items()):

            async def stored(tx: Tx, client_id: str = client_id) -> bytes | None:
                row = await tx.fetchone(
                    "SELECT device_token_hash FROM clients WHERE client_id = ?", client_id
                )
                return None if row is None or row[0] is None else bytes(row[0])

            try:
                current = await self._db.read(stored)
            except StorageError:
                _log.exception("re-checking device tokens failed")
                return
            for closer, token in list(sockets.items()):
                if not token_matches(current, token):
                    with contextlib.suppress(Exception):
                        await closer()
