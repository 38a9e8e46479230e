"""MLS group state, by group id (RFC 9420 §8, §12.4).

The state is the MLS library's serialized group (ratchet tree, key schedule,
secret tree, ...): an opaque blob here, with the epoch next to it. In
"stage, persist, merge" (architecture guide, convention 4) the client
stages a commit, saves the *new* state here together with the messages it
produced in one transaction, and only then merges in memory. A save never
moves a group to an older epoch (:class:`GroupStateRegressionError`):
that would reuse secrets that RFC 9420 §9.2 requires to be deleted.

An application message changes only its sender's ratchets in the secret
tree (RFC 9420 §9.1), so it is not worth rewriting the whole state (2.6 MB
at 10,000 members) each time. A :class:`~messenger.mls.group_state.GroupCheckpoint`
is saved in two parts: ``mls_groups.state`` holds the state without the
secret trees' secrets, written only when more than the secret trees changed
(a commit, a join, a proposal), and ``mls_group_ratchets`` one row per
secret-tree slot (a tree secret or a leaf's ratchets with its retained
out-of-order keys) of each epoch kept, upserted per message. A slot whose
secret is consumed has its row emptied in the same transaction (RFC 9420
§9.2), and a full save replaces all rows. :meth:`GroupStateRepository.get` returns
both parts; ``Group.from_checkpoint`` joins them. A full state saved as bytes
(``Group.to_bytes()``) is kept as it is, with no rows.

Beside each state, the marks that say when the account's rejoin box of the
group is due (:class:`RejoinMarks`, :mod:`messenger.client.rejoin_boxes`,
docs/metadata.md §2): the epoch of the token last uploaded and the epoch of
the latest commit that removed a leaf; and the groups left whose box is
still to be deleted from the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import GroupStateRegressionError, StoreError
from .database import Database, Row

if TYPE_CHECKING:
    # At run time imported by the methods that build or test these: the
    # store's read path (the desktop app's first window) does not load MLS.
    from messenger.mls.group_state import GroupCheckpoint, StateRecord

__all__ = ["GroupState", "GroupStateRepository", "RejoinMarks"]


@dataclass(frozen=True, slots=True)
class GroupState:
    """A stored group: ``state`` and, if it is split, its secret-tree ``records``.

    ``updated_at`` is the time of the last save of ``state`` (not of the records).
    """

    group_id: bytes
    epoch: int
    state: bytes = field(repr=False)
    updated_at: int
    records: tuple[StateRecord, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class RejoinMarks:
    """What decides whether a group's rejoin box is due (``rejoin_boxes.box_due``)."""

    group_id: bytes
    epoch: int
    """The group's current epoch (as stored)."""
    box_epoch: int | None
    """The epoch of the token last put in the account's box (None: none yet)."""
    removal_epoch: int | None
    """The epoch made by the latest commit that removed a leaf (None: none seen)."""
    box_at: int | None = None
    """When the box was last written (Unix ms; None: not known)."""


