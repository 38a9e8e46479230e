"""Moving off the contact queue in turns (docs/metadata.md §1, "Contact queues").

A member that joined by its contact queue moves its leaf to its own queue
with a commit of its own (intent ``move``, :mod:`.leaf_addresses`). When one
commit adds several such members, their moves would all be built for the
same epoch, and the server takes one commit per epoch: each round, all but
one are refused (``stale_epoch``) and built again after catching up -- about
N²/2 commits built for N - 1 moves, each mover's own sends waiting behind
its move meanwhile (``bench/bench_contact_moves.py``).

So they take turns, in leaf order. At the join the client notes the leaves
before its own that came from a KeyPackage and still do (RFC 9420 §7.2: a
leaf's ``leaf_node_source`` is ``key_package`` until its member commits
with a path), the adder's excepted: the members that have yet to move. Its
``move`` is queued as soon as none of them holds the leaf it held then (each
moved, or was removed), or after :data:`STEP_MS` for each of them (:data:`MAX_WAIT_MS` at most),
in case one is offline (or never moves: a client from before contact queues).

The turn is looked at after each commit of the group
(:meth:`MoveTurns.after_commit`, from the inbound pipeline) and when it is
due (:meth:`MoveTurns.run`, a task of the started client);
:meth:`MoveTurns.take` with ``everything`` queues every waiting move at once
(``MessengerClient.flush`` sends everything). Until its turn a member reads
the group from its contact queue and sends to it, as it does before any
move. The waiting moves are kept in a setting
(:data:`~..store.settings.MOVES_WAITING`), written in the join's
transaction, so a restart keeps them.

A reinitialised group's successor (RFC 9420 §11.2), made by one member who
re-adds all the others from their KeyPackages, is moved to in turns too: its
creator, the adder, is its first leaf (RFC 9420 §11).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from messenger.api.fields import b64decode, b64encode
from messenger.mls.group import Group
from messenger.mls.leaf_node import LeafNodeSource

from ..session import Session
from ..store.settings import MOVES_WAITING
from ..store.store import Store
from ..wake import wait_event
from .leaf_addresses import queue_move

__all__ = ["MAX_WAIT_MS", "STEP_MS", "MoveTurns", "movers_before", "wait_turn"]

_log = logging.getLogger(__name__)

#: How long a move waits, at most, for each member before it in the leaf
#: order that has yet to move: a few rounds of catching up and committing.
STEP_MS: Final = 1_000
#: The longest a move waits its turn, however many members come before it
#: (an adder could put many leaves that never move before a new member's).
MAX_WAIT_MS: Final = 30_000

#: The leaves a waiting move lets go first: (leaf index, encryption key).
Before = tuple[tuple[int, bytes], ...]


def movers_before(group: Group, adder: int | None) -> Before:
    """The members before this client's leaf that have yet to move: leaves from
    a KeyPackage (RFC 9420 §7.2), the adder's (``adder``, a leaf index) excepted,
    each with its encryption key (a move, any commit with a path, changes it)."""
    found = []
    for leaf_index in range(group.leaf_index):
        if leaf_index == adder or group.leaf_source(leaf_index) is not LeafNodeSource.KEY_PACKAGE:
            continue
        member = group.member(leaf_index)
        if member is not None:
            found.append((leaf_index, bytes(member.encryption_key)))
    return tuple(found)


def _still_before(group: Group, before: Before) -> bool:
    """Whether a member of ``before`` holds its leaf as it did (has not moved)."""
    for leaf_index, key in before:
        member = group.member(leaf_index)
        if member is not None and bytes(member.encryption_key) == key:
            return True
    return False


def _waiting(store: Store) -> dict[str, dict[str, object]]:
    value = store.settings.get(MOVES_WAITING)
    return dict(value) if isinstance(value, dict) else {}  # type: ignore[arg-type]


def _parse(entry: object) -> tuple[int, Before] | None:
    """A waiting move's deadline and leaves (None: not one this client wrote)."""
    if not isinstance(entry, dict):
        return None
    at, before = entry.get("at"), entry.get("before")
    if not isinstance(at, int) or not isinstance(before, list):
        return None
    leaves = []
    for pair in before:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int)):
            return None
        try:
            leaves.append((pair[0], b64decode(str(pair[1]))))
        except ValueError:
            return None
    return at, tuple(leaves)


