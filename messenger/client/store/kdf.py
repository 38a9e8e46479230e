"""Deriving keys from passphrases: scrypt (RFC 7914).

Used by the recovery file (:mod:`.key_wrap`) and by backups
(:mod:`messenger.client.backup`). A passphrase is normalized to Unicode NFC
and encoded as UTF-8 first, so that the same passphrase typed on another
OS or keyboard layout derives the same key.

The default cost is N = 2**17, r = 8, p = 1 (128 MiB, about half a second
here), the figure OWASP recommends for scrypt. The parameters are stored
next to every salt, so they can be raised later; files written with other
parameters still open. Parameters read from a file are bounded
(:meth:`ScryptParams.from_json`), so a crafted file cannot make the app
allocate gigabytes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import WeakPassphraseError

__all__ = [
    "DEFAULT_SCRYPT",
    "MIN_PASSPHRASE_LENGTH",
    "SALT_SIZE",
    "KdfParamsError",
    "ScryptParams",
    "check_new_passphrase",
    "derive_key",
    "new_salt",
]

MIN_PASSPHRASE_LENGTH: Final = 8
SALT_SIZE: Final = 16

_MAX_LOG2_N: Final = 22
_MAX_R: Final = 32
_MAX_P: Final = 16
_MAX_MEMORY: Final = 1 << 30  # 128 * r * n bytes


class KdfParamsError(ValueError):
    """Stored KDF parameters are malformed or out of bounds."""


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """The scrypt cost parameters (RFC 7914 §2)."""

    n: int = 1 << 17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (2 <= self.n <= 1 << _MAX_LOG2_N) or self.n & (self.n - 1):
            raise KdfParamsError("scrypt n must be a power of two in [2, 2**22]")
        if not (1 <= self.r <= _MAX_R) or not (1 <= self.p <= _MAX_P):
            raise KdfParamsError("scrypt r or p is out of bounds")
        if 128 * self.r * self.n > _MAX_MEMORY:
            raise KdfParamsError("scrypt parameters need too much memory")

    def to_json(self, salt: bytes) -> dict[str, object]:
        return {
            "name": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": base64.b64encode(salt).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: object) -> tuple[ScryptParams, bytes]:
        """Parse ``{"name": "scrypt", "n", "r", "p", "salt"}``: the parameters and salt."""
        if not isinstance(data, dict) or data.get("name") != "scrypt":
            raise KdfParamsError("unknown key derivation function")
        n, r, p, salt = data.get("n"), data.get("r"), data.get("p"), data.get("salt")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)):
            raise KdfParamsError("scrypt parameters must be integers")
        if not isinstance(salt, str):
            raise KdfParamsError("missing salt")
        try:
            raw_salt = base64.b64decode(salt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KdfParamsError("salt is not base64") from exc
        if not 16 <= len(raw_salt) <= 64:
            raise KdfParamsError("salt length is out of bounds")
        assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
        return cls(n=n, r=r, p=p), raw_salt


DEFAULT_SCRYPT: Final = ScryptParams()


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_SIZE)


def _encode_passphrase(passphrase: str) -> bytes:
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def check_new_passphrase(passphrase: str) -> None:
    """Refuse a new recovery or backup passphrase that is too short."""
    if len(unicodedata.normalize("NFC", passphrase)) < MIN_PASSPHRASE_LENGTH:
        raise WeakPassphraseError("passphrase too short")


def derive_key(passphrase: str, salt: bytes, params: ScryptParams, length: int = 32) -> bytes:
    """scrypt(passphrase, salt) with ``params``: ``length`` bytes."""
    kdf = Scrypt(salt=salt, length=length, n=params.n, r=params.r, p=params.p)
    return kdf.derive(_encode_passphrase(passphrase))
