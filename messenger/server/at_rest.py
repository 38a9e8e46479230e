"""Columns sealed at rest under a key derived from the server secret.

Some values the server must be able to read while it runs, but that a copy
of its database should not show: which queue is a client's
(:mod:`.queue_links`) and each group's GroupInfo, whose ratchet tree names
every member's account and client (RFC 9420 §12.4.3, §12.4.3.3). They are
stored sealed with AES-256-GCM under a key derived from the master secret
(:mod:`.server_keys`), which is not in the database: a leaked backup, a
database replica or a dump shows random bytes of the value's length plus
29. The operator, who holds the key, can open them (docs/threat-model.md).

A sealed value is ``0x01 ‖ nonce (12 random bytes) ‖ ciphertext ‖ tag``.
The associated data names the column and the row the value belongs to, so
a value copied into another row or column does not open. A column may seal
some values under another key with another first byte (KeyPackages sealed
under their account's contact token are ``0x02 ‖ …``, :mod:`.key_packages`).
"""

from __future__ import annotations

import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .storage import StorageError

__all__ = ["SEALED_OVERHEAD", "SealedColumn"]

_VERSION: Final = b"\x01"
_NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
#: How many bytes sealing adds to a value.
SEALED_OVERHEAD: Final = len(_VERSION) + _NONCE_BYTES + _TAG_BYTES


class SealedColumn:
    """Seal and open the values of one column, each bound to its row."""

    __slots__ = ("_aead", "_column", "_version")

    def __init__(self, key: bytes, column: str, *, version: bytes = _VERSION) -> None:
        if len(key) != 32:
            raise ValueError("a sealed column needs a 32-byte key")
        if len(version) != 1:
            raise ValueError("a sealed value's version is one byte")
        self._aead = AESGCM(key)
        self._column = column.encode("ascii")
        self._version = version

    def _associated(self, row: bytes) -> bytes:
        return len(self._column).to_bytes(1, "big") + self._column + row

    def seal(self, row: bytes, value: bytes) -> bytes:
        """``value`` sealed for the row whose key is ``row``."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return self._version + nonce + self._aead.encrypt(nonce, value, self._associated(row))

    def open(self, row: bytes, sealed: bytes) -> bytes:
        """The value sealed for ``row``; :class:`StorageError` if it does not open.

        A value that does not open was changed in the database or sealed
        under another secret key file: the server was started with the
        wrong key.
        """
        if len(sealed) < SEALED_OVERHEAD or sealed[:1] != self._version:
            raise StorageError(f"a sealed {self._column.decode()} value is malformed")
        nonce = sealed[1 : 1 + _NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + _NONCE_BYTES :], self._associated(row))
        except InvalidTag:
            raise StorageError(
                f"a sealed {self._column.decode()} value does not open: the database was "
                "changed, or the server runs with another secret key file"
            ) from None