def wait_turn(store: Store, group_id: bytes, before: Before, now: int) -> bool:
    """In the join's transaction: queue the ``move`` now if no member is
    ``before`` this client's leaf, else note it waits its turn; whether queued."""
    if not before:
        queue_move(store, group_id, now)
        return True
    waiting = _waiting(store)
    waiting[b64encode(group_id)] = {
        "at": now + min(STEP_MS * len(before), MAX_WAIT_MS),
        "before": [[leaf_index, b64encode(key)] for leaf_index, key in before],
    }
    store.settings.set(MOVES_WAITING, waiting)  # type: ignore[arg-type]
    return False


class MoveTurns:
    """The moves waiting their turn: queued when it comes (the one owner of
    :data:`~..store.settings.MOVES_WAITING` after the join that wrote it)."""

    def __init__(self, session: Session) -> None:
        self._s = session
        #: The groups with a waiting move (None: not read from the store yet).
        self._groups: set[bytes] | None = None
        self._changed = asyncio.Event()

    def noted(self, group_id: bytes) -> None:
        """A join noted a waiting move for ``group_id`` (its transaction is done)."""
        if self._groups is not None:
            self._groups.add(group_id)
        self._changed.set()

    async def _known(self) -> set[bytes]:
        if self._groups is None:
            waiting = await self._s.store.run(_waiting)
            found = set()
            for key in waiting:
                try:
                    found.add(b64decode(key))
                except ValueError:
                    continue
            self._groups = found
        return self._groups

    async def after_commit(self, group: Group) -> None:
        """A commit of ``group`` was merged (its lock held): queue the move if its turn came."""
        if group.group_id in await self._known() and await self._settle(
            group.group_id, group, everything=False
        ):
            self._s.outbox_queued(group.group_id)

    async def take(self, *, everything: bool = False) -> int | None:
        """Queue each waiting move whose turn came (``everything``: each one);
        when the next one is due (None: none waits). Read afresh from the
        store: a join's note may have crossed an earlier read."""
        self._groups = None
        for group_id in sorted(await self._known()):
            async with self._s.group_lock(group_id):
                group = await self._s.epochs.get(group_id)
                queued = await self._settle(group_id, group, everything=everything)
            if queued:
                self._s.outbox_queued(group_id)
        return await self._s.store.run(_next_due)

    async def _settle(self, group_id: bytes, group: Group | None, *, everything: bool) -> bool:
        """Queue the group's waiting move if its turn came (its lock held), or
        forget it if the group is gone; whether the move was queued."""
        now = self._s.now_ms()
        gone = group is None or not group.active  # left, or removed: nothing to move
        if not gone:
            assert group is not None
            entries = await self._s.store.run(_waiting)
            parsed = _parse(entries.get(b64encode(group_id)))
            due = (
                parsed is None
                or everything
                or now >= parsed[0]
                or not _still_before(group, parsed[1])
            )
            if not due:
                return False

        def write(store: Store) -> None:
            waiting = _waiting(store)
            waiting.pop(b64encode(group_id), None)
            if not gone:
                queue_move(store, group_id, now)
            if waiting:
                store.settings.set(MOVES_WAITING, waiting)  # type: ignore[arg-type]
            else:
                store.settings.delete(MOVES_WAITING)

        await self._s.store.transaction(write)
        (await self._known()).discard(group_id)
        if gone:
            return False
        _log.info("a move off the contact queue is queued (its turn came)")
        return True

    async def run(self) -> None:
        """Queue each waiting move when its turn is due, forever."""
        while True:
            self._changed.clear()
            due = await self.take()
            timeout = None if due is None else max(0.0, (due - self._s.now_ms()) / 1000)
            await wait_event(self._changed, timeout)


def _next_due(store: Store) -> int | None:
    """The earliest deadline of a waiting move (None: none waits)."""
    found = [p[0] for p in map(_parse, _waiting(store).values()) if p is not None]
    return min(found) if found else None
