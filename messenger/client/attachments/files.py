"""Where attachments live on this device (docs/attachments.md §4, §5).

Layout inside the profile directory::

    attachments/            0700
        <32 hex>.blob       0600: one attachment's encrypted blob (ciphertext only)
        open/               0700: files decrypted for the system viewer;
                            emptied when the client closes and on start

A blob's file name is random and chosen here (:func:`new_local_file`);
the store keeps it in ``attachments.local_file``. :func:`attachment_file`
turns such a name into a path and refuses any other name, so that a value
from the database (or, by a bug, from the network) can never point outside
this directory. A name the sender gave a file is never used as a path,
except sanitised (:func:`~.media.safe_file_name`) inside ``open/``.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Final

__all__ = [
    "ATTACHMENTS_DIR",
    "attachment_file",
    "attachments_dir",
    "clear_open_dir",
    "new_local_file",
    "open_dir",
    "remove_attachment_files",
    "save_decrypted",
]

ATTACHMENTS_DIR: Final = "attachments"
_OPEN_DIR: Final = "open"
_NAME: Final = re.compile(r"[0-9a-f]{32}\.blob")

_log = logging.getLogger(__name__)


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    if os.name == "posix" and path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def attachments_dir(profile_dir: Path) -> Path:
    """The profile's ``attachments/`` directory (made 0700 if missing)."""
    return _private_dir(profile_dir / ATTACHMENTS_DIR)


def new_local_file() -> str:
    """A fresh random name for a blob file."""
    return f"{secrets.token_hex(16)}.blob"


def attachment_file(profile_dir: Path, local_file: str) -> Path:
    """The path of the blob file ``local_file`` in ``<profile dir>/attachments/``.

    ValueError for any name :func:`new_local_file` does not make.
    """
    if not _NAME.fullmatch(local_file):
        raise ValueError("not the name of an attachment file")
    return profile_dir / ATTACHMENTS_DIR / local_file


def remove_attachment_files(profile_dir: Path, local_files: Iterable[str]) -> None:
    """Delete blob files (those missing, or with names not made here, are skipped)."""
    for name in local_files:
        try:
            path = attachment_file(profile_dir, name)
        except ValueError:
            _log.warning("refused to delete an attachment file with a foreign name")
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            _log.warning("could not delete an attachment file: %s", exc.strerror)


def open_dir(profile_dir: Path) -> Path:
    """The private directory of files decrypted for the system viewer (0700)."""
    attachments_dir(profile_dir)
    return _private_dir(profile_dir / ATTACHMENTS_DIR / _OPEN_DIR)


def clear_open_dir(profile_dir: Path) -> None:
    """Empty the directory of decrypted files (on close, and on start)."""
    path = profile_dir / ATTACHMENTS_DIR / _OPEN_DIR
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def save_decrypted(blob: Path, key: bytes, size: int, destination: Path) -> None:
    """Decrypt ``blob`` to ``destination``: into a temporary file beside it, then renamed.

    ``destination`` is either the whole file or untouched (AttachmentCorruptError
    if the blob fails a check; OSError if the place cannot be written).
    """
    from .crypto import decrypt_to

    tmp = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.part")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        with os.fdopen(os.open(tmp, flags, 0o600), "wb") as out:
            decrypt_to(blob, key, size, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
