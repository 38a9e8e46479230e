"""Signing requests as :mod:`messenger.api.signing` describes.

Every authenticated request carries the client ID, a timestamp (Unix ms), a
fresh random nonce and an Ed25519 signature over
:func:`~messenger.api.signing.canonical_request` (method, path and query,
client ID, timestamp, nonce, SHA-256 of the body). The signature key is
the one the server certified in the client's credential, which is also its
MLS signature key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api.fields import b64encode
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_BYTES,
    canonical_request,
)

__all__ = ["Signer"]


class Signer:
    """Signs requests for one client."""

    def __init__(
        self,
        client_id: str,
        private_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.client_id = client_id
        self._key = Ed25519PrivateKey.from_private_bytes(private_key)
        self._clock = clock
        self._random = random

    def __repr__(self) -> str:  # never show the key
        return f"Signer(client_id={self.client_id!r})"

    def headers(self, method: str, target: str, body: bytes) -> dict[str, str]:
        """The authentication headers for ``method target`` with ``body``."""
        timestamp = int(self._clock() * 1000)
        nonce = b64encode(self._random(NONCE_BYTES))
        message = canonical_request(method, target, self.client_id, timestamp, nonce, body)
        return {
            HEADER_CLIENT: self.client_id,
            HEADER_TIMESTAMP: str(timestamp),
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64encode(self._key.sign(message)),
        }
