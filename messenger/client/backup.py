"""Encrypted backups: a whole profile in one passphrase-protected file.

Export (:func:`export_backup`) copies the open database with
``sqlcipher_export`` into a temporary SQLCipher file under a fresh random
key (so no plaintext ever touches the disk), then writes that key and that
file into the backup, encrypted under the backup passphrase. Restore
(:func:`restore_backup`) reverses it into a *new* profile (a new profile id,
a new database key, a new recovery file and keyring entry), typically on
another machine.

File format, version 1 (all integers big-endian)::

    magic        8 bytes   b"MSGRBKUP"
    header_len   u32
    header       JSON: {"format": "messenger-backup", "version": 1,
                        "kdf": {"name": "scrypt", "n", "r", "p", "salt"},
                        "aead": "chacha20-poly1305", "chunk_size": 65536,
                        "nonce_prefix": "<7 bytes, b64>"}
    check        32 bytes  HMAC-SHA256(mac_key, magic || header_len || header)
    chunks       u32 length (top bit: last chunk) || ciphertext, ...

``enc_key || mac_key`` = scrypt(passphrase, salt, 64 bytes). ``check`` tells
a wrong passphrase (:class:`WrongBackupPassphraseError`) from a damaged file
(:class:`BackupCorruptError`) before anything is decrypted. The payload is
then the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):
chunk ``i`` is ChaCha20-Poly1305 under ``enc_key`` with nonce
``nonce_prefix || u32 i || last flag`` and SHA-256 of everything before
``check`` as associated data, so chunks cannot be altered, reordered,
dropped, or truncated off the end, and nothing may follow the last chunk.

The decrypted payload::

    meta_len u32 || meta JSON {"profile_name", "schema_version", "exported_at",
                               "db_size"} || snapshot key (32 bytes) || snapshot file

A restored profile with an account is marked to *register as a new device*
of the account (:data:`~.restore_device.RESTORE_STATE`, docs/devices.md §5):
the backup holds the device's signature key, so the restored copy and the
one the backup came from would otherwise share, and split, the device's
messages. Before its first connection the restored copy registers a new
client with a new key certified by the account key, and rejoins every
group by external commit (:mod:`.restore_device`); the device the backup
came from keeps working.

A restore writes nothing outside the new profile directory, and removes
that directory if anything fails: a wrong passphrase or a bad file leaves
every existing profile as it was. A header whose scrypt parameters are above
the ceiling of :mod:`.store.kdf` is refused before anything is derived
(:class:`BackupKdfLimitError`), and a new backup is refused parameters below
the floor.

Export and restore take an optional ``progress(fraction)`` callback, called
on the thread that runs them with a fraction from 0.0 to 1.0 (1.0 last):
fixed steps for the parts that report nothing (the snapshot, the key
derivation), and bytes of the database for the copy between them.

Every file written here is created readable by its owner only (0600): the
backup, and in the new profile the snapshot and the database (its WAL and
shared-memory files take the database file's mode).
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import hmac
import json
import os
import secrets
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .errors import (
    BackupCorruptError,
    BackupError,
    BackupVersionError,
    ClientError,
    DiskFullError,
    ProfileExistsError,
    StoreCorruptError,
    WrongBackupPassphraseError,
    WrongKeyError,
)
from .profiles import Profile, Profiles, check_profile_name
from .store.database import SIDECAR_SUFFIXES, Database
from .store.database_key import KEY_SIZE, DatabaseKey
from .store.kdf import (
    DEFAULT_SCRYPT,
    KdfLimitError,
    ScryptParams,
    check_new_passphrase,
    check_params_for_new_file,
    derive_key,
    new_salt,
)
from .store.key_wrap import wrap_key, write_key_wrap
from .store.keychain import Keychain
from .store.migrations import LATEST_VERSION, migrate
from .store.settings import TAKEOVER_PENDING, SettingsRepository
from .store.store import Store

__all__ = [
    "BACKUP_MAGIC",
    "BACKUP_VERSION",
    "BackupInfo",
    "BackupKdfLimitError",
    "BackupProgress",
    "export_backup",
    "read_backup_info",
    "restore_backup",
]

BACKUP_MAGIC: Final = b"MSGRBKUP"
BACKUP_VERSION: Final = 1
_FORMAT: Final = "messenger-backup"
_AEAD: Final = "chacha20-poly1305"
_CHUNK_SIZE: Final = 1 << 16
_MIN_CHUNK: Final = 1 << 10
_MAX_CHUNK: Final = 1 << 24
_MAX_HEADER: Final = 1 << 16
_MAX_META: Final = 1 << 16
_PREFIX_SIZE: Final = 7
_TAG_SIZE: Final = 16
_LAST: Final = 0x8000_0000
_U32: Final = struct.Struct(">I")

BackupProgress = Callable[[float], None]
"""``progress(fraction)``: how far an export or a restore is, from 0.0 to 1.0."""


def _no_progress(fraction: float) -> None:
    pass


def _span(progress: BackupProgress, start: float, end: float, total: int) -> Callable[[int], None]:
    """``progress`` from ``start`` to ``end`` over ``total`` bytes."""

    def at(done: int) -> None:
        share = min(done / total, 1.0) if total > 0 else 1.0
        progress(start + (end - start) * share)

    return at


class BackupKdfLimitError(KdfLimitError, BackupCorruptError):
    """The backup's header asks for scrypt parameters above the ceiling."""

    default_user_message = (
        "The backup file asks for a passphrase check far more costly than Messenger "
        "allows, so it was not opened. It was not made by Messenger, or it was altered."
    )


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What a backup says about itself (inside the encryption)."""

    profile_name: str
    schema_version: int
    exported_at: int
    """Unix time in milliseconds."""
    db_size: int


# -- export ---------------------------------------------------------------------


def export_backup(
    store: Store,
    destination: Path,
    passphrase: str,
    *,
    kdf: ScryptParams = DEFAULT_SCRYPT,
    now_ms: int | None = None,
    progress: BackupProgress | None = None,
) -> BackupInfo:
    """Write the whole profile of ``store`` to ``destination``, encrypted under ``passphrase``.

    Runs on the store's thread. ``destination`` is replaced atomically and
    is readable by its owner only. KdfParamsError if ``kdf`` is below the
    floor (and not ``allow_weak``). ``progress`` is called on this thread.
    """
    report = progress or _no_progress
    check_new_passphrase(passphrase)
    check_params_for_new_file(kdf)
    exported_at = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    with tempfile.TemporaryDirectory(prefix="messenger-backup-") as tmp:
        snapshot = Path(tmp) / "snapshot.db"
        snapshot_key = DatabaseKey.generate()
        store.db.export_to(snapshot, snapshot_key)
        info = BackupInfo(
            profile_name=store.profile.name,
            schema_version=store.schema_version,
            exported_at=exported_at,
            db_size=snapshot.stat().st_size,
        )
        report(0.1)
        salt = new_salt()
        keys = derive_key(passphrase, salt, kdf, length=64)
        report(0.3)
        copied = _span(report, 0.3, 0.95, info.db_size)
        prefix = secrets.token_bytes(_PREFIX_SIZE)
        header = {
            "format": _FORMAT,
            "version": BACKUP_VERSION,
            "kdf": kdf.to_json(salt),
            "aead": _AEAD,
            "chunk_size": _CHUNK_SIZE,
            "nonce_prefix": base64.b64encode(prefix).decode("ascii"),
        }
        preamble = _preamble(json.dumps(header, sort_keys=True).encode())
        meta = json.dumps(
            {
                "profile_name": info.profile_name,
                "schema_version": info.schema_version,
                "exported_at": info.exported_at,
                "db_size": info.db_size,
            }
        ).encode()
        partial = destination.with_name(f".{destination.name}.{secrets.token_hex(4)}.partial")
        try:
            with _create_private(partial) as out:
                out.write(preamble)
                out.write(hmac.digest(keys[32:], preamble, "sha256"))
                writer = _ChunkWriter(
                    out,
                    ChaCha20Poly1305(keys[:32]),
                    prefix,
                    hashlib.sha256(preamble).digest(),
                    _CHUNK_SIZE,
                )
                writer.write(_U32.pack(len(meta)) + meta + snapshot_key.raw)
                done = 0
                with snapshot.open("rb") as f:
                    while block := f.read(_CHUNK_SIZE):
                        writer.write(block)
                        done += len(block)
                        copied(done)
                writer.finish()
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, destination)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise _write_error(exc) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    report(1.0)
    return info


def _create_private(path: Path) -> IO[bytes]:
    """A new file at ``path`` (FileExistsError if there is one), mode 0600 from the start."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def _preamble(header: bytes) -> bytes:
    return BACKUP_MAGIC + _U32.pack(len(header)) + header


