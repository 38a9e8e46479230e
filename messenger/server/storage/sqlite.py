"""The SQLite backend: embedded, one server process, WAL with ``synchronous=FULL``.

Writes go through one connection on one writer thread and are
*group-committed*: operations that arrive while a transaction is running are
run together in the next one, each inside its own ``SAVEPOINT`` so that a
failing operation rolls back only its own changes. Every caller is answered
after the ``COMMIT`` that holds its operation, so an acknowledged write
survives ``kill -9`` and power loss (``synchronous=FULL`` syncs the WAL at
every commit).

The writer runs a whole batch in one hop to its thread: an operation is a
coroutine that awaits only its :class:`Tx`, and the writer's ``Tx`` does its
work without ever suspending, so the batch drives each operation to the end
synchronously (:func:`_drive`). With one thread hop per statement (what
aiosqlite does) the writer was bound by hops, not by SQLite. Reads go
through aiosqlite connections, which WAL lets run beside the writer.

Only one process may serve a database file: a second one would not see the
first one's pushes. An exclusive lock on ``<file>.lock`` enforces this.
Admin commands (``messenger-server mint-invite``, ``migrate``) open the
database with ``exclusive=False``: they do not take the lock, so they run
beside a serving process, each write a short WAL transaction that waits its
turn (``busy_timeout``); :meth:`SqliteDatabase.in_use` tells whether a
server holds the lock.

The database holds every queued message, so its files are the server
user's alone (POSIX): a missing directory is created 0700, the lock file and
an empty database file are created 0600 before SQLite opens it, and SQLite
gives the -wal and -shm files the database file's mode. Files an older
version left readable by others are tightened to 0600 on connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sqlite3
import stat
import sys
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .base import Database, NotificationHandler, Operation, Row, StorageError, Tx, UniqueViolation

__all__ = ["SqliteDatabase"]

T = TypeVar("T")

_READERS = 2
#: How long a statement waits for a lock another connection holds.
_BUSY_TIMEOUT_MS = 10_000
_PRIVATE_FILE = 0o600
_SIDECARS = ("-wal", "-shm", "-journal", ".lock")


def _create_private_files(path: Path) -> None:
    """Create the directory (0700) and an empty database file (0600), make old ones private."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_FILE))
    if os.name != "posix":  # pragma: no cover - the server runs on POSIX
        return
    for file in (path, *(path.with_name(path.name + s) for s in _SIDECARS)):
        try:
            st = os.lstat(file)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(file, _PRIVATE_FILE)


