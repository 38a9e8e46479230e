"""The server's files are its user's alone: 0600 files in a 0700 data directory.

The data directory holds the SQLite database (every queued message, with
its -wal and -shm files and the process lock) and the master secret that
signs credentials. Checked with a permissive umask (0o000), so the modes
come from how the files are created. The server logs to standard error
only, so there is no log file to check.

The servers run everywhere; the mode assertions apply on POSIX only,
because Windows has no permission bits.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.server import ServerConfig
from messenger.server.state import ServerState
from messenger.server.storage import SqliteDatabase

pytestmark = pytest.mark.anyio

POSIX = os.name == "posix"


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: only explicit modes protect the files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def assert_private_tree(root: Path) -> set[str]:
    """``root`` and every directory in it are 0700, every file 0600; the names in it."""
    names = set()
    for path in [root, *sorted(root.rglob("*"))]:
        names.add(path.name)
        if not POSIX:  # modes mean nothing on Windows: see the module docstring
            continue
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, f"{path} is {oct(mode(path))}, not {oct(expected)}"
    return names


async def _write_something(state: ServerState) -> None:
    """A write, so that SQLite has its WAL and shared-memory files in use."""
    rows = await state.db.read(lambda tx: tx.fetchall("SELECT name FROM sqlite_master"))
    assert rows


async def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "srv" / "data"
    state = ServerState(ServerConfig(data_dir=data), run_sweeper=False)
    await state.start()
    try:
        await _write_something(state)
        names = assert_private_tree(data)
    finally:
        await state.stop()
    expected = {
        "messenger.db",
        "messenger.db-wal",
        "messenger.db-shm",
        "messenger.db.lock",
        "server-secret.key",
    }
    assert expected <= names


async def test_old_loose_files_are_tightened_on_start(tmp_path: Path) -> None:
    """A data directory an older version left 0755 with 0644 files is made private."""
    data = tmp_path / "data"
    state = ServerState(ServerConfig(data_dir=data), run_sweeper=False)
    await state.start()
    await state.stop()
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)

    state = ServerState(ServerConfig(data_dir=data), run_sweeper=False)
    await state.start()
    try:
        await _write_something(state)
        assert_private_tree(data)
    finally:
        await state.stop()


async def test_a_secret_key_file_elsewhere_is_private(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "etc" / "messenger"
    config = ServerConfig(
        data_dir=tmp_path / "data", secret_key_file=str(secrets_dir / "secret.key")
    )
    state = ServerState(config, run_sweeper=False)
    await state.start()
    await state.stop()
    assert assert_private_tree(secrets_dir) >= {"secret.key"}
    assert_private_tree(tmp_path / "data")


async def test_a_sqlite_url_in_a_new_directory_is_private(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    database = SqliteDatabase.from_url(f"sqlite:///{db_dir / 'other.db'}")
    await database.connect()
    try:
        await database.transaction(lambda tx: tx.execute("CREATE TABLE t (x INTEGER)"))
        names = assert_private_tree(db_dir)
    finally:
        await database.close()
    assert {"other.db", "other.db-wal", "other.db-shm", "other.db.lock"} <= names
