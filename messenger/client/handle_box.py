"""A handle's contact box: the account's contact token sealed under a key from
its handle (docs/metadata.md §1; the layout is in :mod:`messenger.api.contact_token`).

The server keeps the box beside the handle's keyed hash and hands it to
whoever looks the handle up; only someone who knows the handle opens it.
The key is ``scrypt(handle, salt="messenger handle contact v1\\n" ‖ salt,
N=2¹⁴, r=8, p=1)`` with a random salt in the box, so that each guess of a
handle costs 16 MiB and tens of milliseconds per box tried; the token is
sealed with AES-256-GCM under a fresh nonce, the version byte as
associated data. Both functions are slow on purpose: call them off the
event loop.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.api.contact_token import CONTACT_BOX_BYTES, CONTACT_TOKEN_BYTES

__all__ = ["open_handle_box", "seal_handle_box"]

_VERSION: Final = b"\x01"
_SALT_BYTES: Final = 16
_NONCE_BYTES: Final = 12
_SALT_LABEL: Final = b"messenger handle contact v1\n"
#: scrypt's cost: N = 2^14, r = 8 (16 MiB), p = 1.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8


def _key(handle: str, salt: bytes) -> AESGCM:
    key = hashlib.scrypt(
        handle.encode("utf-8"),
        salt=_SALT_LABEL + salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=1,
        maxmem=2 * 128 * _SCRYPT_R * _SCRYPT_N,
        dklen=32,
    )
    return AESGCM(key)


def seal_handle_box(token: bytes, handle: str) -> bytes:
    """``token`` sealed under a key from ``handle``."""
    if len(token) != CONTACT_TOKEN_BYTES:
        raise ValueError(f"a contact token has {CONTACT_TOKEN_BYTES} bytes")
    salt = secrets.token_bytes(_SALT_BYTES)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return _VERSION + salt + nonce + _key(handle, salt).encrypt(nonce, token, _VERSION)


def open_handle_box(box: bytes, handle: str) -> bytes | None:
    """The token in a handle's box (None: malformed, or not sealed for this handle)."""
    if len(box) != CONTACT_BOX_BYTES or box[:1] != _VERSION:
        return None
    salt = box[1 : 1 + _SALT_BYTES]
    nonce = box[1 + _SALT_BYTES : 1 + _SALT_BYTES + _NONCE_BYTES]
    try:
        return _key(handle, salt).decrypt(nonce, box[1 + _SALT_BYTES + _NONCE_BYTES :], _VERSION)
    except InvalidTag:
        return None
