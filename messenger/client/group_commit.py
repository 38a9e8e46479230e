"""Group commit: local writes issued in the same event-loop tick share one transaction.

A new own message costs a store transaction (the message, its outbox row,
the views of its event). When the UI hands over many at once -- a pasted
burst, several conversations, a script -- one transaction each would make
the store thread's commits the bottleneck. :class:`GroupCommit` gathers the
writes submitted while the event loop is on one tick (and, under load, those
submitted while the previous batch was being written) and runs them in
**one** :meth:`~.store.async_store.AsyncStore.local_transaction` (at most
:data:`MAX_BATCH` a transaction), in one savepoint, or, if one of them
raises, each in a savepoint of its own (:func:`_run_all`).

What is durable when does not change: :meth:`GroupCommit.write` returns
only after the transaction holding its write has committed, so a message
that ``send_text`` returned is in the store exactly as before (it survives
the process being killed; see ``local_transaction`` for a power cut). A
write that raises is rolled back alone (its savepoint) and its caller gets
the exception; the others of the batch commit. If the transaction itself
fails, every caller of the batch gets that error and nothing of it is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    from .store.async_store import AsyncStore
    from .store.store import Store

__all__ = ["GroupCommit", "Memo"]

T = TypeVar("T")

#: The most writes in one transaction: the first ones of a large burst are then
#: stored, and their callers go on (the outbox starts sending them), while the
#: next ones are written.
MAX_BATCH: Final = 100


#: What the writes of one batch may share (reads that they do not change), by key.
Memo = dict[object, Any]


class _Write(Generic[T]):
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[Store, Memo], T], future: asyncio.Future[T]) -> None:
        self.fn = fn
        self.future = future


def _run_all(store: Store, writes: list[_Write[Any]]) -> list[tuple[bool, Any]]:
    """Each write's outcome: ``(True, result)`` or ``(False, exception)``.

    Writes rarely fail (a conversation left or blocked meanwhile), so they first
    run one after the other in one savepoint, two statements in all instead of
    two per write. If one raises, that savepoint is rolled back and every write
    runs again in a savepoint of its own, with a fresh memo: only the failing
    ones are left out. A write is a function of the store and the memo alone
    (``GroupCommit.write``), so running it twice stores it once.
    """
    if len(writes) == 1:  # alone: the transaction is its savepoint
        return [(True, writes[0].fn(store, {}))]
    try:
        with store.transaction():  # nested: one savepoint for the batch
            memo: Memo = {}
            return [(True, write.fn(store, memo)) for write in writes]
    except Exception:  # noqa: S110 - each write again, alone (below)
        pass
    memo = {}
    outcomes: list[tuple[bool, Any]] = []
    for write in writes:
        try:
            with store.transaction():  # nested: a savepoint
                outcomes.append((True, write.fn(store, memo)))
        except Exception as exc:  # handed to that write's caller
            outcomes.append((False, exc))
    return outcomes


class GroupCommit:
    """Runs the local writes of one tick in one transaction (see the module docstring)."""

    def __init__(self, store: AsyncStore) -> None:
        self._store = store
        self._pending: list[_Write[Any]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, fn: Callable[[Store, Memo], T]) -> T:
        """``fn(store, memo)`` in a transaction shared with the writes of this tick; its result.

        ``fn`` may run twice (its batch again, write by write, after another
        write of the batch raised): it must change nothing but the store and
        ``memo``, which both are rolled back in between.

        ``memo`` is shared by the writes of the transaction: a write may keep
        there what it read and the others do not change (a conversation's
        view for its new messages), so that a burst reads it once.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(fn, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="group commit")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # the other writers of this tick add theirs
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                outcomes = await self._store.local_transaction(_run_all, batch)
            except asyncio.CancelledError:
                for write in batch + self._pending:
                    write.future.cancel()
                raise
            except Exception as exc:
                for write in batch:
                    if not write.future.done():
                        write.future.set_exception(exc)
                continue
            for write, (ok, value) in zip(batch, outcomes, strict=True):
                if write.future.done():  # its caller was cancelled; the write stands
                    continue
                if ok:
                    write.future.set_result(value)
                else:
                    write.future.set_exception(value)
