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
"""

from __future__ import annotations

from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import RejoinBoxResponse

from .storage import Database, Tx

__all__ = ["RejoinBoxes"]


class RejoinBoxes:
    """Store, read and delete rejoin boxes by handle."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    async def put(self, handle: bytes, box: bytes) -> None:
        """Store ``box`` under ``handle``, replacing the one stored."""

        async def op(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO rejoin_boxes (handle, box) VALUES (?, ?) "
                "ON CONFLICT (handle) DO UPDATE SET box = excluded.box",
                handle,
                box,
            )

        await self._db.transaction(op)

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

        async def op(tx: Tx) -> None:
            await tx.execute("DELETE FROM rejoin_boxes WHERE handle = ?", handle)

        await self._db.transaction(op)