class _ChunkWriter:
    """STREAM encryption: buffer to full chunks, flag the last one."""

    def __init__(
        self, out: IO[bytes], aead: ChaCha20Poly1305, prefix: bytes, aad: bytes, size: int
    ) -> None:
        self._out, self._aead, self._prefix, self._aad, self._size = out, aead, prefix, aad, size
        self._buffer = bytearray()
        self._counter = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        # Keep at least one byte back, so the last chunk is never empty unless all is.
        while len(self._buffer) > self._size:
            self._emit(bytes(self._buffer[: self._size]), last=False)
            del self._buffer[: self._size]

    def finish(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        ciphertext = self._aead.encrypt(_nonce(self._prefix, self._counter, last), chunk, self._aad)
        self._out.write(_U32.pack(len(ciphertext) | (_LAST if last else 0)) + ciphertext)
        self._counter += 1


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= 1 << 32:
        raise BackupError("backup too large")
    return prefix + _U32.pack(counter) + (b"\x01" if last else b"\x00")


# -- reading ----------------------------------------------------------------------


class _ChunkReader:
    """STREAM decryption; every failure is BackupCorruptError."""

    def __init__(
        self, src: IO[bytes], aead: ChaCha20Poly1305, prefix: bytes, aad: bytes, size: int
    ) -> None:
        self._src, self._aead, self._prefix, self._aad, self._size = src, aead, prefix, aad, size
        self._buffer = bytearray()
        self._counter = 0
        self._done = False

    def _next_chunk(self) -> bool:
        if self._done:
            return False
        framing = self._src.read(4)
        if len(framing) != 4:
            raise BackupCorruptError("backup truncated")
        (word,) = _U32.unpack(framing)
        last, length = bool(word & _LAST), word & ~_LAST
        if not _TAG_SIZE <= length <= self._size + _TAG_SIZE:
            raise BackupCorruptError("bad chunk length")
        ciphertext = self._src.read(length)
        if len(ciphertext) != length:
            raise BackupCorruptError("backup truncated")
        try:
            self._buffer += self._aead.decrypt(
                _nonce(self._prefix, self._counter, last), ciphertext, self._aad
            )
        except InvalidTag:
            raise BackupCorruptError(f"chunk {self._counter} does not authenticate") from None
        self._counter += 1
        if last:
            self._done = True
            if self._src.read(1):
                raise BackupCorruptError("data after the last chunk")
        return True

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if not self._next_chunk():
                raise BackupCorruptError("payload too short")
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data

    def blocks(self) -> Iterator[bytes]:
        """The rest of the payload, chunk by chunk, checked to the end."""
        while True:
            if self._buffer:
                yield bytes(self._buffer)
                self._buffer.clear()
            if not self._next_chunk():
                return


@dataclass(frozen=True, slots=True)
class _Opened:
    info: BackupInfo
    snapshot_key: DatabaseKey
    reader: _ChunkReader


def _open_backup(src: IO[bytes], passphrase: str) -> _Opened:
    magic = src.read(len(BACKUP_MAGIC))
    if magic != BACKUP_MAGIC:
        raise BackupCorruptError("not a Messenger backup")
    raw_len = src.read(4)
    if len(raw_len) != 4:
        raise BackupCorruptError("backup truncated")
    (header_len,) = _U32.unpack(raw_len)
    if header_len > _MAX_HEADER:
        raise BackupCorruptError("header too large")
    header_bytes = src.read(header_len)
    check = src.read(32)
    if len(header_bytes) != header_len or len(check) != 32:
        raise BackupCorruptError("backup truncated")
    params, salt, prefix, chunk_size = _parse_header(header_bytes)
    preamble = _preamble(header_bytes)
    keys = derive_key(passphrase, salt, params, length=64)
    if not hmac.compare_digest(hmac.digest(keys[32:], preamble, "sha256"), check):
        raise WrongBackupPassphraseError("backup check value mismatch")
    reader = _ChunkReader(
        src, ChaCha20Poly1305(keys[:32]), prefix, hashlib.sha256(preamble).digest(), chunk_size
    )
    (meta_len,) = _U32.unpack(reader.read_exact(4))
    if meta_len > _MAX_META:
        raise BackupCorruptError("metadata too large")
    info = _parse_meta(reader.read_exact(meta_len))
    snapshot_key = DatabaseKey(reader.read_exact(KEY_SIZE))
    return _Opened(info=info, snapshot_key=snapshot_key, reader=reader)


def _parse_header(data: bytes) -> tuple[ScryptParams, bytes, bytes, int]:
    try:
        header = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BackupCorruptError("header is not JSON") from exc
    if not isinstance(header, dict) or header.get("format") != _FORMAT:
        raise BackupCorruptError("not a Messenger backup")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise BackupCorruptError("bad version")
    if version > BACKUP_VERSION:
        raise BackupVersionError(f"backup version {version}")
    chunk_size = header.get("chunk_size")
    if header.get("aead") != _AEAD or not isinstance(chunk_size, int):
        raise BackupCorruptError("unknown AEAD or chunk size")
    if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
        raise BackupCorruptError("chunk size out of bounds")
    try:
        params, salt = ScryptParams.from_json(header.get("kdf"))
        prefix = base64.b64decode(str(header.get("nonce_prefix")), validate=True)
    except KdfLimitError as exc:
        raise BackupKdfLimitError(str(exc)) from exc
    except (ValueError, binascii.Error) as exc:
        raise BackupCorruptError(f"bad header: {exc}") from exc
    if len(prefix) != _PREFIX_SIZE:
        raise BackupCorruptError("bad nonce prefix")
    return params, salt, prefix, chunk_size


def _parse_meta(data: bytes) -> BackupInfo:
    try:
        meta = json.loads(data.decode("utf-8"))
        info = BackupInfo(
            profile_name=str(meta["profile_name"]),
            schema_version=int(meta["schema_version"]),
            exported_at=int(meta["exported_at"]),
            db_size=int(meta["db_size"]),
        )
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise BackupCorruptError("bad backup metadata") from exc
    if info.schema_version > LATEST_VERSION:
        raise BackupVersionError(f"backup schema {info.schema_version} > {LATEST_VERSION}")
    return info


def read_backup_info(source: Path, passphrase: str) -> BackupInfo:
    """Check the passphrase and read what the backup says about itself."""
    try:
        with source.open("rb") as src:
            return _open_backup(src, passphrase).info
    except OSError as exc:
        raise BackupError(f"could not read the backup: {exc.strerror}") from exc


# -- restore ------------------------------------------------------------------------


def restore_backup(
    source: Path,
    passphrase: str,
    profiles: Profiles,
    name: str,
    recovery_passphrase: str,
    *,
    keychain: Keychain | None = None,
    kdf: ScryptParams = DEFAULT_SCRYPT,
    progress: BackupProgress | None = None,
) -> Profile:
    """Restore the backup at ``source`` into a new profile called ``name``.

    The new store gets a new database key, protected by
    ``recovery_passphrase`` (and stored in the keyring if one is
    available). WrongBackupPassphraseError, BackupCorruptError or
    BackupVersionError leave no trace; ProfileExistsError if the name is
    taken. Open the profile afterwards with ``Store.open``. ``progress`` is
    called on the calling thread.
    """
    report = progress or _no_progress
    check_profile_name(name)
    check_new_passphrase(recovery_passphrase)
    check_params_for_new_file(kdf)
    keychain = keychain if keychain is not None else Keychain()
    if profiles.exists(name):
        raise ProfileExistsError(f"profile {name!r} exists")
    try:
        with source.open("rb") as src:
            opened = _open_backup(src, passphrase)
            report(0.25)
            profile = profiles.create(name)
            try:
                _restore_into(profile, opened, recovery_passphrase, keychain, kdf, report)
            except BaseException:
                keychain.forget(profile.id)
                shutil.rmtree(profile.path, ignore_errors=True)
                raise
    except OSError as exc:
        raise BackupError(f"could not read the backup: {exc.strerror}") from exc
    report(1.0)
    return profile


def _restore_into(
    profile: Profile,
    opened: _Opened,
    recovery_passphrase: str,
    keychain: Keychain,
    kdf: ScryptParams,
    report: BackupProgress,
) -> None:
    snapshot = profile.path / "restore.db"
    written = 0
    copied = _span(report, 0.25, 0.65, opened.info.db_size)
    try:
        with _create_private(snapshot) as out:
            for block in opened.reader.blocks():
                written += len(block)
                out.write(block)
                copied(written)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise _write_error(exc) from exc
    if written != opened.info.db_size:
        raise BackupCorruptError("database size does not match the metadata")
    key = DatabaseKey.generate()
    try:
        with Database.open(snapshot, opened.snapshot_key) as db:
            db.check_integrity()
            db.export_to(profile.db_path, key)
        with Database.open(profile.db_path, key) as db:
            migrate(db)
            _mark_as_new_device(db)
        report(0.8)
    except (WrongKeyError, StoreCorruptError) as exc:
        raise BackupCorruptError(f"the database in the backup is damaged: {exc}") from exc
    finally:
        for path in (snapshot, *_sidecars(snapshot)):
            path.unlink(missing_ok=True)
    write_key_wrap(profile.key_wrap_path, wrap_key(key, recovery_passphrase, kdf))
    keychain.try_save(profile.id, key)


def _mark_as_new_device(db: Database) -> None:
    """Make the restored copy register as a new device before it first connects."""
    from .restore_device import mark_restore_pending

    if db.query_value("SELECT COUNT(*) FROM identity") == 0:
        return  # no account: nothing to register
    with db.transaction():
        settings = SettingsRepository(db)
        settings.delete(TAKEOVER_PENDING)  # a backup of a copy restored by an earlier version
        mark_restore_pending(settings)


def _sidecars(db: Path) -> tuple[Path, ...]:
    return tuple(db.with_name(db.name + suffix) for suffix in SIDECAR_SUFFIXES)


def _write_error(exc: OSError) -> ClientError:
    if exc.errno == errno.ENOSPC:
        return DiskFullError(f"backup: {exc.strerror}")
    return BackupError(f"could not write: {exc.strerror}")
