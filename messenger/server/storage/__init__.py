"""Storage: one interface (:class:`Database`, :class:`Tx`), two backends.

SQLite (embedded, the default) and PostgreSQL (for several processes), chosen
by the database URL; versioned migrations in :mod:`.migrations`.

The PostgreSQL backend needs asyncpg, which only the home server's extra
(``pip install 'messenger[server]'``) installs: the desktop app, which runs
its own server on SQLite, does not carry it. So :mod:`.postgres` is imported
only when a ``postgresql://`` URL is opened (or ``PostgresDatabase`` /
``RESYNC`` is asked for by name).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from .base import Database, NotificationHandler, Operation, Row, StorageError, Tx, UniqueViolation
from .migrations import LATEST_VERSION, migrate
from .sqlite import SqliteDatabase

if TYPE_CHECKING:
    from .postgres import RESYNC, PostgresDatabase

__all__ = [
    "LATEST_VERSION",
    "RESYNC",
    "Database",
    "NotificationHandler",
    "Operation",
    "PostgresDatabase",
    "Row",
    "SqliteDatabase",
    "StorageError",
    "Tx",
    "UniqueViolation",
    "migrate",
    "open_database",
]

#: The names this package takes from :mod:`.postgres` on first use.
_POSTGRES_NAMES = frozenset({"RESYNC", "PostgresDatabase"})
#: Said when asyncpg is missing and a PostgreSQL URL is configured.
_NO_ASYNCPG = (
    "PostgreSQL needs the asyncpg package, which this installation does not have: "
    "install the home server with pip install 'messenger[server]' (or use a sqlite:// URL)"
)


def _postgres_module() -> ModuleType:
    """:mod:`.postgres`, imported now; a sentence naming the extra if asyncpg is missing."""
    try:
        return importlib.import_module(".postgres", __name__)
    except ImportError as exc:
        # asyncpg missing, or the backend itself left out (the desktop bundle)
        if exc.name is not None and (
            exc.name.split(".")[0] == "asyncpg" or exc.name == f"{__name__}.postgres"
        ):
            raise StorageError(_NO_ASYNCPG) from exc
        raise


def __getattr__(name: str) -> object:
    # PEP 562: PostgresDatabase and RESYNC are loaded (with asyncpg) on first use.
    if name in _POSTGRES_NAMES:
        return getattr(_postgres_module(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_database(url: str, pool_size: int = 10) -> Database:
    """The backend for ``url`` (``sqlite://…`` or ``postgresql://…``), not yet connected.

    Raises :class:`StorageError` naming ``messenger[server]`` when the URL is
    a PostgreSQL one and asyncpg is not installed.
    """
    if url.startswith("sqlite://"):
        return SqliteDatabase.from_url(url)
    if url.startswith(("postgresql://", "postgres://")):
        _postgres_module()
        from .postgres import PostgresDatabase

        return PostgresDatabase(url, pool_size)
    raise StorageError("the database URL must start with sqlite:// or postgresql://")
