"""The sealed channel between the two devices of a link (docs/devices.md §2).

Both devices derive from the one-time secret ``S`` (HKDF-SHA256, RFC 5869,
empty salt):

* ``link_id`` = HKDF(S, info ``"messenger-link-v1 id"``, 16 bytes), the
  mailbox's name on the server;
* ``link_key`` = HKDF(S, info ``"messenger-link-v1 key"``, 32 bytes), the
  ChaCha20-Poly1305 key of every message.

A message is ``nonce (12 random bytes) || ChaCha20-Poly1305(link_key, nonce,
plaintext, aad)`` with ``aad = "messenger-link-v1" || link_id || direction
(1 byte: 0 to the new device, 1 to the creator) || index (8 bytes,
big-endian)``; ``index`` counts the sender's messages from 0. The receiver
opens them strictly in index order, so a dropped, replayed, reordered,
reflected or foreign message fails to open: :class:`LinkChannel.open`
raises :class:`~messenger.client.errors.LinkFailedError` and the link is
abandoned.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from messenger.api.models import LINK_ID_BYTES

from ..errors import LinkFailedError

__all__ = ["NONCE_BYTES", "OVERHEAD", "Direction", "LinkChannel", "derive_link_keys"]

_LABEL: Final = b"messenger-link-v1"
_ID_INFO: Final = b"messenger-link-v1 id"
_KEY_INFO: Final = b"messenger-link-v1 key"
NONCE_BYTES: Final = 12
_TAG_BYTES: Final = 16
#: Bytes a sealed message adds to its plaintext.
OVERHEAD: Final = NONCE_BYTES + _TAG_BYTES


class Direction(enum.IntEnum):
    """Which way a message goes (the AAD's direction byte)."""

    TO_NEW = 0
    TO_CREATOR = 1


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 with an empty salt (HKDF then uses HashLen zero bytes, §2.2).
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def derive_link_keys(secret: bytes) -> tuple[bytes, bytes]:
    """``(link_id, link_key)`` of a link secret."""
    return _hkdf(secret, _ID_INFO, LINK_ID_BYTES), _hkdf(secret, _KEY_INFO, 32)


class LinkChannel:
    """One side's view of the sealed channel: its send and receive counters.

    ``creator`` is True on the device that opened the mailbox. ``sent`` and
    ``received`` (the next index in each direction) can be given to resume.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        creator: bool,
        random: Callable[[int], bytes] = os.urandom,
        sent: int = 0,
        received: int = 0,
    ) -> None:
        self.link_id, key = derive_link_keys(secret)
        self._aead = ChaCha20Poly1305(key)
        self._random = random
        self._out = Direction.TO_NEW if creator else Direction.TO_CREATOR
        self._in = Direction.TO_CREATOR if creator else Direction.TO_NEW
        self.sent = sent
        self.received = received

    def _aad(self, direction: Direction, index: int) -> bytes:
        return _LABEL + self.link_id + bytes([direction]) + index.to_bytes(8, "big")

    def seal(self, plaintext: bytes) -> bytes:
        """The next message to the other device."""
        nonce = self._random(NONCE_BYTES)
        if len(nonce) != NONCE_BYTES:
            raise ValueError("the random source gave a short nonce")
        sealed = nonce + self._aead.encrypt(nonce, plaintext, self._aad(self._out, self.sent))
        self.sent += 1
        return sealed

    def open(self, sealed: bytes) -> bytes:
        """The next message from the other device (LinkFailedError if it is not that)."""
        if len(sealed) < OVERHEAD:
            raise LinkFailedError("a link message too short to be sealed")
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            plaintext = self._aead.decrypt(nonce, body, self._aad(self._in, self.received))
        except InvalidTag:
            raise LinkFailedError(
                f"link message {self.received} does not open (tampered, reordered or foreign)"
            ) from None
        self.received += 1
        return plaintext
