"""The registration proof of work, shared by client (solve) and server (check).

The server hands out a challenge and a difficulty ``d``; the client looks
for a ``nonce`` such that ``SHA-256(prefix || challenge || signature_key ||
nonce)`` starts with ``d`` zero bits. Binding the work to the signature key
means that one solution registers exactly one key, and the server accepts
each challenge once. On average a solution costs ``2**d`` hashes; the server
picks ``d`` (about 20 costs a desktop well under a second in Python).
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = [
    "leading_zero_bits",
    "pow_digest",
    "pow_ok",
    "solve_pow",
]

_PREFIX: Final = b"messenger-pow-v1\n"
_MAX_NONCE: Final = 2**64 - 1


def pow_digest(challenge: bytes, signature_key: bytes, nonce: int) -> bytes:
    """The digest whose leading zero bits count."""
    if not 0 <= nonce <= _MAX_NONCE:
        raise ValueError("nonce must fit in 64 bits")
    material = _PREFIX + len(challenge).to_bytes(2, "big") + challenge + signature_key
    return hashlib.sha256(material + nonce.to_bytes(8, "big")).digest()


def leading_zero_bits(digest: bytes) -> int:
    """How many bits at the start of ``digest`` are zero."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def pow_ok(challenge: bytes, signature_key: bytes, nonce: int, difficulty: int) -> bool:
    """Whether ``nonce`` solves the challenge for ``signature_key``."""
    if not 0 <= nonce <= _MAX_NONCE:
        return False
    return leading_zero_bits(pow_digest(challenge, signature_key, nonce)) >= difficulty


def solve_pow(challenge: bytes, signature_key: bytes, difficulty: int, start: int = 0) -> int:
    """The first nonce from ``start`` on that solves the challenge."""
    material = hashlib.sha256(
        _PREFIX + len(challenge).to_bytes(2, "big") + challenge + signature_key
    )
    shift = 256 - difficulty
    nonce = start
    while True:
        h = material.copy()
        h.update(nonce.to_bytes(8, "big"))
        if int.from_bytes(h.digest(), "big") >> shift == 0:
            return nonce
        nonce += 1
