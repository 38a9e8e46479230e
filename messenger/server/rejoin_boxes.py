"""Rejoin boxes: each account's keys to its groups' sealed state (docs/metadata.md §2).

A device restoring a backup must rejoin its groups by external commit
(docs/devices.md §5), which needs the group's stored GroupInfo, sealed
under keys only its members' send tokens open (:mod:`.state_keys`). Its
backup holds the token of the epoch it was made at, which stops opening
the state once a member is removed. So the account's devices keep, for
each group, a **rejoin box** here: the token of a recent epoch, sealed by
the client under a secret derived from the account key, which the server
never sees (``messenger/client/rejoin_boxes.py``), and stored under a
**handle** only the account's devices can derive (an HMAC of the group ID
under that secret).

The server stores the handle and the box, nothing else: no account, no
client, no group, no time (``rejoin_boxes``, no rowid on SQLite, so rows
lie in handle order). Requests are signed, so only registered clients can
store boxes, within their request budget; the live server sees which
client reads or writes which handle, not which group it is for. Anyone who
knows a handle could replace its box, but handles are 32 bytes that only
the account's devices can compute; a box that does not open is ignored by
its reader, which then tries its backup's token.

**What one account can store** (docs/threat-model.md, attack row 28). Any
registered client can write any handle, so without limits one account could
fill the server's disk with boxes. Three bounds keep that in check without
storing which account wrote which box:

* a box is **new** if its handle is not stored yet; each account may store
  :attr:`RejoinBoxLimits.new_per_hour` new boxes an hour, with a burst of
  :attr:`RejoinBoxLimits.burst` (an account's first upload, one box per
  group), from a token bucket in the process's memory keyed by the signed
  request's account. Replacing a stored box costs nothing beyond the
  request budget. Past it, ``429 rate_limited``, nothing stored;
* a box **expires** :attr:`RejoinBoxLimits.ttl_seconds` after it was last
  written (``expires_at``, rounded up to a week so it does not tell when a
  box was written; the retention sweep deletes expired boxes). Clients
  write theirs again every 60 days, so a box lives while one of its
  account's devices runs now and then; an attacker's boxes go;
* the server stores at most :attr:`RejoinBoxLimits.max_boxes` boxes in all;
  a new box past it gets ``507 no_space``. The count is taken at each sweep
  and kept up by this process in between (with several processes, each
  adds its own: the bound is approximate by what they store in a sweep's
  interval).

So an account stores at most ``burst + new_per_hour * ttl`` boxes (about
138,000, 16 MiB, with the defaults), and the server at most ``max_boxes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import RejoinBoxResponse

from .ratelimit import RateLimiter
from .storage import Database, Tx

__all__ = ["EXPIRY_BUCKET_MS", "RejoinBoxLimits", "RejoinBoxes"]

#: Expiry times are rounded up to a multiple of a week.
EXPIRY_BUCKET_MS: Final = 7 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RejoinBoxLimits:
    """The bounds of the module docstring (``ServerConfig``'s ``[rejoin_boxes]``)."""

    new_per_hour: int = 32
    burst: int = 512
    max_boxes: int = 5_000_000
    ttl_seconds: int = 180 * 24 * 3600


def _no_space() -> ApiError:
    return ApiError(ErrorCode.NO_SPACE, "the server keeps no more rejoin boxes; retry later")


class RejoinBoxes:
    """Store, read and delete rejoin boxes by handle, within the module's limits."""

    __slots__ = ("_clock", "_count", "_db", "_limiter", "_limits")

    def __init__(
        self,
        db: Database,
        clock: Callable[[], float],
        limits: RejoinBoxLimits | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._limits = limits or RejoinBoxLimits()
        self._limiter = RateLimiter(
            "new rejoin boxes",
            self._limits.new_per_hour / 3600.0,
            float(self._limits.burst),
            clock,
        )
        #: The boxes stored, as last counted plus this process's changes since.
        self._count: int | None = None

    def _expiry(self, now_ms: int) -> int:
        """When a box written at ``now_ms`` may go: a week boundary after the TTL."""
        at = now_ms + self._limits.ttl_seconds * 1000
        return -(-at // EXPIRY_BUCKET_MS) * EXPIRY_BUCKET_MS

    async def _counted(self, tx: Tx) -> int:
        if self._count is None:
            row = await tx.fetchone("SELECT COUNT(*) FROM rejoin_boxes")
            self._count = 0 if row is None else int(row[0])
        return self._count

    async def put(self, account_id: str, handle: bytes, box: bytes) -> None:
        """Store ``box`` under ``handle`` for a client of ``account_id``, replacing the one
        stored; a new handle takes from the account's allowance (module docstring)."""
        expires_at = self._expiry(int(self._clock() * 1000))

        async def op(tx: Tx) -> bool:
            row = await tx.fetchone(
                "SELECT 1 FROM rejoin_boxes WHERE handle = ?" + tx.for_update,  # noqa: S608
                handle,
            )
            new = row is None
            if new:
                if await self._counted(tx) >= self._limits.max_boxes:
                    raise _no_space()
                self._limiter.hit(account_id)  # 429 before anything is written
            await tx.execute(
                "INSERT INTO rejoin_boxes (handle, box, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (handle) DO UPDATE SET box = excluded.box, "
                "expires_at = excluded.expires_at",
                handle,
                box,
                expires_at,
            )
            return new

        if await self._db.transaction(op) and self._count is not None:
            self._count += 1

    async def get(self, handle: bytes) -> RejoinBoxResponse:
        """The box stored under ``handle``; ``not_found`` if there is none."""

        async def op(tx: Tx) -> bytes | None:
            row = await tx.fetchone("SELECT box FROM rejoin_boxes WHERE handle = ?", handle)
            return None if row is None else bytes(row[0])

        box = await self._db.read(op)
        if box is None:
            raise ApiError(ErrorCode.NOT_FOUND, "no rejoin box is stored under this handle")
        return RejoinBoxResponse(box)

    async def delete(self, handle: bytes) -> None:
        """Delete the box under ``handle`` (nothing if there is none)."""

        async def op(tx: Tx) -> int:
            return await tx.execute("DELETE FROM rejoin_boxes WHERE handle = ?", handle)

        deleted = await self._db.transaction(op)
        if self._count is not None:
            self._count = max(0, self._count - deleted)

    async def sweep(self) -> int:
        """Delete the expired boxes and count those left; how many were deleted.

        Boxes from before expiry times (server migration 21) get one now.
        """
        now_ms = int(self._clock() * 1000)

        async def op(tx: Tx) -> tuple[int, int]:
            await tx.execute(
                "UPDATE rejoin_boxes SET expires_at = ? WHERE expires_at IS NULL",
                self._expiry(now_ms),
            )
            deleted = await tx.execute("DELETE FROM rejoin_boxes WHERE expires_at < ?", now_ms)
            row = await tx.fetchone("SELECT COUNT(*) FROM rejoin_boxes")
            return deleted, 0 if row is None else int(row[0])

        deleted, self._count = await self._db.transaction(op)
        return deleted
