"""Each group's member set: known to the running server, not to a copy of its database.

The server routes a group's messages to its members' queues, so while it
runs it must read the member set (RFC 9750 §5.2). A copy of the database
should not show it: which pseudonymous queues share which group is the
social graph, even when no queue can be tied to an account
(:mod:`.queue_links`). So (docs/metadata.md §2):

* ``mls_groups.members_box`` holds the group's member queues, sorted, sealed
  under a key from the server secret and bound to the group ID
  (:mod:`.at_rest`); there is no row per membership and no index by queue.
* A group whose members send the keys (:mod:`.state_keys`) has its box
  sealed under its data key instead, so the key file alone does not open
  it either: every reader first opens the data key with a send token the
  request carries (:meth:`MemberSets.read` takes it), and without one the
  server cannot tell a member from a stranger.
* Removing a device deletes its queue (:mod:`.devices`) but cannot find
  the groups it was in without opening every box, so a box may still name a
  queue that is gone. :meth:`MemberSets.load` leaves such queues out, and
  the box of the commit that no longer lists them (the one removing their
  leaves) no longer has them.

Rows from before (``group_members``, server migration 13) are moved into
boxes by :meth:`MemberSets.adopt_legacy` when the server starts; the table
stays, empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from .at_rest import SealedColumn
from .state_keys import StateKeys
from .storage import StorageError, Tx

__all__ = ["MemberSets"]

_CHUNK: Final = 500
#: Groups moved per statement when the server adopts rows from before.
_BATCH: Final = 200
_SEPARATOR: Final = b"\n"
_COLUMN: Final = "mls_groups.members_box"


class MemberSets:
    """Seal, open and read the member set of a group (``mls_groups.members_box``).

    ``key`` is the group's data key for a group whose state its members'
    keys seal (:attr:`.state_keys.GroupKeys.boxes`), None for the server's.
    """

    __slots__ = ("_column", "_state_keys")

    def __init__(self, key: bytes) -> None:
        self._column = SealedColumn(key, _COLUMN)
        self._state_keys = StateKeys(key)

    def _sealer(self, key: bytes | None) -> SealedColumn:
        return self._column if key is None else StateKeys.sealer(key, _COLUMN)

    def seal(self, group_id: bytes, members: Iterable[str], key: bytes | None = None) -> bytes:
        """The ``members_box`` of ``group_id`` holding ``members`` (queue IDs)."""
        ordered = sorted(set(members))
        if any(not q or "\n" in q for q in ordered):  # queue IDs are validated idents
            raise ValueError("a queue ID in a member set is empty or has a line break")
        return self._sealer(key).seal(group_id, _SEPARATOR.join(q.encode("ascii") for q in ordered))

    def open(self, group_id: bytes, box: object, key: bytes | None = None) -> list[str]:
        """The queue IDs sealed in ``box`` (sorted), all of them, gone or not."""
        if not isinstance(box, bytes | memoryview):
            raise StorageError("a group row has no member set")
        data = self._sealer(key).open(group_id, bytes(box))
        return data.decode("ascii").split("\n") if data else []

    def unlock(
        self, group_id: bytes, box: object, state_keys: object, sealed: object, token: bytes | None
    ) -> list[str] | None:
        """:meth:`open` of a group row's box (its ``state_keys`` and
        ``group_info_sealed`` say what seals it), with ``token`` if its
        members' keys seal it; None if ``token`` opens none of them."""
        keys = self._state_keys.unlock(group_id, state_keys, sealed, token)
        return None if keys is None else self.open(group_id, box, keys.boxes)

    async def load(
        self, tx: Tx, group_id: bytes, box: object, key: bytes | None = None
    ) -> list[str]:
        """The members of ``box`` whose queues still exist (sorted)."""
        return await live_queues(tx, self.open(group_id, box, key))

    async def read(self, tx: Tx, group_id: bytes, token: bytes | None = None) -> list[str] | None:
        """The group's current members (:meth:`load`), or None if there is no such
        group or its members' keys seal it and ``token`` (a send token of an
        epoch since its last removal) opens none of them."""
        row = await tx.fetchone(
            "SELECT members_box, state_keys, group_info_sealed FROM mls_groups WHERE group_id = ?",
            group_id,
        )
        if row is None:
            return None
        listed = self.unlock(group_id, row[0], row[1], row[2], token)
        return None if listed is None else await live_queues(tx, listed)

    async def store(
        self, tx: Tx, group_id: bytes, members: Iterable[str], key: bytes | None = None
    ) -> None:
        """Replace the group's member set (call it with the group row locked)."""
        await tx.execute(
            "UPDATE mls_groups SET members_box = ? WHERE group_id = ?",
            self.seal(group_id, members, key),
            group_id,
        )

    async def adopt_legacy(self, tx: Tx) -> int:
        """Move the ``group_members`` rows from before migration 13 into boxes.

        Returns how many groups got a box. In batches of groups, so memory
        stays bounded however many memberships there are; a group whose
        rows are moved is deleted from ``group_members`` in the same
        transaction. A group with no rows at all gets an empty box.
        """
        moved = 0
        while True:
            rows = await tx.fetchall(
                "SELECT group_id FROM mls_groups WHERE members_box IS NULL LIMIT ?", _BATCH
            )
            if not rows:
                return moved
            groups = [bytes(r[0]) for r in rows]
            marks = ", ".join("?" * len(groups))
            found = await tx.fetchall(
                f"SELECT group_id, queue_id FROM group_members WHERE group_id IN ({marks})",  # noqa: S608
                *groups,
            )
            members: dict[bytes, list[str]] = {g: [] for g in groups}
            for group_id, queue_id in found:
                members[bytes(group_id)].append(str(queue_id))
            # Only a box still missing: another process starting at the same
            # time may have moved these rows (and deleted them) first, and on
            # PostgreSQL the condition is checked again once its lock is gone.
            await tx.executemany(
                "UPDATE mls_groups SET members_box = ? WHERE group_id = ? AND members_box IS NULL",
                [(self.seal(g, qs), g) for g, qs in members.items()],
            )
            await tx.execute(
                f"DELETE FROM group_members WHERE group_id IN ({marks})",  # noqa: S608
                *groups,
            )
            moved += len(groups)


async def live_queues(tx: Tx, queue_ids: Sequence[str]) -> list[str]:
    """Those of ``queue_ids`` whose queue exists (sorted)."""
    ordered = sorted(set(queue_ids))
    live: list[str] = []
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        rows = await tx.fetchall(
            f"SELECT queue_id FROM queues WHERE queue_id IN ({', '.join('?' * len(chunk))})",  # noqa: S608
            *chunk,
        )
        live += [str(r[0]) for r in rows]
    return sorted(live)
