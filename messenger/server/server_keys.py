"""The server's secrets, all derived from one master secret in a file.

The master secret (32 random bytes, hex) lives in ``secret_key_file``
(default ``<data_dir>/server-secret.key``, mode 0600) and is created on first
start. It is deliberately *not* in the database: a stolen database alone
does not let anyone forge credentials or challenges, nor test guesses
against the stored handle hashes. Several processes behind one PostgreSQL
must be given the same file.

The directory a missing secret file is created in is made 0700, and a
secret file readable by others (made by hand) is tightened to 0600.
:func:`make_private_dir` does the same for the server's data directory.

Derived keys (HMAC-SHA256 of the master secret and a label):

* the Ed25519 key that signs credentials (the Authentication Service key);
* the MAC key of stateless proof-of-work challenges;
* the pepper of handle hashes;
* the HMAC key of KeyPackage claim evidence (:mod:`.key_packages`);
* the HMAC key of stored request nonces (:mod:`.authentication`);
* the HMAC key of removed clients' tombstones (:mod:`.devices`);
* the HMAC key of blob file names and blob owners (:mod:`.blobs`);
* the AES-256-GCM key of delivery addresses (:mod:`.queue_addresses`);
* the AES-256-GCM key of columns sealed at rest (:mod:`.at_rest`): each
  client's queue and each group's GroupInfo.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ServerKeys",
    "load_or_create_master_secret",
    "make_private_dir",
    "make_private_file",
]

_SECRET_BYTES = 32

_log = logging.getLogger("messenger.server")


def make_private_dir(path: Path) -> None:
    """Create ``path`` with mode 0700, or make an existing one 0700 (POSIX).

    For the server's own directories (the data directory). Missing parents
    get the umask's mode; a directory owned by someone else is left alone.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700, stat.S_ISDIR)


def make_private_file(path: Path) -> None:
    """Make an existing file ``path`` 0600 if others may read it (POSIX)."""
    _tighten(path, 0o600, stat.S_ISREG)


def _tighten(path: Path, mode: int, kind: Callable[[int], bool]) -> None:
    if os.name != "posix":
        return
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not kind(st.st_mode) or not st.st_mode & 0o077 or st.st_uid != os.geteuid():
        return
    try:
        os.chmod(path, mode)
    except OSError as exc:
        _log.warning("could not make %s private: %s", path, exc.strerror)


def load_or_create_master_secret(path: Path) -> bytes:
    """The master secret at ``path``, created (atomically, mode 0600) if missing."""
    try:
        secret = _read(path)
    except FileNotFoundError:
        pass
    else:
        make_private_file(path)
        return secret
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_bytes(_SECRET_BYTES).hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic, and fails if another process was first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read(path)


def _read(path: Path) -> bytes:
    text = path.read_text(encoding="ascii").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path} does not hold a hex secret") from None
    if len(secret) < _SECRET_BYTES:
        raise ValueError(f"{path} holds a secret shorter than {_SECRET_BYTES} bytes")
    return secret


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """The keys derived from the master secret."""

    credential_key: Ed25519PrivateKey
    credential_public_key: bytes
    challenge_mac_key: bytes
    handle_pepper: bytes
    claim_evidence_key: bytes
    request_nonce_key: bytes
    removed_client_key: bytes
    blob_key: bytes
    at_rest_key: bytes
    address_key: bytes

    @classmethod
    def derive(cls, master: bytes) -> ServerKeys:
        """Derive every key from ``master``."""

        def sub(label: str) -> bytes:
            info = f"messenger-server-v1:{label}".encode()
            return hmac.new(master, info, hashlib.sha256).digest()

        signing = Ed25519PrivateKey.from_private_bytes(sub("credential-signing"))
        public = signing.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(
            credential_key=signing,
            credential_public_key=public,
            challenge_mac_key=sub("challenge-mac"),
            handle_pepper=sub("handle-hash"),
            claim_evidence_key=sub("claim-evidence"),
            request_nonce_key=sub("request-nonce"),
            removed_client_key=sub("removed-client"),
            blob_key=sub("blob-store"),
            at_rest_key=sub("sealed-at-rest"),
            address_key=sub("delivery-address"),
        )
