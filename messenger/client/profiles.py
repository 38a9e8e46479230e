"""Profiles: one directory per account on this machine.

The data directory is, in order of precedence, the path given to
:class:`Profiles`, the ``MESSENGER_HOME`` environment variable, or the
per-user data directory of the OS (platformdirs, app name "Messenger":
``~/.local/share/Messenger`` on Linux, ``~/Library/Application Support/
Messenger`` on macOS, ``%LOCALAPPDATA%\\Messenger`` on Windows).

Layout::

    <data dir>/profiles/<name>/
        profile.json    id, name, creation time (no secrets)
        store.db        the SQLCipher database (plus -wal and -shm files)
        store.key       the database key wrapped by the recovery passphrase
        profile.lock    held (an OS file lock) by the one process that has it open

:class:`ProfileLock` keeps a profile to one process at a time: two processes
syncing one profile would each take a share of its messages from the server
queue. The lock is ``fcntl.flock`` on POSIX and ``msvcrt.locking`` on
Windows; the OS drops it when the process ends, however it ends.

The profile ``id`` is random and names the profile's OS keyring entry, so a
profile that is deleted and created again under the same name never picks
up the old key.

File modes (POSIX): a data directory the app creates, ``profiles/`` and
every profile directory are 0700 from their creation, and every file in a
profile is created 0600 (:func:`write_file_atomically`; the database in
:mod:`.store.database`). ``profiles/``, a profile directory and its
``profile.json`` and ``store.key`` that an older version left group- or
world-accessible are tightened when the profile is used; a data
directory that already existed (``--data-dir``, ``MESSENGER_HOME``) is not
changed, since the user may have made it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import platformdirs

from .errors import (
    DiskFullError,
    InvalidProfileNameError,
    ProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
    StoreBusyError,
)

if TYPE_CHECKING:
    from .store.keychain import Keychain

__all__ = [
    "APP_NAME",
    "HOME_ENV",
    "Profile",
    "ProfileLock",
    "Profiles",
    "default_data_dir",
    "write_file_atomically",
]

APP_NAME: Final = "Messenger"
HOME_ENV: Final = "MESSENGER_HOME"

_PROFILES_DIR: Final = "profiles"
_METADATA: Final = "profile.json"
_KEY_WRAP: Final = "store.key"
_LOCK: Final = "profile.lock"
_FORMAT: Final = "messenger-profile"
_VERSION: Final = 1

_log = logging.getLogger(__name__)

# Letters, digits, space, dot, dash, underscore; starts with a letter or a
# digit; never ends with a space or a dot (Windows drops those).
_NAME_RE: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9_-])?")
# Device names that Windows refuses as file names, whatever the extension.
_RESERVED: Final = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)


def default_data_dir() -> Path:
    """``$MESSENGER_HOME`` if set, else the OS's per-user data directory."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False))


def check_profile_name(name: str) -> str:
    """Return ``name`` if it can name a profile, else raise InvalidProfileNameError."""
    if not _NAME_RE.fullmatch(name) or name.split(".")[0].lower() in _RESERVED:
        raise InvalidProfileNameError(f"invalid profile name {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class Profile:
    """One profile directory and what ``profile.json`` says about it."""

    name: str
    id: str
    """Random hex; names the OS keyring entry of the database key."""
    path: Path
    created_at: int
    """Unix time in milliseconds."""

    @property
    def db_path(self) -> Path:
        return self.path / "store.db"

    @property
    def db_files(self) -> tuple[Path, Path, Path]:
        """The database and its WAL and shared-memory files."""
        db = self.db_path
        return (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))

    @property
    def key_wrap_path(self) -> Path:
        return self.path / _KEY_WRAP

    @property
    def metadata_path(self) -> Path:
        return self.path / _METADATA


