"""Files holding keys or messages are the user's alone: 0600 files in 0700 directories.

Checked with a permissive umask (0o000), so that the modes come from how
the files are created and not from the test machine's umask. The client
keeps no other files: the database key lives in the OS keyring (the
``keyring`` package's backends, never a file of ours) and the client logs
through ``logging`` to the handlers the application sets up, never to a
file of its own.

The operations run everywhere; the mode assertions apply on POSIX only,
because Windows has no permission bits (files there are protected by the
ACL of the user's profile directory).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from messenger.client import Profiles, export_backup, restore_backup
from messenger.client.store import Keychain, Store

from .helpers import FAST_KDF, PASSPHRASE, add_text, direct_conversation

POSIX = os.name == "posix"
BACKUP_PASSPHRASE = "backup passphrase 123"


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: only explicit modes protect the files."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private_tree(root: Path) -> list[str]:
    """Every directory under ``root`` (itself too) is 0700, every file 0600; their names."""
    assert root.is_dir()
    seen = []
    for path in [root, *sorted(root.rglob("*"))]:
        seen.append(path.name)
        if not POSIX:  # modes mean nothing on Windows: see the module docstring
            continue
        expected = 0o700 if path.is_dir() else 0o600
        assert mode(path) == expected, f"{path} is {oct(mode(path))}, not {oct(expected)}"
    return seen


def test_a_new_store_is_private(tmp_path: Path, keychain: Keychain) -> None:
    profiles = Profiles(tmp_path / "data")
    profile = profiles.create("alice")
    with Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF) as store:
        add_text(store, direct_conversation(store).id, "a message for alice only")
        names = assert_private_tree(profiles.data_dir)
        # The database and the sidecars SQLite made while it is open.
        assert {"store.db", "store.db-wal", "store.db-shm", "store.key"} <= set(names)


def test_old_loose_files_are_tightened_when_opened(tmp_path: Path, keychain: Keychain) -> None:
    """A profile an older version left 0755/0644 is made private when it is next used."""
    profiles = Profiles(tmp_path / "data")
    profile = profiles.create("alice")
    Store.create(profile, PASSPHRASE, keychain=keychain, kdf=FAST_KDF).close()
    for path in (profiles.root, profile.path):
        path.chmod(0o755)
    for path in profile.path.iterdir():
        path.chmod(0o644)
    with Store.open(profiles.get("alice"), keychain=keychain) as store:
        add_text(store, direct_conversation(store).id, "written after the upgrade")
        assert_private_tree(profiles.root)


def test_backup_and_restore_write_private_files(store: Store, tmp_path: Path) -> None:
    add_text(store, direct_conversation(store).id, "in the backup")
    backup = tmp_path / "exports" / "alice.msgbackup"
    backup.parent.mkdir()
    export_backup(store, backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    if POSIX:
        assert mode(backup) == 0o600
    assert [p.name for p in backup.parent.iterdir()] == [backup.name]

    profiles = Profiles(tmp_path / "new-machine")
    restored = restore_backup(
        backup, BACKUP_PASSPHRASE, profiles, "alice", "new recovery 123", kdf=FAST_KDF
    )
    names = assert_private_tree(profiles.data_dir)
    assert {"store.db", "store.key", "profile.json"} <= set(names)
    with Store.open(restored, keychain=Keychain()) as opened:
        opened.settings.set("after.restore", 1)
        assert_private_tree(profiles.data_dir)