class _SqliteTx(Tx):
    dialect = "sqlite"
    for_update = ""
    for_update_skip_locked = ""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        try:
            cursor = await self._conn.execute(sql, args)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(str(exc)) from None
            raise
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(str(exc)) from None
            raise

    async def fetchall(self, sql: str, *args: object) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, args))
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(str(exc)) from None
            raise

    async def fetchone(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetchall(sql, *args)
        return rows[0] if rows else None

    async def notify(self, channel: str, payload: str) -> None:
        """One process per database: the in-process push hub is enough."""


class _WriterTx(Tx):
    """The writer thread's Tx: every method completes without suspending."""

    dialect = "sqlite"
    for_update = ""
    for_update_skip_locked = ""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: object) -> int:
        try:
            return self._conn.execute(sql, args).rowcount
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(str(exc)) from None
            raise

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(str(exc)) from None
            raise

    async def fetchall(self, sql: str, *args: object) -> list[Row]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation(str(exc)) from None
            raise

    async def fetchone(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetchall(sql, *args)
        return rows[0] if rows else None

    async def notify(self, channel: str, payload: str) -> None:
        """One process per database: the in-process push hub is enough."""


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, on this thread."""
    try:
        coro.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    coro.close()
    raise RuntimeError("a storage operation may await only its Tx")


_Outcome = tuple[BaseException | None, Any]


class _Pending:
    __slots__ = ("future", "op")

    def __init__(self, op: Operation[Any], future: asyncio.Future[Any]) -> None:
        self.op = op
        self.future = future


class SqliteDatabase(Database):
    """A SQLite database file served by this process alone."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, exclusive: bool = True) -> None:
        self.path = path
        self.exclusive = exclusive
        self._writer: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._readers: list[aiosqlite.Connection] = []
        self._next_reader = itertools.cycle(range(_READERS))
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None

    @classmethod
    def from_url(cls, url: str, *, exclusive: bool = True) -> SqliteDatabase:
        """``sqlite:///absolute/path`` or ``sqlite://relative/path``."""
        path = url.removeprefix("sqlite://")
        if not path or path in (":memory:", "/:memory:"):
            raise StorageError("the SQLite backend needs a file path")
        return cls(Path(path), exclusive=exclusive)

    def _open_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # A deleted row's bytes are overwritten with zeros, not left in free
        # space where a copy of the file would still show them (the
        # write-ahead log keeps recent page images until it is overwritten).
        conn.execute("PRAGMA secure_delete=ON")
        return conn

    async def connect(self) -> None:
        self._closing = False
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        try:
            if self.exclusive:
                self._take_process_lock()
            _create_private_files(self.path)
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            self._writer = await loop.run_in_executor(self._executor, self._open_writer)
            for _ in range(_READERS):
                reader = await aiosqlite.connect(self.path, isolation_level=None)
                await reader.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
                await reader.execute("PRAGMA query_only=ON")
                self._readers.append(reader)
        except (OSError, sqlite3.Error) as exc:
            await self.close()
            raise StorageError(f"cannot open {self.path}: {exc}") from exc
        self._task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    def in_use(self) -> bool:
        """Whether a server process holds this database's lock right now."""
        if sys.platform == "win32":  # pragma: no cover - the server runs on POSIX
            return False
        import fcntl

        try:
            fd = os.open(f"{self.path}.lock", os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # closing the descriptor releases a lock taken here
        return False

    def _take_process_lock(self) -> None:
        if sys.platform == "win32":  # pragma: no cover - the server runs on POSIX
            return
        import fcntl

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, _PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StorageError(
                f"{self.path} is in use by another server process; "
                "use PostgreSQL to run several processes"
            ) from None
        self._lock_fd = fd

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await reader.close()
        self._readers = []
        if self._executor is not None:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                with contextlib.suppress(Exception):
                    await asyncio.get_running_loop().run_in_executor(self._executor, writer.close)
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def transaction(self, op: Operation[T]) -> T:
        if self._closing or self._writer is None:
            raise StorageError("the database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(op, future))
        self._wake.set()
        return await future

    async def without_foreign_keys(self, op: Operation[T]) -> T:
        """:meth:`transaction` with ``PRAGMA foreign_keys`` off, then checked.

        The writer thread runs one job at a time, so no batch runs while
        enforcement is off; ``PRAGMA foreign_key_check`` must find nothing
        before the transaction commits.
        """
        if self._closing or self._writer is None or self._executor is None:
            raise StorageError("the database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_without_foreign_keys, op)

    def _run_without_foreign_keys(self, op: Operation[T]) -> T:
        conn = self._writer
        assert conn is not None
        try:
            conn.execute("PRAGMA foreign_keys=OFF")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    value = _drive(op(_WriterTx(conn)))
                    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StorageError(
                            f"a foreign key does not hold after the change: {broken[0]}"
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite transaction failed: {exc}") from exc
        return value

    async def read(self, op: Operation[T]) -> T:
        if not self._readers:
            raise StorageError("the database is closed")
        return await op(_SqliteTx(self._readers[next(self._next_reader)]))

    async def compact(self, tables: Sequence[str]) -> None:
        """``VACUUM`` the whole file (SQLite rewrites it all), then empty the log.

        Runs on the writer's thread between two batches, so no transaction
        is open; ``tables`` are all in the one file.
        """
        if self._closing or self._writer is None or self._executor is None:
            raise StorageError("the database is closed")
        writer = self._writer

        def vacuum() -> None:
            writer.execute("VACUUM")
            busy, _log, _done = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise StorageError("the write-ahead log could not be emptied: a reader held it")

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, vacuum)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot compact {self.path}: {exc}") from exc

    async def empty_log(self) -> bool:
        """``wal_checkpoint(TRUNCATE)`` on the writer's thread, between two batches:
        the log's pages are copied into the database file and the log cut to
        zero bytes. Without waiting: if a reader still uses the log, it is
        left for the next call."""
        if self._closing or self._writer is None or self._executor is None:
            raise StorageError("the database is closed")
        writer = self._writer

        def truncate() -> bool:
            writer.execute("PRAGMA busy_timeout=0")
            try:
                busy, _log, _done = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                writer.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            return not busy

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, truncate)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot empty the log of {self.path}: {exc}") from exc

    async def listen(self, channel: str, handler: NotificationHandler) -> None:
        """Nothing to listen to: this process makes every change itself."""

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [p for p in self._pending if not p.future.cancelled()]
                self._pending = []
                if not batch:
                    continue
                assert self._executor is not None
                try:
                    outcomes = await loop.run_in_executor(
                        self._executor, self._run_batch, [p.op for p in batch]
                    )
                except StorageError as exc:
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                for pending, (failure, value) in zip(batch, outcomes, strict=True):
                    if pending.future.done():
                        continue
                    if failure is not None:
                        pending.future.set_exception(failure)
                    else:
                        pending.future.set_result(value)
            if self._closing:
                return

    def _run_batch(self, ops: list[Operation[Any]]) -> list[_Outcome]:
        """One transaction holding every operation of the batch (writer thread)."""
        conn = self._writer
        assert conn is not None
        tx = _WriterTx(conn)
        outcomes: list[_Outcome] = []
        single = len(ops) == 1
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                if not single:
                    conn.execute("SAVEPOINT op")
                try:
                    value: Any = _drive(op(tx))
                except Exception as exc:
                    if not single:
                        conn.execute("ROLLBACK TO op")
                        conn.execute("RELEASE op")
                    outcomes.append((exc, None))
                else:
                    if not single:
                        conn.execute("RELEASE op")
                    outcomes.append((None, value))
            if single and outcomes[0][0] is not None:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise StorageError(f"SQLite transaction failed: {exc}") from exc
        return outcomes
