"""Request authentication: Ed25519 signatures, a timestamp window, nonces.

Every signed route (``Route.signed``) is checked here before anything else
happens, in this order, each failure a 401 that changes nothing:

1. the four headers of :mod:`messenger.api.signing` are present and well
   formed (``auth_missing`` / ``auth_invalid``);
2. the timestamp is within ``timestamp_window_seconds`` of the server's
   clock (``auth_expired``);
3. the client exists and the signature over
   :func:`~messenger.api.signing.canonical_request` verifies with its key
   (``auth_invalid``);
4. the nonce has not been used by this client within the window
   (``auth_replayed``). Nonces are stored in the database, so replay
   protection holds across restarts and across server processes; they are
   purged once their timestamp has left the window;
5. a client that one of its account's devices removed (``DELETE
   /v1/clients/{client_id}``) is gone: a request signed as it gets
   ``device_removed`` (its tombstone, :mod:`.devices`) instead of
   ``auth_invalid``;
6. if a restored copy took the client over, the request carries that
   copy's device token (``device_replaced``, :mod:`.devices`), read from
   the database together with the storing of the nonce, so that it is
   current on every server process. A refused request keeps no nonce.

**Queue requests** (:meth:`RequestAuthenticator.authenticate_queue`,
docs/metadata.md §1) name no client: a queue with a key of its own is read,
acknowledged and pushed with requests signed by that key alone, over
:func:`~messenger.api.signing.queue_request`. They go through the same
steps with the queue in place of the client: the headers, the window, the
queue's key and signature, then the nonce (:func:`queue_nonce_digest`,
stored only while the queue has its key); a removed queue answers
``device_removed`` from its tombstone. There is no device token: a queue
with a key is never taken over (:meth:`~.devices.Devices.take_over`).

The client's row is read again with the nonce: if it is gone, the request
gets the answer of an unknown client (``auth_invalid``), even from a
process that still has the client's key in its cache.

On PostgreSQL, steps 4 and 5 are one statement in autocommit
(:meth:`~.storage.Database.statement`, :data:`_PG_REMEMBER`): it stores
the nonce if the client exists and returns the stored device token hash,
one round trip instead of five (``BEGIN``, the device check, ``SET
LOCAL``, the insert, ``COMMIT``). The hashes are compared afterwards in
Python, in constant time (:func:`~.devices.token_matches`), never in SQL.
On SQLite, whose single writer makes a transaction cheap, one transaction
reads the hash, compares it the same way and stores the nonce only if it
matches.

What is stored of a request (docs/threat-model.md): only
:func:`nonce_digest`, an HMAC of (client ID, nonce) under a key derived from
the server secret (which is not in the database), and an expiry rounded up
to a bucket of the timestamp window. No client ID and no request time is
written, so the table cannot be joined with the time of a stored message to
find its sender; the nonce is random and not kept, so even the key does not
turn a digest back into a client. The expiry comes from the server's clock,
not from the client's timestamp, so it says nothing about a client's clock.
On SQLite the table has no rowid (``WITHOUT ROWID``): rows lie in digest
order, not in request order. On PostgreSQL the heap keeps rows roughly in
arrival order, which could be matched with the order of stored messages,
but a row so matched still holds only a keyed digest, not a client.

Upgrading from the schema that stored client IDs drops the old nonces; to
keep a request captured just before the upgrade from being replayed after
it, requests signed before the upgrade are refused as expired
(:meth:`RequestAuthenticator._not_before`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import Ident, b64decode
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_QUEUE,
    HEADER_QUEUE_SIGNATURE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_BYTES,
    canonical_request,
    queue_proof_message,
    queue_request,
)

from .devices import (
    device_removed,
    device_replaced,
    presented_token,
    removed_client_hash,
    removed_queue_hash,
    token_matches,
)
from .metrics import Metrics
from .queue_links import QueueLinks
from .storage import Database, StorageError, Tx

__all__ = [
    "HASHED_NONCES_VERSION",
    "Principal",
    "QueueCaller",
    "RequestAuthenticator",
    "nonce_digest",
    "nonce_expiry",
    "queue_nonce_digest",
    "verify_ed25519",
]

_log = logging.getLogger("messenger.server.auth")

_CACHE_SIZE = 100_000

_NONCE_LABEL = b"messenger-request-nonce-v1\n"
_QUEUE_NONCE_LABEL = b"messenger-queue-request-nonce-v1\n"

#: The schema version that replaced (client ID, nonce) with :func:`nonce_digest`.
HASHED_NONCES_VERSION = 4


def nonce_digest(key: bytes, client_id: str, nonce: bytes) -> bytes:
    """The stored form of a request nonce: HMAC-SHA256 of (client ID, nonce)."""
    message = _NONCE_LABEL + client_id.encode("ascii") + b"\n" + nonce
    return hmac.new(key, message, hashlib.sha256).digest()


def queue_nonce_digest(key: bytes, queue_id: str, nonce: bytes) -> bytes:
    """The stored form of a queue request's nonce: HMAC-SHA256 of (queue ID, nonce),
    under a label of its own, so it never equals a client request's digest."""
    message = _QUEUE_NONCE_LABEL + queue_id.encode("ascii") + b"\n" + nonce
    return hmac.new(key, message, hashlib.sha256).digest()


