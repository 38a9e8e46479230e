"""The recovery file: the database key wrapped by the recovery passphrase.

The file (``store.key`` in the profile directory) is a small JSON object::

    {"format": "messenger-key-wrap", "version": 1,
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<b64>"},
     "aead": "chacha20-poly1305", "nonce": "<b64>", "ciphertext": "<b64>"}

The wrapping key is scrypt(passphrase, salt) (:mod:`.kdf`); the ciphertext
is ChaCha20-Poly1305 (RFC 8439) over the 32-byte database key, with every
other field, in canonical JSON, as associated data: changing the
parameters, the salt or the version makes the file fail to open rather than
derive another key. A wrong passphrase and a damaged ciphertext look the
same to the AEAD; both give :class:`WrongPassphraseError`. A file that does
not parse gives :class:`StoreCorruptError`; one whose scrypt parameters are
above the ceiling of :mod:`.kdf` gives :class:`RecoveryFileKdfLimitError`
(a :class:`StoreCorruptError` too) before anything is derived. New files
are refused parameters below the floor (:func:`.kdf.check_params_for_new_file`).

The file is replaced atomically (:func:`write_key_wrap`), so a crash while
changing the passphrase leaves the old file or the new one.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import StoreCorruptError, StoreNotFoundError, StoreVersionError, WrongPassphraseError
from ..profiles import write_file_atomically
from .database_key import KEY_SIZE, DatabaseKey
from .kdf import (
    DEFAULT_SCRYPT,
    KdfLimitError,
    ScryptParams,
    check_params_for_new_file,
    derive_key,
    new_salt,
)

__all__ = [
    "KEY_WRAP_VERSION",
    "RecoveryFileKdfLimitError",
    "WrappedKey",
    "read_key_wrap",
    "unwrap_key",
    "wrap_key",
    "write_key_wrap",
]

KEY_WRAP_VERSION: Final = 1
_FORMAT: Final = "messenger-key-wrap"
_AEAD: Final = "chacha20-poly1305"
_NONCE_SIZE: Final = 12
_MAX_FILE_SIZE: Final = 4096


class RecoveryFileKdfLimitError(KdfLimitError, StoreCorruptError):
    """The recovery file asks for scrypt parameters above the ceiling."""

    default_user_message = (
        "The recovery file of this profile asks for a passphrase check far more costly "
        "than Messenger allows, so it was not used. It was altered or damaged."
    )


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """The parsed recovery file."""

    params: ScryptParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes

    def _header(self) -> dict[str, object]:
        return {
            "format": _FORMAT,
            "version": KEY_WRAP_VERSION,
            "kdf": self.params.to_json(self.salt),
            "aead": _AEAD,
            "nonce": base64.b64encode(self.nonce).decode("ascii"),
        }

    def associated_data(self) -> bytes:
        """Every field but the ciphertext, as canonical JSON."""
        return json.dumps(self._header(), sort_keys=True, separators=(",", ":")).encode()

    def to_bytes(self) -> bytes:
        data = self._header()
        data["ciphertext"] = base64.b64encode(self.ciphertext).decode("ascii")
        return json.dumps(data, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> WrappedKey:
        """Parse the file; StoreCorruptError or StoreVersionError if it cannot be used."""
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise _corrupt("not JSON") from exc
        if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
            raise _corrupt("not a recovery file")
        version = obj.get("version")
        if not isinstance(version, int) or version < 1:
            raise _corrupt("bad version")
        if version > KEY_WRAP_VERSION:
            raise StoreVersionError(f"recovery file version {version}")
        if obj.get("aead") != _AEAD:
            raise _corrupt("unknown AEAD")
        try:
            params, salt = ScryptParams.from_json(obj.get("kdf"))
            nonce = _b64(obj.get("nonce"))
            ciphertext = _b64(obj.get("ciphertext"))
        except KdfLimitError as exc:
            raise RecoveryFileKdfLimitError(str(exc)) from exc
        except ValueError as exc:  # KdfParamsError is a ValueError too
            raise _corrupt(str(exc)) from exc
        if len(nonce) != _NONCE_SIZE or len(ciphertext) != KEY_SIZE + 16:
            raise _corrupt("bad nonce or ciphertext length")
        return cls(params=params, salt=salt, nonce=nonce, ciphertext=ciphertext)


def wrap_key(
    key: DatabaseKey, passphrase: str, params: ScryptParams = DEFAULT_SCRYPT
) -> WrappedKey:
    """Wrap ``key`` under ``passphrase`` with a fresh salt and nonce.

    KdfParamsError if ``params`` are below the floor (and not ``allow_weak``).
    """
    check_params_for_new_file(params)
    salt = new_salt()
    nonce = secrets.token_bytes(_NONCE_SIZE)
    unsealed = WrappedKey(params=params, salt=salt, nonce=nonce, ciphertext=b"")
    kek = derive_key(passphrase, salt, params)
    ciphertext = ChaCha20Poly1305(kek).encrypt(unsealed.nonce, key.raw, unsealed.associated_data())
    return WrappedKey(params=params, salt=salt, nonce=unsealed.nonce, ciphertext=ciphertext)


def unwrap_key(wrapped: WrappedKey, passphrase: str) -> DatabaseKey:
    """The database key; WrongPassphraseError if ``passphrase`` does not open it."""
    kek = derive_key(passphrase, wrapped.salt, wrapped.params)
    try:
        raw = ChaCha20Poly1305(kek).decrypt(
            wrapped.nonce, wrapped.ciphertext, wrapped.associated_data()
        )
    except InvalidTag:
        raise WrongPassphraseError("the recovery file did not open") from None
    return DatabaseKey(raw)


def read_key_wrap(path: Path) -> WrappedKey:
    """Read and parse the recovery file at ``path``."""
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        raise StoreNotFoundError(
            "the recovery file is missing",
            user_message="The recovery file of this profile is missing, so the passphrase "
            "cannot unlock it.",
        ) from None
    except OSError as exc:
        raise _corrupt(f"unreadable: {exc.strerror}") from exc
    if len(data) > _MAX_FILE_SIZE:
        raise _corrupt("too large")
    return WrappedKey.from_bytes(data)


def write_key_wrap(path: Path, wrapped: WrappedKey) -> None:
    """Replace the recovery file atomically."""
    write_file_atomically(path, wrapped.to_bytes())


def _b64(value: object) -> bytes:
    if not isinstance(value, str):
        raise ValueError("missing base64 field")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("field is not base64") from exc


def _corrupt(why: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"recovery file: {why}",
        user_message="The recovery file of this profile is damaged, so the passphrase cannot "
        "unlock it.",
    )