class GroupStateRepository:
    """Serialized MLS groups."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, group_id: bytes) -> GroupState | None:
        row = self._db.query_one(
            "SELECT group_id, epoch, state, updated_at FROM mls_groups WHERE group_id = ?",
            (group_id,),
        )
        if row is None:
            return None
        from messenger.mls.group_state import StateRecord

        records = tuple(
            StateRecord(int(epoch), int(node), bytes(data))
            for epoch, node, data in self._db.query(
                "SELECT epoch, node, data FROM mls_group_ratchets WHERE group_id = ? "
                "ORDER BY epoch, node",
                (group_id,),
            )
        )
        return _group(row, records)

    def save(
        self, group_id: bytes, epoch: int, state: bytes | GroupCheckpoint, *, now: int
    ) -> None:
        """Save a whole state, or a checkpoint (whole, or the changes since the last one).

        GroupStateRegressionError if ``epoch`` is older than the stored one;
        a checkpoint of changes needs the stored state of its epoch.
        """
        if epoch < 0:
            raise ValueError("an epoch is not negative")
        from messenger.mls.group_state import GroupCheckpoint

        if isinstance(state, GroupCheckpoint):
            if state.group_id != group_id or state.epoch != epoch:
                raise ValueError("the checkpoint is of another group or epoch")
            if state.base is None:
                self._save_changes(group_id, epoch, state.records)
                return
            base, records = state.base, state.records
        else:
            base, records = state, ()
        with self._db.transaction():
            result = self._db.execute(
                "INSERT INTO mls_groups (group_id, epoch, state, updated_at, leaf_rotated_at) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch, "
                "state = excluded.state, updated_at = excluded.updated_at, "
                # A group that moved on (a device rejoining) is no longer stuck.
                "stuck_at = CASE WHEN excluded.epoch > mls_groups.epoch THEN NULL "
                "ELSE mls_groups.stuck_at END "
                "WHERE excluded.epoch >= mls_groups.epoch",
                (group_id, epoch, base, now, now),
            )
            if result.rowcount == 0:
                raise GroupStateRegressionError(f"epoch {epoch} is older than the stored one")
            self._db.execute("DELETE FROM mls_group_ratchets WHERE group_id = ?", (group_id,))
            self._db.executemany(
                "INSERT INTO mls_group_ratchets (group_id, epoch, node, data) VALUES (?, ?, ?, ?)",
                [(group_id, r.epoch, r.node, r.data) for r in records if r.data],
            )

    def _save_changes(self, group_id: bytes, epoch: int, records: tuple[StateRecord, ...]) -> None:
        with self._db.transaction():
            stored = self.epoch(group_id)
            if stored is None or stored != epoch:
                if stored is not None and stored > epoch:
                    raise GroupStateRegressionError(f"epoch {epoch} is older than the stored one")
                raise StoreError("secret tree changes without the group state of their epoch")
            # An emptied slot keeps its row, with no data, until the next full
            # save: over a whole state saved as bytes it must still be emptied.
            self._db.executemany(
                "INSERT INTO mls_group_ratchets (group_id, epoch, node, data) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, epoch, node) "
                "DO UPDATE SET data = excluded.data",
                [(group_id, r.epoch, r.node, r.data) for r in records],
            )

    def epoch(self, group_id: bytes) -> int | None:
        value = self._db.query_value("SELECT epoch FROM mls_groups WHERE group_id = ?", (group_id,))
        return None if value is None else int(value)

    def delete(self, group_id: bytes, *, forget_box: bool = False) -> bool:
        """Delete a group's state; with ``forget_box``, its rejoin box is to be
        deleted from the server too (:meth:`rejoin_box_deletions`)."""
        with self._db.transaction():
            self._db.execute("DELETE FROM mls_group_ratchets WHERE group_id = ?", (group_id,))
            result = self._db.execute("DELETE FROM mls_groups WHERE group_id = ?", (group_id,))
            if forget_box:
                self._db.execute(
                    "INSERT INTO rejoin_box_deletions (group_id) VALUES (?) "
                    "ON CONFLICT (group_id) DO NOTHING",
                    (group_id,),
                )
        return result.rowcount > 0

    # -- groups that cannot go on (``messenger/client/group_restart.py``) -----------------

    def mark_stuck(self, group_id: bytes, at: int) -> bool:
        """The server moved ``group_id`` where this client cannot follow; whether
        that is news (the group was not marked yet). Saving a later epoch of it
        (:meth:`save`: a device that rejoined) clears the mark."""
        result = self._db.execute(
            "UPDATE mls_groups SET stuck_at = ? WHERE group_id = ? AND stuck_at IS NULL",
            (at, group_id),
        )
        return result.rowcount > 0

    def stuck_at(self, group_id: bytes) -> int | None:
        """When this client found ``group_id`` stuck (Unix ms; None: it is not)."""
        row = self._db.query_one("SELECT stuck_at FROM mls_groups WHERE group_id = ?", (group_id,))
        return None if row is None or row[0] is None else int(row[0])

    def stuck_groups(self) -> set[bytes]:
        """Every group found stuck (for a list of conversations: one query)."""
        rows = self._db.query("SELECT group_id FROM mls_groups WHERE stuck_at IS NOT NULL")
        return {bytes(row[0]) for row in rows}

    def set_branch_of(self, group_id: bytes, old_group_id: bytes) -> None:
        """``group_id`` (saved) was started again from ``old_group_id`` (RFC 9420 §11.3)."""
        self._db.execute(
            "UPDATE mls_groups SET branch_of = ? WHERE group_id = ?", (old_group_id, group_id)
        )

    def branches_of(self, old_group_id: bytes) -> list[bytes]:
        """The groups started again from ``old_group_id``."""
        rows = self._db.query(
            "SELECT group_id FROM mls_groups WHERE branch_of = ? ORDER BY id", (old_group_id,)
        )
        return [bytes(row[0]) for row in rows]

    # -- rejoin boxes (docs/metadata.md §2) ---------------------------------------------

    def record_leaf_rotation(self, group_id: bytes, at: int) -> None:
        """This client's leaf in ``group_id`` was made fresh at ``at`` (Unix ms): a
        commit of its own with an update path (a new group or a join is recorded
        by :meth:`save`)."""
        self._db.execute(
            "UPDATE mls_groups SET leaf_rotated_at = ? WHERE group_id = ?", (at, group_id)
        )

    def leaf_rotations_due(self, before: int) -> list[bytes]:
        """The groups whose leaf of this client was last made fresh before ``before``
        (or at a time not known), oldest first; not those that cannot go on."""
        rows = self._db.query(
            "SELECT group_id FROM mls_groups WHERE stuck_at IS NULL AND "
            "(leaf_rotated_at IS NULL OR leaf_rotated_at < ?) ORDER BY leaf_rotated_at, group_id",
            (before,),
        )
        return [bytes(row[0]) for row in rows]

    def rejoin_marks(self, group_id: bytes | None = None) -> list[RejoinMarks]:
        """The rejoin marks of every group with state (or of ``group_id`` only)."""
        sql = (
            "SELECT group_id, epoch, rejoin_box_epoch, rejoin_removal_epoch, rejoin_box_at "
            "FROM mls_groups"
        )
        rows = (
            self._db.query(sql + " ORDER BY id")
            if group_id is None
            else self._db.query(sql + " WHERE group_id = ?", (group_id,))
        )
        return [
            RejoinMarks(
                bytes(gid),
                int(epoch),
                None if box is None else int(box),
                None if removal is None else int(removal),
                None if box_at is None else int(box_at),
            )
            for gid, epoch, box, removal, box_at in rows
        ]

    def record_removal(self, group_id: bytes, epoch: int) -> None:
        """A commit that removed a leaf made ``epoch`` (never moves the mark back)."""
        self._db.execute(
            "UPDATE mls_groups SET rejoin_removal_epoch = ? WHERE group_id = ? "
            "AND (rejoin_removal_epoch IS NULL OR rejoin_removal_epoch < ?)",
            (epoch, group_id, epoch),
        )

    def record_rejoin_box(self, group_id: bytes, epoch: int, at: int | None = None) -> None:
        """The account's box now holds the token of ``epoch`` (never moves the mark back),
        written at ``at`` (Unix ms) if given."""
        self._db.execute(
            "UPDATE mls_groups SET rejoin_box_epoch = MAX(COALESCE(rejoin_box_epoch, ?), ?), "
            "rejoin_box_at = COALESCE(?, rejoin_box_at) WHERE group_id = ?",
            (epoch, epoch, at, group_id),
        )

    def reset_rejoin_box(self, group_id: bytes) -> None:
        """The box holds no token of this state: due again (a group rejoined)."""
        self._db.execute(
            "UPDATE mls_groups SET rejoin_box_epoch = NULL, rejoin_box_at = NULL "
            "WHERE group_id = ?",
            (group_id,),
        )

    def rejoin_box_deletions(self) -> list[bytes]:
        """The groups whose rejoin box is to be deleted from the server."""
        return [
            bytes(row[0])
            for row in self._db.query("SELECT group_id FROM rejoin_box_deletions ORDER BY group_id")
        ]

    def rejoin_box_deleted(self, group_id: bytes) -> None:
        """The server deleted the group's box (or there is nothing left to delete)."""
        self._db.execute("DELETE FROM rejoin_box_deletions WHERE group_id = ?", (group_id,))

    def clear_rejoin_box_deletions(self) -> None:
        """Forget every pending deletion (a restored copy's are stale)."""
        self._db.execute("DELETE FROM rejoin_box_deletions")

    def group_ids(self) -> list[bytes]:
        return [row[0] for row in self._db.query("SELECT group_id FROM mls_groups ORDER BY id")]


def _group(row: Row, records: tuple[StateRecord, ...]) -> GroupState:
    group_id, epoch, state, updated_at = row
    return GroupState(group_id, epoch, state, updated_at, records)
