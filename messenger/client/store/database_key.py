"""The database key: 32 random bytes that SQLCipher uses as its raw key.

The key is made once, when a profile's store is created, and never changes
except on restore (a restored store gets a fresh key). It is kept in two
places: the OS keyring (:mod:`.keychain`) and the passphrase-wrapped
recovery file (:mod:`.key_wrap`).

SQLCipher takes it as a raw key (``PRAGMA key = "x'...'"``), which skips its
own PBKDF2: the key is already uniformly random.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Final

__all__ = ["KEY_SIZE", "DatabaseKey"]

KEY_SIZE: Final = 32


class DatabaseKey:
    """A 256-bit database key that does not show itself in reprs or logs.

    Equality is constant-time; keys are not hashable.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_SIZE:
            raise ValueError(f"a database key is {KEY_SIZE} bytes")
        self._raw = bytes(raw)

    @classmethod
    def generate(cls) -> DatabaseKey:
        """A fresh key from the OS's CSPRNG."""
        return cls(secrets.token_bytes(KEY_SIZE))

    @classmethod
    def from_hex(cls, text: str) -> DatabaseKey:
        """Parse the keyring form; ValueError if it is not 64 hex digits."""
        if len(text) != 2 * KEY_SIZE:
            raise ValueError("a database key is 64 hex digits")
        return cls(bytes.fromhex(text))

    @property
    def raw(self) -> bytes:
        return self._raw

    def hex(self) -> str:
        return self._raw.hex()

    def sqlcipher_pragma_value(self) -> str:
        """The value of ``PRAGMA key``/``rekey``: a raw-key blob literal."""
        return f"\"x'{self._raw.hex()}'\""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatabaseKey):
            return NotImplemented
        return hmac.compare_digest(self._raw, other._raw)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "DatabaseKey(<secret>)"
