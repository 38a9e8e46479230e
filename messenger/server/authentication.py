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
   purged once their timestamp has left the window.
"""

from __future__ import annotations

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
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_BYTES,
    canonical_request,
)

from .metrics import Metrics
from .storage import Database, Tx

__all__ = ["Principal", "RequestAuthenticator", "verify_ed25519"]

_log = logging.getLogger("messenger.server.auth")

_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated client of a request."""

    account_id: str
    client_id: str
    queue_id: str


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature (RFC 8032)."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class RequestAuthenticator:
    """Checks signed requests against the clients in the database."""

    def __init__(
        self,
        db: Database,
        window_seconds: int,
        clock: Callable[[], float],
        metrics: Metrics,
    ) -> None:
        self._db = db
        self._window_ms = window_seconds * 1000
        self._clock = clock
        self._metrics = metrics
        self._clients: OrderedDict[str, tuple[Ed25519PublicKey, Principal]] = OrderedDict()

    def _fail(self, code: ErrorCode, message: str) -> ApiError:
        self._metrics.auth_failures.labels(code=str(code)).inc()
        return ApiError(code, message)

    async def authenticate(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> Principal:
        """The principal of a signed request; :class:`ApiError` (401) otherwise."""
        client_id = headers.get(HEADER_CLIENT)
        raw_ts = headers.get(HEADER_TIMESTAMP)
        nonce = headers.get(HEADER_NONCE)
        raw_sig = headers.get(HEADER_SIGNATURE)
        if client_id is None or raw_ts is None or nonce is None or raw_sig is None:
            raise self._fail(ErrorCode.AUTH_MISSING, "the request is not signed")
        try:
            Ident("client").parse(client_id, "client")
            if not raw_ts.isascii() or not raw_ts.isdigit() or len(raw_ts) > 16:
                raise ValueError("timestamp")
            timestamp = int(raw_ts)
            if len(b64decode(nonce)) != NONCE_BYTES:
                raise ValueError("nonce")
            signature = b64decode(raw_sig)
        except (ApiError, ValueError):
            raise self._fail(ErrorCode.AUTH_INVALID, "malformed authentication headers") from None
        now_ms = int(self._clock() * 1000)
        if abs(now_ms - timestamp) > self._window_ms:
            raise self._fail(
                ErrorCode.AUTH_EXPIRED, "the request timestamp is outside the allowed window"
            )
        entry = await self._client(client_id)
        message = canonical_request(method, target, client_id, timestamp, nonce, body)
        if entry is None:
            raise self._fail(ErrorCode.AUTH_INVALID, "bad signature")
        key, principal = entry
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise self._fail(ErrorCode.AUTH_INVALID, "bad signature") from None
        expires_at = timestamp + self._window_ms

        async def remember(tx: Tx) -> bool:
            if tx.dialect == "postgresql":
                # Safe: any later durable commit flushes this one too (one WAL).
                await tx.execute("SET LOCAL synchronous_commit TO OFF")
            inserted = await tx.execute(
                "INSERT INTO request_nonces (client_id, nonce, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                client_id,
                nonce,
                expires_at,
            )
            return inserted == 1

        if not await self._db.transaction(remember):
            raise self._fail(ErrorCode.AUTH_REPLAYED, "this request was already received")
        return principal

    async def _client(self, client_id: str) -> tuple[Ed25519PublicKey, Principal] | None:
        cached = self._clients.get(client_id)
        if cached is not None:
            self._clients.move_to_end(client_id)
            return cached

        async def load(tx: Tx) -> tuple[bytes, str, str] | None:
            row = await tx.fetchone(
                "SELECT signature_key, account_id, queue_id FROM clients WHERE client_id = ?",
                client_id,
            )
            return None if row is None else (bytes(row[0]), str(row[1]), str(row[2]))

        found = await self._db.read(load)
        if found is None:
            return None
        key_bytes, account_id, queue_id = found
        entry = (
            Ed25519PublicKey.from_public_bytes(key_bytes),
            Principal(account_id, client_id, queue_id),
        )
        self._clients[client_id] = entry
        if len(self._clients) > _CACHE_SIZE:
            self._clients.popitem(last=False)
        return entry
