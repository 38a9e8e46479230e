"""Links in progress, so that one cut short by a crash is undone or finished.

docs/devices.md §2: a link that stops halfway leaves both devices usable.

* The **creator** (the existing device) records the client it registered
  (state ``registered``) before it answers; the record goes in the same
  transaction that queues the Adds of the new device (state ``adding``).
  On the next start a ``registered`` link is undone (the client is removed
  from the server) and an ``adding`` one just forgotten: the Adds are
  durable outbox intents by then.
* The **new** device records its link in the transaction that writes its
  identity (state ``answered``) and marks it ``ready`` once it told the
  creator so. On the next start an ``answered`` identity is discarded (the
  creator removes the client) and the profile starts empty again; a
  ``ready`` one keeps its identity: its Welcomes are in its queue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .database import Database

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "LinkRole",
    "LinkState",
    "PendingLink",
    "PendingLinkRepository",
    "recover_new_device",
]


class LinkRole(enum.StrEnum):
    CREATOR = "creator"
    NEW = "new"


class LinkState(enum.StrEnum):
    REGISTERED = "registered"  # creator: client added on the server, not answered
    ADDING = "adding"  # creator: Adds queued
    ANSWERED = "answered"  # new device: identity written, ready not yet posted
    READY = "ready"  # new device: ready posted, waiting for Welcomes


@dataclass(frozen=True, slots=True)
class PendingLink:
    link_id: bytes
    role: LinkRole
    state: LinkState
    client_id: str | None
    created_at: int
    data: bytes | None = field(default=None, repr=False)


class PendingLinkRepository:
    """The ``pending_links`` table (migration 10)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def put(self, link: PendingLink) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO pending_links "
            "(link_id, role, state, client_id, created_at, data) VALUES (?, ?, ?, ?, ?, ?)",
            (
                link.link_id,
                link.role.value,
                link.state.value,
                link.client_id,
                link.created_at,
                link.data,
            ),
        )

    def set_state(self, link_id: bytes, state: LinkState) -> bool:
        result = self._db.execute(
            "UPDATE pending_links SET state = ? WHERE link_id = ?", (state.value, link_id)
        )
        return result.rowcount > 0

    def get(self, link_id: bytes) -> PendingLink | None:
        row = self._db.query_one(
            "SELECT link_id, role, state, client_id, created_at, data FROM pending_links "
            "WHERE link_id = ?",
            (link_id,),
        )
        return None if row is None else _link(row)

    def all(self, role: LinkRole | None = None) -> list[PendingLink]:
        rows = self._db.query(
            "SELECT link_id, role, state, client_id, created_at, data FROM pending_links "
            "WHERE ? IS NULL OR role = ? ORDER BY created_at",
            (None if role is None else role.value,) * 2,
        )
        return [_link(row) for row in rows]

    def delete(self, link_id: bytes) -> bool:
        result = self._db.execute("DELETE FROM pending_links WHERE link_id = ?", (link_id,))
        return result.rowcount > 0


def _link(row: tuple[object, ...]) -> PendingLink:
    link_id, role, state, client_id, created_at, data = row
    assert isinstance(link_id, bytes) and isinstance(created_at, int)
    return PendingLink(
        link_id,
        LinkRole(str(role)),
        LinkState(str(state)),
        None if client_id is None else str(client_id),
        created_at,
        data if isinstance(data, bytes) else None,
    )


def recover_new_device(store: Store) -> bool:
    """When a profile opens: undo a new device's link that a crash cut short.

    An identity written but never announced to the creator as ready is
    discarded with its KeyPackages and devices group (the profile starts
    empty again; the creator removes the client it registered). A link
    that got to *ready* keeps its identity: the creator queued or will
    queue its Adds, and the Welcomes wait in the queue; its record is
    forgotten. Whether an identity was discarded.
    """
    repository = PendingLinkRepository(store.db)
    links = repository.all(LinkRole.NEW)
    if not links:
        return False
    discarded = False
    with store.transaction():
        for link in links:
            if link.state is LinkState.ANSWERED:
                store.db.execute("DELETE FROM key_packages")
                store.db.execute("DELETE FROM devices_group")
                store.db.execute("DELETE FROM identity")
                discarded = True
            repository.delete(link.link_id)
    return discarded
