"""Optional handles, stored only as keyed hashes (RFC 9750 §8: learn little).

A handle lets others find an account by a name the user chose. The server
stores ``HMAC-SHA256(pepper, "handle-v1" || handle)`` and never the handle
itself, so the database alone does not reveal handles, and a lookup works
only for the exact handle. The pepper is derived from the server's master
secret, which is kept outside the database (:mod:`.server_keys`).
"""

from __future__ import annotations

import hashlib
import hmac

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import HandleLookupResponse

from .authentication import Principal
from .storage import Database, Tx, UniqueViolation

__all__ = ["Handles", "handle_hash"]


def handle_hash(pepper: bytes, handle: str) -> bytes:
    """The stored form of ``handle``."""
    return hmac.new(pepper, b"handle-v1\n" + handle.encode("utf-8"), hashlib.sha256).digest()


class Handles:
    """Set, remove and look up handles."""

    def __init__(self, db: Database, pepper: bytes) -> None:
        self._db = db
        self._pepper = pepper

    def hash(self, handle: str) -> bytes:
        return handle_hash(self._pepper, handle)

    async def set(self, principal: Principal, handle: str) -> None:
        """Give the account ``handle`` (replacing its old one)."""
        digest = self.hash(handle)

        async def op(tx: Tx) -> None:
            row = await tx.fetchone("SELECT account_id FROM accounts WHERE handle_hash = ?", digest)
            if row is not None and row[0] != principal.account_id:
                raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken")
            try:
                await tx.execute(
                    "UPDATE accounts SET handle_hash = ? WHERE account_id = ?",
                    digest,
                    principal.account_id,
                )
            except UniqueViolation:
                raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken") from None

        await self._db.transaction(op)

    async def remove(self, principal: Principal) -> None:
        """Remove the account's handle."""

        async def op(tx: Tx) -> None:
            await tx.execute(
                "UPDATE accounts SET handle_hash = NULL WHERE account_id = ?",
                principal.account_id,
            )

        await self._db.transaction(op)

    async def lookup(self, handle: str) -> HandleLookupResponse:
        """The account that holds exactly ``handle``."""
        digest = self.hash(handle)

        async def op(tx: Tx) -> str | None:
            row = await tx.fetchone("SELECT account_id FROM accounts WHERE handle_hash = ?", digest)
            return None if row is None else str(row[0])

        account_id = await self._db.read(op)
        if account_id is None:
            raise ApiError(ErrorCode.UNKNOWN_ACCOUNT, "no account has this handle")
        return HandleLookupResponse(account_id)
