"""The one storage interface, implemented by the SQLite and PostgreSQL backends.

The server's logic is written once, as *operations*: coroutines that take a
:class:`Tx` and run SQL through it. A :class:`Database` runs an operation
either as one atomic write transaction (:meth:`Database.transaction`) or as a
read (:meth:`Database.read`). SQL is written once with ``?`` placeholders in
the subset that both SQLite (3.35+) and PostgreSQL understand (``RETURNING``,
``ON CONFLICT DO NOTHING``); the few differences are exposed as attributes of
:class:`Tx` (row locking clauses).

Durability: an operation's effects are on disk when ``transaction`` returns.
SQLite runs in WAL mode with ``synchronous=FULL``; PostgreSQL commits with
its default ``synchronous_commit=on``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

__all__ = [
    "Database",
    "NotificationHandler",
    "Operation",
    "Row",
    "StorageError",
    "Tx",
    "UniqueViolation",
]

T = TypeVar("T")

#: A result row; columns by position.
Row = Sequence[Any]

#: Called with the payload of a cross-process notification.
NotificationHandler = Callable[[str], None]


class StorageError(Exception):
    """The database failed (unreachable, corrupt, misconfigured)."""


class UniqueViolation(StorageError):
    """An insert or update broke a UNIQUE or PRIMARY KEY constraint."""


class Tx(abc.ABC):
    """A connection inside one transaction (or one read)."""

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: str
    #: Appended to a SELECT that must lock the rows it reads until commit.
    for_update: str
    #: Like :attr:`for_update`, but skips rows that another transaction holds.
    for_update_skip_locked: str

    @abc.abstractmethod
    async def execute(self, sql: str, *args: object) -> int:
        """Run one statement; the number of rows it changed."""

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run one statement for each parameter row."""

    @abc.abstractmethod
    async def fetchone(self, sql: str, *args: object) -> Row | None:
        """The first row of a query, or ``None``."""

    @abc.abstractmethod
    async def fetchall(self, sql: str, *args: object) -> list[Row]:
        """Every row of a query."""

    @abc.abstractmethod
    async def notify(self, channel: str, payload: str) -> None:
        """Tell other server processes something once this transaction commits.

        A backend whose database serves one process only does nothing.
        """


#: An operation: the server logic that runs inside one transaction. It may
#: await only the methods of its Tx (the SQLite writer drives it without an
#: event loop).
Operation = Callable[[Tx], Coroutine[Any, Any, T]]


class Database(abc.ABC):
    """A connected database."""

    dialect: str

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections (called once, before anything else)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection; pending transactions finish first."""

    @abc.abstractmethod
    async def transaction(self, op: Operation[T]) -> T:
        """Run ``op`` atomically and durably; an exception from it rolls it back."""

    async def statement(self, op: Operation[T]) -> T:
        """Run ``op``, which issues exactly one statement, atomically and durably.

        One statement is atomic by itself, so a backend may run it without
        an explicit transaction: PostgreSQL runs it in autocommit, two round
        trips (``BEGIN``, ``COMMIT``) fewer than :meth:`transaction`. By
        default it is :meth:`transaction`. An ``op`` that issues more than
        one statement must use :meth:`transaction`. On PostgreSQL the
        statement may relax its own durability the way ``SET LOCAL`` does in
        a transaction, with ``set_config('synchronous_commit', 'off', true)``
        (the request nonces do, :mod:`messenger.server.authentication`);
        that lasts for this statement only.
        """
        return await self.transaction(op)

    async def without_foreign_keys(self, op: Operation[T]) -> T:
        """Run ``op`` as :meth:`transaction`, with foreign-key actions off where needed.

        For schema migrations that rebuild a table (SQLite has no ``ALTER
        COLUMN``): dropping the old copy of a parent table must not cascade to
        its children. Where the backend changes tables in place (PostgreSQL)
        this is :meth:`transaction`. The foreign keys must hold when ``op``
        ends, or nothing is committed.
        """
        return await self.transaction(op)

    @abc.abstractmethod
    async def read(self, op: Operation[T]) -> T:
        """Run a read-only ``op`` (it sees only committed data)."""

    @abc.abstractmethod
    async def compact(self, tables: Sequence[str]) -> None:
        """Rewrite ``tables`` so that the database files keep no copy of rows deleted or changed.

        Deleting a row or sealing a value in place leaves the old bytes in
        the files (free pages, dead tuples) where a copy of them would
        still show them. This takes exclusive locks and time in proportion
        to the data: the server runs it once after an upgrade that sealed
        rows from before (:class:`messenger.server.state.ServerState`).
        ``tables`` are the server's own table names.
        """

    @abc.abstractmethod
    async def empty_log(self) -> bool:
        """Empty the write-ahead log of the transactions already applied; whether it is empty.

        A write-ahead log keeps the pages each transaction wrote, in the
        order it wrote them, until they are overwritten: one send's queue
        entries side by side, which group the queues that received a message
        for whoever copies the file (docs/metadata.md §2). The server calls
        this at each retention sweep, so a copy shows at most the last
        interval's. Cheap and non-blocking: a log that readers still need is
        left for the next call (False).
        """

    @abc.abstractmethod
    async def listen(self, channel: str, handler: NotificationHandler) -> None:
        """Call ``handler`` for every :meth:`Tx.notify` on ``channel`` by any process."""

    async def ping(self) -> bool:
        """Whether the database answers."""

        async def op(tx: Tx) -> bool:
            row = await tx.fetchone("SELECT 1")
            return row is not None and row[0] == 1

        try:
            return await self.read(op)
        except Exception:
            return False
