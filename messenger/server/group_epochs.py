"""Each group's epoch: known to the running server, not to a copy of its database.

The server orders commits by epoch (RFC 9420 §14; RFC 9750 §5.2.1), so
while it runs it reads and advances it. A copy of the database should not
show it: a group's epoch counts its commits, that is how often its
membership or keys changed, and the epoch of its stored GroupInfo (docs/
metadata.md §2; issue 14 lists the epoch with the member set as group state
to keep from the database). So:

* ``mls_groups.epoch_box`` holds the group's epoch and the epoch of its
  stored GroupInfo (if any), 16 bytes sealed under a key from the server
  secret and bound to the group ID (:mod:`.at_rest`); every box has the same
  size. The plain ``epoch`` column is 0 and ``group_info_epoch`` empty.
* The running server opens the box of a group in the transaction that
  holds the group's row (``FOR UPDATE``), so commits still serialise.
* A group whose members send the keys (:mod:`.state_keys`) has its box
  sealed under its data key instead (``key``), which the server opens only
  with a send token the request carries: the key file alone does not show
  its epoch.

Rows from before (server migration 17) are sealed by
:meth:`GroupEpochs.adopt_legacy` when the server starts.
"""

from __future__ import annotations

from typing import Final

from .at_rest import SealedColumn
from .state_keys import StateKeys
from .storage import StorageError, Tx

__all__ = ["GroupEpochs"]

#: Groups sealed per statement when the server adopts rows from before.
_BATCH: Final = 200
#: The GroupInfo epoch that says "no GroupInfo stored".
_NONE: Final = (1 << 64) - 1
_COLUMN: Final = "mls_groups.epoch_box"


class GroupEpochs:
    """Seal and open a group's epochs (``mls_groups.epoch_box``).

    ``key`` is the group's data key for a group whose state its members'
    keys seal (:attr:`.state_keys.GroupKeys.boxes`), None for the server's.
    """

    __slots__ = ("_column",)

    def __init__(self, key: bytes) -> None:
        self._column = SealedColumn(key, _COLUMN)

    def _sealer(self, key: bytes | None) -> SealedColumn:
        return self._column if key is None else StateKeys.sealer(key, _COLUMN)

    def seal(
        self, group_id: bytes, epoch: int, info_epoch: int | None, key: bytes | None = None
    ) -> bytes:
        """The ``epoch_box`` of ``group_id`` at ``epoch``, its GroupInfo's at ``info_epoch``."""
        if not 0 <= epoch < _NONE or not (info_epoch is None or 0 <= info_epoch < _NONE):
            raise ValueError("an epoch is out of range")
        stored_info = _NONE if info_epoch is None else info_epoch
        return self._sealer(key).seal(
            group_id, epoch.to_bytes(8, "big") + stored_info.to_bytes(8, "big")
        )

    def open(
        self, group_id: bytes, box: object, key: bytes | None = None
    ) -> tuple[int, int | None]:
        """``(epoch, GroupInfo epoch or None)`` sealed in ``box``."""
        if not isinstance(box, bytes | memoryview):
            raise StorageError("a group row has no sealed epoch")
        data = self._sealer(key).open(group_id, bytes(box))
        if len(data) != 16:
            raise StorageError("a group's sealed epoch is malformed")
        info_epoch = int.from_bytes(data[8:], "big")
        return int.from_bytes(data[:8], "big"), None if info_epoch == _NONE else info_epoch

    async def adopt_legacy(self, tx: Tx) -> int:
        """Seal the epochs of groups stored before server migration 17; how many.

        In batches of 200 (a sealed row no longer matches the partial index).
        The update is conditional, so processes starting together do not
        both seal one (the second would seal the plain 0 left by the first).
        """
        sealed = 0
        while True:
            rows = await tx.fetchall(
                "SELECT group_id, epoch, group_info_epoch FROM mls_groups "
                "WHERE epoch_box IS NULL LIMIT ?",
                _BATCH,
            )
            if not rows:
                return sealed
            await tx.executemany(
                "UPDATE mls_groups SET epoch_box = ?, epoch = 0, group_info_epoch = NULL "
                "WHERE group_id = ? AND epoch_box IS NULL",
                [
                    (
                        self.seal(bytes(g), int(e), None if i is None else int(i)),
                        bytes(g),
                    )
                    for g, e, i in rows
                ],
            )
            sealed += len(rows)
