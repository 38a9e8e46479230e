"""Optional handles, stored only as keyed hashes (RFC 9750 §8: learn little).

A handle lets others find an account by a name the user chose. The server
stores ``HMAC-SHA256(pepper, "handle-v1" || handle)`` and never the handle
itself, so the database alone does not reveal handles, and a lookup works
only for the exact handle. The pepper is derived from the server's master
secret, which is kept outside the database (:mod:`.server_keys`).

Because anyone who knows a handle can find its account, lookups are limited
to what a person needs: ``lookups_per_account_per_minute`` (30) per account
and ``lookups_per_ip_per_minute`` (60) per address, with ``429
rate_limited`` and ``Retry-After`` beyond (:meth:`Handles.limit`). Setting a
handle answers "is it taken?", so it draws on the same limits; so does
nothing else. The account's bucket is checked first, so an account over its
limit does not use up the share of others behind the same address.

**Contact box** (server migration 24, docs/metadata.md §1): setting a handle
may carry the account's contact token sealed under a key from the handle
(:mod:`messenger.api.contact_token`), which the server keeps in
``accounts.handle_contact_box`` and hands to whoever looks the handle up, so
that they can claim the account's KeyPackages. A copy of the database
does not open it (it holds no handle); the live server sees the handle
while it is set or looked up. A handle set without one (an app from
before, or an account without an account key) has none: a new handle never
keeps the box of the old one, and removing the handle removes its box.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import HandleLookupResponse

from .authentication import Principal
from .ratelimit import RateLimiter
from .storage import Database, Tx, UniqueViolation

__all__ = ["Handles", "handle_hash"]


def handle_hash(pepper: bytes, handle: str) -> bytes:
    """The stored form of ``handle``."""
    return hmac.new(pepper, b"handle-v1\n" + handle.encode("utf-8"), hashlib.sha256).digest()


class Handles:
    """Set, remove and look up handles."""

    def __init__(
        self,
        db: Database,
        pepper: bytes,
        *,
        lookups_per_account_per_minute: int = 30,
        lookups_per_ip_per_minute: int = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._pepper = pepper
        self._per_account = RateLimiter.per_minute(
            "handle lookups per account", lookups_per_account_per_minute, clock
        )
        self._per_address = RateLimiter.per_minute(
            "handle lookups per address", lookups_per_ip_per_minute, clock
        )

    def hash(self, handle: str) -> bytes:
        return handle_hash(self._pepper, handle)

    def limit(self, account_id: str, address: str) -> None:
        """Take a lookup token of the account and of the address; 429 when out.

        Called before every lookup and every attempt to set a handle.
        """
        self._per_account.hit(account_id)
        self._per_address.hit(address)

    async def set(
        self, principal: Principal, handle: str, contact_box: bytes | None = None
    ) -> None:
        """Give the account ``handle`` (replacing its old one) and its ``contact_box``
        (None: none, whatever the old handle had)."""
        digest = self.hash(handle)

        async def op(tx: Tx) -> None:
            row = await tx.fetchone("SELECT account_id FROM accounts WHERE handle_hash = ?", digest)
            if row is not None and row[0] != principal.account_id:
                raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken")
            try:
                await tx.execute(
                    "UPDATE accounts SET handle_hash = ?, handle_contact_box = ? "
                    "WHERE account_id = ?",
                    digest,
                    contact_box,
                    principal.account_id,
                )
            except UniqueViolation:
                raise ApiError(ErrorCode.HANDLE_TAKEN, "this handle is taken") from None

        await self._db.transaction(op)

    async def remove(self, principal: Principal) -> None:
        """Remove the account's handle and its contact box."""

        async def op(tx: Tx) -> None:
            await tx.execute(
                "UPDATE accounts SET handle_hash = NULL, handle_contact_box = NULL "
                "WHERE account_id = ?",
                principal.account_id,
            )

        await self._db.transaction(op)

    async def lookup(self, handle: str) -> HandleLookupResponse:
        """The account that holds exactly ``handle``, and its contact box if it has one."""
        digest = self.hash(handle)

        async def op(tx: Tx) -> HandleLookupResponse | None:
            row = await tx.fetchone(
                "SELECT account_id, handle_contact_box FROM accounts WHERE handle_hash = ?", digest
            )
            if row is None:
                return None
            return HandleLookupResponse(str(row[0]), None if row[1] is None else bytes(row[1]))

        found = await self._db.read(op)
        if found is None:
            raise ApiError(ErrorCode.UNKNOWN_ACCOUNT, "no account has this handle")
        return found