def nonce_expiry(now_ms: int, window_ms: int) -> int:
    """When a nonce received at ``now_ms`` may be forgotten: a multiple of the window.

    An accepted timestamp is at most ``now + window``, and its request can be
    replayed until ``timestamp + window``; so ``now + 2 * window``, rounded up
    to the next multiple of the window, outlives it. Every request of one
    window-long bucket gets the same expiry, so rows do not order requests
    within it.
    """
    return -(-(now_ms + 2 * window_ms) // window_ms) * window_ms


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client of a request, and its queue if the request shows it.

    A client whose queue has a key of its own (docs/metadata.md §1) is not
    joined to its queue by any row: the queue is known for a request only if
    the request proves it (:data:`~messenger.api.signing.HEADER_QUEUE`).
    """

    account_id: str
    client_id: str
    proven_queue: str | None

    @property
    def queue_id(self) -> str:
        """The client's queue; ``auth_missing`` (401) if this request does not show it."""
        if self.proven_queue is None:
            raise ApiError(
                ErrorCode.AUTH_MISSING,
                "this request must prove the client's queue (X-Messenger-Queue)",
            )
        return self.proven_queue

    def without_queue(self) -> Principal:
        """This principal as a route that needs no queue sees it (``Route.proves_queue``)."""
        return Principal(self.account_id, self.client_id, None)


@dataclass(frozen=True, slots=True)
class QueueCaller:
    """The queue of a **queue request**: signed by the queue's own key, naming no
    client (docs/metadata.md §1). Only reading and acknowledging the queue, and
    asking for a delivery address of it, take one (``Route.queue_request``)."""

    queue_id: str


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature (RFC 8032)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


#: Steps 4 and 5 on PostgreSQL, in one statement run in autocommit: store
#: the nonce digest (parameters: client ID, digest, expiry) if the client's
#: row exists, and return whether it does, its device token hash and
#: whether the nonce was new. The token is checked by the caller, in
#: Python. ``set_config(…, true)`` is ``SET LOCAL`` for this statement's
#: own transaction: its commit does not wait for the WAL flush (nonces were
#: always committed so), and the pooled connection keeps the default. That
#: is safe: a request that changes anything commits durably afterwards,
#: which flushes the WAL up to and including this commit; a read-only
#: request whose nonce a crash loses could be replayed only as a read.
_PG_REMEMBER = """
WITH client AS (SELECT device_token_hash FROM clients WHERE client_id = ?),
nonce AS (
    INSERT INTO request_nonces (nonce_hash, expires_at)
    SELECT ?, ? WHERE EXISTS (SELECT 1 FROM client)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM client), (SELECT device_token_hash FROM client),
    (SELECT count(*) FROM nonce), set_config('synchronous_commit', 'off', true)
"""

#: A queue request's nonce on PostgreSQL, as :data:`_PG_REMEMBER` for a
#: client: stored if the queue still has its key (parameters: queue ID,
#: digest, expiry); returns whether it has, and whether the nonce was new.
_PG_REMEMBER_QUEUE = """
WITH queue AS (SELECT 1 FROM queues WHERE queue_id = ? AND auth_key IS NOT NULL),
nonce AS (
    INSERT INTO request_nonces (nonce_hash, expires_at)
    SELECT ?, ? WHERE EXISTS (SELECT 1 FROM queue)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM queue), (SELECT count(*) FROM nonce),
    set_config('synchronous_commit', 'off', true)
"""
_SELECT_KEYED_QUEUE = "SELECT 1 FROM queues WHERE queue_id = ? AND auth_key IS NOT NULL"

_SELECT_DEVICE = "SELECT device_token_hash FROM clients WHERE client_id = ?"
_INSERT_NONCE = (
    "INSERT INTO request_nonces (nonce_hash, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
)
_DELETE_NONCE = "DELETE FROM request_nonces WHERE nonce_hash = ?"


@dataclass(frozen=True, slots=True)
class _Remembered:
    """What the database said about a request's client and nonce."""

    #: Whether the client's row exists.
    known: bool
    #: Whether the request may act for the client: its device token matches
    #: the stored hash, if it must (:func:`~.devices.token_matches`).
    accepted: bool
    #: Whether the nonce was stored now (not seen before).
    fresh: bool


class RequestAuthenticator:
    """Checks signed requests against the clients in the database."""

    def __init__(
        self,
        db: Database,
        window_seconds: int,
        clock: Callable[[], float],
        metrics: Metrics,
        *,
        nonce_key: bytes,
        queue_links: QueueLinks,
        removed_key: bytes | None = None,
    ) -> None:
        self._db = db
        self._queue_links = queue_links
        self._removed_key = removed_key
        self._window_ms = window_seconds * 1000
        self._clock = clock
        self._metrics = metrics
        self._nonce_key = nonce_key
        #: Per client: its key, its account and, until its queue has a key of
        #: its own, its queue (from the sealed link, :mod:`.queue_links`).
        self._clients: OrderedDict[str, tuple[Ed25519PublicKey, str, str | None]] = OrderedDict()
        #: Each queue's own key (:meth:`_queue_key`); a queue's key never changes.
        self._queue_keys: OrderedDict[str, Ed25519PublicKey] = OrderedDict()
        self._not_before_ms: int | None = None

    def _fail(self, code: ErrorCode, message: str) -> ApiError:
        self._metrics.auth_failures.labels(code=str(code)).inc()
        return ApiError(code, message)

    async def authenticate(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        check_device_token: bool = True,
    ) -> Principal:
        """The principal of a signed request; :class:`ApiError` (401) otherwise.

        ``check_device_token=False`` only for the takeover route, which sets it.
        """
        client_id, timestamp, nonce, nonce_bytes, signature, now_ms = await self._headers(
            headers, "client", HEADER_CLIENT, HEADER_SIGNATURE
        )
        entry = await self._client(client_id)
        message = canonical_request(method, target, client_id, timestamp, nonce, body)
        if entry is None:
            raise await self._unknown(client_id)
        key, account_id, linked_queue = entry
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise self._fail(ErrorCode.AUTH_INVALID, "bad signature") from None
        # Before the nonce is stored: a refused proof leaves nothing behind.
        queue_id = linked_queue
        if queue_id is None:
            queue_id = await self._proven_queue(headers, message)
        principal = Principal(account_id, client_id, queue_id)
        digest = nonce_digest(self._nonce_key, client_id, nonce_bytes)
        expires_at = nonce_expiry(now_ms, self._window_ms)
        device_token = presented_token(headers)

        def accepts(stored: bytes | None) -> bool:
            return not check_device_token or token_matches(stored, device_token)

        async def remember_in_one_statement(tx: Tx) -> _Remembered:
            row = await tx.fetchone(_PG_REMEMBER, client_id, digest, expires_at)
            if row is None or not row[0]:
                return _Remembered(known=False, accepted=False, fresh=False)
            # The statement has run: the comparison is in Python, not in SQL.
            stored = None if row[1] is None else bytes(row[1])
            return _Remembered(known=True, accepted=accepts(stored), fresh=int(row[2]) == 1)

        async def remember_in_a_transaction(tx: Tx) -> _Remembered:
            row = await tx.fetchone(_SELECT_DEVICE, client_id)
            if row is None:
                return _Remembered(known=False, accepted=False, fresh=False)
            if not accepts(None if row[0] is None else bytes(row[0])):
                return _Remembered(known=True, accepted=False, fresh=False)
            inserted = await tx.execute(_INSERT_NONCE, digest, expires_at)
            return _Remembered(known=True, accepted=True, fresh=inserted == 1)

        if self._db.dialect == "postgresql":
            remembered = await self._db.statement(remember_in_one_statement)
        else:
            remembered = await self._db.transaction(remember_in_a_transaction)
        if not remembered.known:
            # Gone since it was cached: the answer to an unknown client.
            self._clients.pop(client_id, None)
            raise await self._unknown(client_id)
        if not remembered.accepted:
            if remembered.fresh:
                await self._forget(digest)
            self._metrics.auth_failures.labels(code=str(ErrorCode.DEVICE_REPLACED)).inc()
            raise device_replaced()
        if not remembered.fresh:
            raise self._fail(ErrorCode.AUTH_REPLAYED, "this request was already received")
        return principal

    async def authenticate_queue(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> QueueCaller:
        """The queue of a queue request (no client headers); :class:`ApiError` (401).

        The same steps as :meth:`authenticate`, with the queue in place of the
        client: the headers, the timestamp window, the queue's own key and the
        signature over :func:`~messenger.api.signing.queue_request`, then the
        nonce, stored only while the queue still has its key. A queue that one
        of its account's devices removed answers ``device_removed`` (its
        tombstone); a queue with no key of its own (still joined to its client)
        or an unknown one, ``auth_invalid``. Nothing of the request that names
        a client is stored: the nonce's digest is keyed by the queue.
        """
        queue_id, timestamp, nonce, nonce_bytes, signature, now_ms = await self._headers(
            headers, "queue", HEADER_QUEUE, HEADER_QUEUE_SIGNATURE
        )
        key = await self._queue_key(queue_id)
        if key is None:
            raise await self._unknown_queue(queue_id)
        message = queue_request(method, target, queue_id, timestamp, nonce, body)
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise self._fail(ErrorCode.AUTH_INVALID, "bad signature") from None
        digest = queue_nonce_digest(self._nonce_key, queue_id, nonce_bytes)
        expires_at = nonce_expiry(now_ms, self._window_ms)

        async def remember_in_one_statement(tx: Tx) -> tuple[bool, bool]:
            row = await tx.fetchone(_PG_REMEMBER_QUEUE, queue_id, digest, expires_at)
            if row is None or not row[0]:
                return False, False
            return True, int(row[1]) == 1

        async def remember_in_a_transaction(tx: Tx) -> tuple[bool, bool]:
            if await tx.fetchone(_SELECT_KEYED_QUEUE, queue_id) is None:
                return False, False
            return True, await tx.execute(_INSERT_NONCE, digest, expires_at) == 1

        if self._db.dialect == "postgresql":
            known, fresh = await self._db.statement(remember_in_one_statement)
        else:
            known, fresh = await self._db.transaction(remember_in_a_transaction)
        if not known:
            # Removed since its key was cached.
            self._queue_keys.pop(queue_id, None)
            raise await self._unknown_queue(queue_id)
        if not fresh:
            raise self._fail(ErrorCode.AUTH_REPLAYED, "this request was already received")
        return QueueCaller(queue_id)

    async def _headers(
        self, headers: Mapping[str, str], kind: str, id_header: str, signature_header: str
    ) -> tuple[str, int, str, bytes, bytes, int]:
        """Steps 1 and 2 for a signer named by ``id_header`` (a client or a queue,
        ``kind``): ``(ID, timestamp, nonce as sent, nonce bytes, signature, now)``.

        ``auth_missing`` without the four headers, ``auth_invalid`` if one is
        malformed, ``auth_expired`` outside the window.
        """
        raw_id = headers.get(id_header)
        raw_ts = headers.get(HEADER_TIMESTAMP)
        nonce = headers.get(HEADER_NONCE)
        raw_sig = headers.get(signature_header)
        if raw_id is None or raw_ts is None or nonce is None or raw_sig is None:
            raise self._fail(ErrorCode.AUTH_MISSING, "the request is not signed")
        try:
            signer = Ident(kind).parse(raw_id, kind)
            if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 16:
                raise ValueError("timestamp")
            timestamp = int(raw_ts)
            nonce_bytes = b64decode(nonce)
            if len(nonce_bytes) != NONCE_BYTES:
                raise ValueError("nonce")
            signature = b64decode(raw_sig)
        except (ApiError, ValueError):
            raise self._fail(ErrorCode.AUTH_INVALID, "malformed authentication headers") from None
        now_ms = int(self._clock() * 1000)
        if abs(now_ms - timestamp) > self._window_ms or timestamp < await self._not_before():
            raise self._fail(
                ErrorCode.AUTH_EXPIRED, "the request timestamp is outside the allowed window"
            )
        return signer, timestamp, nonce, nonce_bytes, signature, now_ms

    async def _unknown_queue(self, queue_id: str, message: str = "bad signature") -> ApiError:
        """The answer to a request that shows a queue with no key of its own (a
        queue request, or a signed request's queue proof): ``device_removed`` if
        a device of its account removed it (its tombstone,
        :func:`~.devices.removed_queue_hash`), else ``auth_invalid``."""
        if self._removed_key is None:
            return self._fail(ErrorCode.AUTH_INVALID, message)
        return await self._removed_or_invalid(
            removed_queue_hash(self._removed_key, queue_id), message
        )

    def forget(self, client_id: str) -> None:
        """Drop ``client_id`` from this process's cache (its queue got a key of its own)."""
        self._clients.pop(client_id, None)

    async def _proven_queue(self, headers: Mapping[str, str], message: bytes) -> str | None:
        """The queue a request proves with its queue key (None if it shows none).

        ``auth_invalid`` if the headers are malformed, the queue has no key of
        its own, or the signature over :func:`queue_proof_message` does not
        verify with it: a client can show only a queue whose key it holds.
        """
        raw_queue = headers.get(HEADER_QUEUE)
        raw_signature = headers.get(HEADER_QUEUE_SIGNATURE)
        if raw_queue is None and raw_signature is None:
            return None
        try:
            if raw_queue is None or raw_signature is None:
                raise ValueError("half a proof")
            queue_id = Ident("queue").parse(raw_queue, "queue")
            signature = b64decode(raw_signature)
        except (ApiError, ValueError):
            raise self._fail(ErrorCode.AUTH_INVALID, "malformed queue proof") from None
        key = await self._queue_key(queue_id)
        if key is None:
            # A removed device's queue (its tombstone): ``device_removed``, as
            # the request's client is gone with it.
            raise await self._unknown_queue(queue_id, "bad queue proof")
        try:
            key.verify(signature, queue_proof_message(queue_id, message))
        except InvalidSignature:
            raise self._fail(ErrorCode.AUTH_INVALID, "bad queue proof") from None
        return queue_id

    async def _queue_key(self, queue_id: str) -> Ed25519PublicKey | None:
        cached = self._queue_keys.get(queue_id)
        if cached is not None:
            self._queue_keys.move_to_end(queue_id)
            return cached

        async def load(tx: Tx) -> bytes | None:
            row = await tx.fetchone("SELECT auth_key FROM queues WHERE queue_id = ?", queue_id)
            return None if row is None or row[0] is None else bytes(row[0])

        raw = await self._db.read(load)
        if raw is None:
            return None
        key = Ed25519PublicKey.from_public_bytes(raw)
        self._queue_keys[queue_id] = key
        if len(self._queue_keys) > _CACHE_SIZE:
            self._queue_keys.popitem(last=False)
        return key

    async def _unknown(self, client_id: str) -> ApiError:
        """The answer to a request signed as a client that does not exist.

        ``device_removed`` if one of its account's devices removed it (its
        tombstone, :func:`~.devices.removed_client_hash`, is stored), else
        ``auth_invalid``. The removed client's key is gone with its row, so
        the signature cannot be checked: the answer tells only that the ID
        was removed, which the removing commit showed every group member of
        the account anyway, and such a request never changes anything.
        """
        if self._removed_key is None:
            return self._fail(ErrorCode.AUTH_INVALID, "bad signature")
        return await self._removed_or_invalid(
            removed_client_hash(self._removed_key, client_id), "bad signature"
        )

    async def _removed_or_invalid(self, tombstone: bytes, message: str) -> ApiError:
        """``device_removed`` if ``tombstone`` (of a client or of its queue,
        :mod:`.devices`) is stored, else ``auth_invalid`` with ``message``."""

        async def load(tx: Tx) -> bool:
            row = await tx.fetchone("SELECT 1 FROM removed_clients WHERE tombstone = ?", tombstone)
            return row is not None

        if await self._db.read(load):
            self._metrics.auth_failures.labels(code=str(ErrorCode.DEVICE_REMOVED)).inc()
            return device_removed()
        return self._fail(ErrorCode.AUTH_INVALID, message)

    async def _forget(self, digest: bytes) -> None:
        """Remove the nonce of a request refused for its device token (PostgreSQL).

        The one statement stored it before the token could be compared; a
        refused request should leave nothing behind, so it goes again. If
        that fails, the nonce stays until it expires, which is harmless:
        a nonce is single-use anyway, and this one belongs to a request
        that was refused. Likewise, a copy of this very request that carries
        the right token and arrives in between is refused as a replay: it
        reuses a signed nonce, which a client never does.
        """

        async def delete(tx: Tx) -> None:
            await tx.execute(_DELETE_NONCE, digest)

        try:
            await self._db.statement(delete)
        except StorageError:
            _log.warning("could not remove the nonce of a refused request")

    async def _not_before(self) -> int:
        """Timestamps before this are refused (0: no such bound).

        The migration to :data:`HASHED_NONCES_VERSION` dropped the nonces
        stored until then, so a request signed before it could otherwise be
        replayed once for the rest of its window. When that migration ran on
        an existing database (later than the first one), requests signed
        before it are refused as expired; a fresh database has no bound.
        Read once per process.
        """
        if self._not_before_ms is None:

            async def load(tx: Tx) -> int:
                row = await tx.fetchone(
                    "SELECT MIN(applied_at), MAX(CASE WHEN version = ? THEN applied_at END) "
                    "FROM schema_migrations",
                    HASHED_NONCES_VERSION,
                )
                if row is None or row[0] is None or row[1] is None:
                    return 0
                first, upgraded = int(row[0]), int(row[1])
                return upgraded if upgraded > first else 0

            self._not_before_ms = await self._db.read(load)
        return self._not_before_ms

    async def _client(self, client_id: str) -> tuple[Ed25519PublicKey, str, str | None] | None:
        cached = self._clients.get(client_id)
        if cached is not None:
            self._clients.move_to_end(client_id)
            return cached

        async def load(tx: Tx) -> tuple[bytes, str, str | None] | None:
            row = await tx.fetchone(
                "SELECT signature_key, account_id, queue_box, legacy_queue_id FROM clients "
                "WHERE client_id = ?",
                client_id,
            )
            if row is None:
                return None
            queue_id = self._queue_links.queue(client_id, row[2], row[3])
            return bytes(row[0]), str(row[1]), queue_id

        found = await self._db.read(load)
        if found is None:
            return None
        key_bytes, account_id, queue_id = found
        entry = (Ed25519PublicKey.from_public_bytes(key_bytes), account_id, queue_id)
        self._clients[client_id] = entry
        if len(self._clients) > _CACHE_SIZE:
            self._clients.popitem(last=False)
        return entry
