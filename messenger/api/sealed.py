"""Sealed sending: a send proves membership of the group's epoch, not who sent it.

Members derive a 32-byte **send token** per epoch from the MLS exporter
(RFC 9420 §8.5)::

    token = MLS-Exporter(SEND_TOKEN_LABEL, group_id, 32)

Whoever commits an epoch (or creates the group) registers
:func:`token_digest` (token) for it with the commit; a send to the group
then carries the token instead of a client signature, and the server
compares digests in constant time. Only members of that epoch can compute
the token (a removed member's exporter secrets end with its last epoch,
RFC 9420 §8), and the digest in the database does not give the token
back. docs/metadata.md §3 describes the rules and the abuse controls.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["SEND_TOKEN_LABEL", "token_digest"]

#: The exporter label of the send token.
SEND_TOKEN_LABEL: Final = b"messenger send token"
_DIGEST_PREFIX: Final = b"messenger send token digest v1\x00"


def token_digest(token: bytes) -> bytes:
    """What the server keeps of an epoch's send token: its SHA-256 (domain-separated)."""
    return hashlib.sha256(_DIGEST_PREFIX + token).digest()
