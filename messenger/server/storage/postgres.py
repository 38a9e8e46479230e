"""The PostgreSQL backend: shared by any number of server processes.

Operations run in ``READ COMMITTED`` transactions from an asyncpg pool.
Concurrency is handled by the operations themselves with row locks
(``SELECT … FOR UPDATE`` on the group row, then on queue rows in ID order)
and conditional updates, so the same operation code is correct here and on
the single-writer SQLite backend. A transaction that PostgreSQL aborts as a
deadlock or serialization failure is retried a few times. An operation of
one statement may run in autocommit instead (:meth:`PostgresDatabase.statement`),
without the ``BEGIN`` and ``COMMIT`` round trips, and a connection goes back
to the pool without asyncpg's session reset (:func:`_keep_session`).

:meth:`PostgresDatabase.listen` uses ``LISTEN``/``NOTIFY`` on a dedicated
connection so that a message stored by one process is pushed by every other
(``NOTIFY`` is delivered at commit). If that connection drops it is
re-established, and the handler receives ``"*"``, meaning "anything may have
changed".
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from .base import Database, NotificationHandler, Operation, Row, StorageError, Tx, UniqueViolation

__all__ = ["PostgresDatabase"]

T = TypeVar("T")

_log = logging.getLogger("messenger.server.storage")

_RETRIES = 5
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.TooManyConnectionsError,
)

#: Sent to handlers after the listening connection was re-established.
RESYNC = "*"


@functools.lru_cache(maxsize=512)
def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …``."""
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}")
        out.append(part)
    return "".join(out)


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """The pool's reset when a connection comes back: nothing to undo.

    asyncpg's default reset sends ``RESET ALL``, ``UNLISTEN *``, ``CLOSE
    ALL`` and an advisory unlock, one more round trip per operation. The
    operations leave no session state: settings are ``SET LOCAL``, advisory
    locks are transaction-level, ``LISTEN`` has its own connection, and
    asyncpg rolls back a transaction left open before it calls this.
    """


def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class _PgTx(Tx):
    dialect = "postgresql"
    for_update = " FOR UPDATE"
    for_update_skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        try:
            status = await self._conn.execute(_numbered(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from None
        return _rowcount(status)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            await self._conn.executemany(_numbered(sql), rows)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from None

    async def fetchall(self, sql: str, *args: object) -> list[Row]:
        try:
            return list(await self._conn.fetch(_numbered(sql), *args))
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from None

    async def fetchone(self, sql: str, *args: object) -> Row | None:
        try:
            row: Row | None = await self._conn.fetchrow(_numbered(sql), *args)
        except asyncpg.UniqueViolationError as exc:
            raise UniqueViolation(str(exc)) from None
        return row

    async def notify(self, channel: str, payload: str) -> None:
        await self._conn.execute("SELECT pg_notify($1, $2)", channel, payload)


class PostgresDatabase(Database):
    """A PostgreSQL database, possibly shared with other server processes."""

    dialect = "postgresql"

    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: asyncpg.Pool[Any] | None = None
        self._handlers: dict[str, list[NotificationHandler]] = {}
        self._listener: asyncpg.Connection[Any] | None = None
        self._listener_task: asyncio.Task[None] | None = None
        self._listener_lost = asyncio.Event()
        self._closing = False

    async def connect(self) -> None:
        self._closing = False
        self._listener_lost = asyncio.Event()
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                command_timeout=60,
                reset=_keep_session,
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {exc}") from exc

    async def close(self) -> None:
        self._closing = True
        self._listener_lost.set()
        if self._listener_task is not None:
            await self._listener_task
            self._listener_task = None
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _require_pool(self) -> asyncpg.Pool[Any]:
        if self._pool is None:
            raise StorageError("the database is closed")
        return self._pool

    async def transaction(self, op: Operation[T]) -> T:
        pool = self._require_pool()
        for attempt in range(_RETRIES):
            try:
                async with pool.acquire() as conn, conn.transaction():
                    return await op(_PgTx(conn))
            except _RETRYABLE:
                if attempt == _RETRIES - 1:
                    raise StorageError("transaction kept conflicting; giving up") from None
                await asyncio.sleep(0.005 * 2**attempt)
            except _CONNECTION_ERRORS as exc:
                raise StorageError(f"PostgreSQL is unreachable: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def statement(self, op: Operation[T]) -> T:
        """``op``'s one statement in autocommit: its own transaction, without BEGIN/COMMIT."""
        pool = self._require_pool()
        for attempt in range(_RETRIES):
            try:
                async with pool.acquire() as conn:
                    return await op(_PgTx(conn))
            except _RETRYABLE:
                if attempt == _RETRIES - 1:
                    raise StorageError("the statement kept conflicting; giving up") from None
                await asyncio.sleep(0.005 * 2**attempt)
            except _CONNECTION_ERRORS as exc:
                raise StorageError(f"PostgreSQL is unreachable: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def compact(self, tables: Sequence[str]) -> None:
        """``VACUUM FULL`` of ``tables``: each is written anew, its old files removed.

        Holds each table's exclusive lock while it is rewritten, so requests
        of other processes wait. Old row versions may still sit in the
        write-ahead log (``pg_wal``) until PostgreSQL recycles it, and in
        base backups made before.
        """
        for table in tables:
            if not table.isidentifier():
                raise StorageError(f"not a table name: {table!r}")
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                await conn.execute(f"VACUUM FULL {', '.join(tables)}")
        except _CONNECTION_ERRORS as exc:
            raise StorageError(f"PostgreSQL is unreachable: {exc}") from exc

    async def empty_log(self) -> bool:
        """Not this server's to empty: PostgreSQL's log (``pg_wal``) belongs to the
        cluster, which recycles it after its checkpoints (``checkpoint_timeout``,
        5 minutes by default; docs/self-hosting.md §7). Always False."""
        return False

    async def read(self, op: Operation[T]) -> T:
        pool = self._require_pool()
        try:
            async with pool.acquire() as conn:
                return await op(_PgTx(conn))
        except _CONNECTION_ERRORS as exc:
            raise StorageError(f"PostgreSQL is unreachable: {exc}") from exc

    async def listen(self, channel: str, handler: NotificationHandler) -> None:
        self._handlers.setdefault(channel, []).append(handler)
        if self._listener is None:
            await self._open_listener()
            self._listener_task = asyncio.create_task(self._keep_listening(), name="pg-listen")
        else:
            await self._listener.add_listener(channel, self._dispatch)

    async def _open_listener(self) -> None:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(self.dsn)
        conn.add_termination_listener(self._on_terminated)
        for channel in self._handlers:
            await conn.add_listener(channel, self._dispatch)
        self._listener = conn

    def _on_terminated(self, conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> None:
        self._listener_lost.set()

    def _dispatch(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(str(payload))
            except Exception:
                _log.exception("notification handler failed")

    async def _keep_listening(self) -> None:
        """Re-open the LISTEN connection whenever it drops."""
        delay = 0.1
        while True:
            await self._listener_lost.wait()
            if self._closing:
                return
            self._listener_lost.clear()
            _log.warning("lost the LISTEN connection; reconnecting")
            old, self._listener = self._listener, None
            if old is not None:
                with contextlib.suppress(Exception):
                    old.terminate()
            while not self._closing:
                try:
                    await self._open_listener()
                except (*_CONNECTION_ERRORS, asyncpg.PostgresError):
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                delay = 0.1
                for channel in self._handlers:
                    self._dispatch(None, 0, channel, RESYNC)
                break
