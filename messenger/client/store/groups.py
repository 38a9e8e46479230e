"""MLS group state, by group id (RFC 9420 §8, §12.4).

The state is the MLS library's serialized group (ratchet tree, key schedule,
secret tree, ...): an opaque blob here, with the epoch next to it. In
"stage, persist, merge" (architecture guide, convention 4) the client
stages a commit, saves the *new* state here together with the messages it
produced in one transaction, and only then merges in memory. A save never
moves a group to an older epoch (:class:`GroupStateRegressionError`):
that would reuse secrets that RFC 9420 §9.2 requires to be deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import GroupStateRegressionError
from .database import Database, Row

__all__ = ["GroupState", "GroupStateRepository"]


@dataclass(frozen=True, slots=True)
class GroupState:
    group_id: bytes
    epoch: int
    state: bytes = field(repr=False)
    updated_at: int


def _group(row: Row) -> GroupState:
    return GroupState(*row)


class GroupStateRepository:
    """Serialized MLS groups."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, group_id: bytes) -> GroupState | None:
        row = self._db.query_one(
            "SELECT group_id, epoch, state, updated_at FROM mls_groups WHERE group_id = ?",
            (group_id,),
        )
        return None if row is None else _group(row)

    def save(self, group_id: bytes, epoch: int, state: bytes, *, now: int) -> None:
        """Insert or replace the state; GroupStateRegressionError if ``epoch`` is older."""
        if epoch < 0:
            raise ValueError("an epoch is not negative")
        result = self._db.execute(
            "INSERT INTO mls_groups (group_id, epoch, state, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (group_id) DO UPDATE SET epoch = excluded.epoch, "
            "state = excluded.state, updated_at = excluded.updated_at "
            "WHERE excluded.epoch >= mls_groups.epoch",
            (group_id, epoch, state, now),
        )
        if result.rowcount == 0:
            raise GroupStateRegressionError(f"epoch {epoch} is older than the stored one")

    def epoch(self, group_id: bytes) -> int | None:
        value = self._db.query_value("SELECT epoch FROM mls_groups WHERE group_id = ?", (group_id,))
        return None if value is None else int(value)

    def delete(self, group_id: bytes) -> bool:
        result = self._db.execute("DELETE FROM mls_groups WHERE group_id = ?", (group_id,))
        return result.rowcount > 0

    def group_ids(self) -> list[bytes]:
        return [row[0] for row in self._db.query("SELECT group_id FROM mls_groups ORDER BY id")]
