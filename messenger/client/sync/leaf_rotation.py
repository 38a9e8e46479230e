"""Periodic self-updates: this client's leaf in each group is made fresh weekly.

Post-compromise security needs the compromised member itself to update
(RFC 9750 §8.2.2, "Forward Secrecy and Post-Compromise Security"), and an
update in one group heals none of the others (RFC 9750 §6.2: applications
"can strengthen connectivity among parallel groups by requiring periodic key
updates from a user across all groups"). So a group in which this client's
leaf has not been made fresh for :data:`ROTATE_AFTER_MS` gets a self-update
commit with a path (the outbox's ``rotate`` intent, RFC 9420 §12.4.2). A
leaf is made fresh by joining or making the group, and by any commit of this
client's that carries an update path (:class:`~..epochs.GroupEpochs`).

The same commit carries the next epoch's send token (docs/metadata.md §2),
so a group that no updated member had committed to since the update moves
its server-side state under its members' keys within a week.

Queuing a rotation postpones the group's next look by :data:`RETRY_MS`
(whether or not the commit lands), so a group where it cannot land (one
this client can no longer follow) is tried again daily, not at every
maintenance. The store's migration 15 gives each existing group a time
spread over the past week, so that a profile's first updates do not all go
out at once.
"""

from __future__ import annotations

import logging
from typing import Final

from ..session import Session
from ..store.store import Store
from .leaf_addresses import queue_rotate

__all__ = ["RETRY_MS", "ROTATE_AFTER_MS", "queue_leaf_rotations"]

_log = logging.getLogger(__name__)

_DAY_MS: Final = 24 * 3600 * 1000
#: How old this client's leaf in a group may get before it is made fresh.
ROTATE_AFTER_MS: Final = 7 * _DAY_MS
#: How long after a rotation is queued the group is looked at again.
RETRY_MS: Final = _DAY_MS


async def queue_leaf_rotations(session: Session) -> int:
    """Queue a self-update in each group whose leaf of this client is due; how many."""
    now = session.now_ms()

    def queue(store: Store) -> list[bytes]:
        due = store.groups.leaf_rotations_due(now - ROTATE_AFTER_MS)
        for group_id in due:
            queue_rotate(store, group_id, now)
            # Looked at again in a day, unless the commit lands first (then now).
            store.groups.record_leaf_rotation(group_id, now - ROTATE_AFTER_MS + RETRY_MS)
        return due

    due = await session.store.transaction(queue)
    for group_id in due:
        session.outbox_queued(group_id)
    if due:
        _log.info("updating this device's keys in %d group(s)", len(due))
    return len(due)