class Profiles:
    """The profiles under one data directory."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = data_dir if data_dir is not None else default_data_dir()
        self.root = self.data_dir / _PROFILES_DIR

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.all())

    def all(self) -> list[Profile]:
        """Every readable profile, sorted by name (damaged ones are left out)."""
        if not self.root.is_dir():
            return []
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_dir() and (entry / _METADATA).is_file():
                try:
                    found.append(self._load(entry))
                except ProfileError:
                    continue
        return found

    def exists(self, name: str) -> bool:
        """Whether a profile of this name exists (case-insensitively, as on macOS/Windows)."""
        check_profile_name(name)
        return self._find_dir(name) is not None

    def get(self, name: str) -> Profile:
        """The profile called ``name``; ProfileNotFoundError if there is none."""
        check_profile_name(name)
        path = self.root / name
        if not (path / _METADATA).is_file():
            raise ProfileNotFoundError(f"no profile {name!r}")
        _tighten_dir(self.root)
        return self._load(path)

    def create(self, name: str, *, now_ms: int | None = None) -> Profile:
        """Make an empty profile directory (no store yet: see ``Store.create``)."""
        check_profile_name(name)
        if self._find_dir(name) is not None:
            raise ProfileExistsError(f"profile {name!r} exists")
        created_at = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        profile = Profile(
            name=name, id=secrets.token_hex(16), path=self.root / name, created_at=created_at
        )
        try:
            _make_private_dir(self.data_dir)
            _make_private_dir(self.root)
            _tighten_dir(self.root)
            profile.path.mkdir(mode=0o700)
        except FileExistsError as exc:
            raise ProfileExistsError(f"profile {name!r} exists") from exc
        except OSError as exc:
            raise _os_error(exc, "could not create the profile directory") from exc
        metadata = {
            "format": _FORMAT,
            "version": _VERSION,
            "id": profile.id,
            "name": profile.name,
            "created_at": profile.created_at,
        }
        try:
            write_file_atomically(profile.metadata_path, json.dumps(metadata).encode())
        except BaseException:
            shutil.rmtree(profile.path, ignore_errors=True)
            raise
        return profile

    def delete(self, name: str, *, keychain: Keychain | None = None) -> None:
        """Remove the profile directory and, if given a keychain, its keyring entry.

        A keyring that cannot be reached is ignored: the key it may still
        hold opens nothing once the database is gone.
        """
        profile = self.get(name)
        if keychain is not None:
            keychain.forget(profile.id)
        try:
            shutil.rmtree(profile.path)
        except OSError as exc:
            raise _os_error(exc, "could not delete the profile directory") from exc

    def _find_dir(self, name: str) -> Path | None:
        if not self.root.is_dir():
            return None
        folded = name.casefold()
        for entry in self.root.iterdir():
            if entry.name.casefold() == folded:
                return entry
        return None

    def _load(self, path: Path) -> Profile:
        try:
            data = json.loads((path / _METADATA).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ProfileError(f"unreadable profile.json in {path}") from exc
        _tighten_dir(path)
        for name in (_METADATA, _KEY_WRAP):
            _tighten(path / name, 0o600, stat.S_ISREG)
        if (
            not isinstance(data, dict)
            or data.get("format") != _FORMAT
            or not isinstance(data.get("id"), str)
            or not isinstance(data.get("created_at"), int)
        ):
            raise ProfileError(f"invalid profile.json in {path}")
        if data.get("version") != _VERSION:
            raise ProfileError(
                f"profile.json version {data.get('version')!r} in {path}",
                user_message="This profile was made by a newer version of Messenger.",
            )
        return Profile(name=path.name, id=data["id"], path=path, created_at=data["created_at"])


class ProfileLock:
    """One process per profile: an exclusive OS lock on ``profile.lock``.

    :meth:`acquire` raises StoreBusyError (a sentence naming the profile)
    at once if another process holds it; :meth:`release` (or the process
    ending) lets it go. A lock is for one holder: acquire it once.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            return
        path = self.profile.path / _LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _os_error(exc, "could not open the profile's lock file") from exc
        try:
            _lock_file(fd)
        except OSError:
            os.close(fd)
            raise StoreBusyError(
                f"profile {self.profile.name!r} is locked by another process",
                user_message=(
                    f"Profile {self.profile.name!r} is open in another Messenger process "
                    "(the app or messenger-cli). Close it, or wait for it to finish, "
                    "and try again."
                ),
            ) from None
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file releases the lock

    def __enter__(self) -> ProfileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _lock_file(fd: int) -> None:
    """Lock ``fd`` exclusively without waiting (OSError if another process has it)."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step (temp file, fsync, rename).

    Readers see either the old file or the new one, never a mix; the file
    is readable by its owner only.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_error(exc, f"could not write {path.name}") from exc
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX; Windows has no directory handles)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_private_dir(path: Path) -> None:
    """Create ``path`` 0700 if it is missing (its missing parents get the umask's mode)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _tighten_dir(path: Path) -> None:
    """Make a directory the app made owner-only if an older version left it open (POSIX)."""
    _tighten(path, 0o700, stat.S_ISDIR)


def _tighten(path: Path, private: int, kind: Callable[[int], bool]) -> None:
    if os.name != "posix":
        return
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if kind(mode) and mode & 0o077:
        try:
            os.chmod(path, private)
        except OSError as exc:
            _log.warning("could not make %s private: %s", path, exc.strerror)


def _os_error(exc: OSError, what: str) -> ProfileError | DiskFullError:
    if exc.errno == errno.ENOSPC:
        return DiskFullError(what)
    return ProfileError(f"{what}: {exc.strerror or exc}")
