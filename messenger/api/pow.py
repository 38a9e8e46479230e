"""The registration proof of work, shared by client (solve) and server (check).

The server hands out a challenge and a difficulty ``d``; the client looks
for a ``nonce`` such that ``SHA-256(prefix || challenge || signature_key ||
nonce)`` starts with ``d`` zero bits. Binding the work to the signature key
means that one solution registers exactly one key, and the server accepts
each challenge once. On average a solution costs ``2**d`` hashes; the server
picks ``d`` (about 20 costs a desktop well under a second in Python).

Hashcash has no exact total: :func:`solve_pow` can report, every
:data:`PROGRESS_INTERVAL` attempts, how many it made and how many a solution
takes on average (``2**d``), from which a caller shows an *estimate*.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Final

__all__ = [
    "PROGRESS_INTERVAL",
    "PowProgress",
    "estimated_fraction",
    "expected_attempts",
    "leading_zero_bits",
    "pow_digest",
    "pow_ok",
    "solve_pow",
]

_PREFIX: Final = b"messenger-pow-v1\n"
_MAX_NONCE: Final = 2**64 - 1

#: How many attempts :func:`solve_pow` makes between two progress reports.
PROGRESS_INTERVAL: Final = 1 << 14

PowProgress = Callable[[int, int], None]
"""``progress(attempts, expected)``: attempts made so far, and the mean for the difficulty."""


def expected_attempts(difficulty: int) -> int:
    """The mean number of attempts a solution takes: ``2**difficulty``."""
    return 1 << max(difficulty, 0)


def estimated_fraction(attempts: int, expected: int) -> float:
    """The chance that a solution would have been found within ``attempts``.

    ``1 - (1 - 1/expected) ** attempts``, about ``1 - exp(-attempts/expected)``:
    it grows with the work and stays below 1 until a solution is found, which is
    the honest shape for an estimate of hashcash progress.
    """
    if expected <= 1:
        return 1.0
    return -math.expm1(-attempts / expected)


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


def solve_pow(
    challenge: bytes,
    signature_key: bytes,
    difficulty: int,
    start: int = 0,
    *,
    progress: PowProgress | None = None,
) -> int:
    """The first nonce from ``start`` on that solves the challenge.

    ``progress``, if given, is called on the calling thread every
    :data:`PROGRESS_INTERVAL` attempts with ``(attempts, expected_attempts)``;
    a caller on another thread marshals it (``loop.call_soon_threadsafe``).
    """
    material = hashlib.sha256(
        _PREFIX + len(challenge).to_bytes(2, "big") + challenge + signature_key
    )
    shift = 256 - difficulty
    expected = expected_attempts(difficulty)
    nonce = start
    next_report = start + PROGRESS_INTERVAL
    while True:
        h = material.copy()
        h.update(nonce.to_bytes(8, "big"))
        if int.from_bytes(h.digest(), "big") >> shift == 0:
            return nonce
        nonce += 1
        if nonce == next_report:
            next_report += PROGRESS_INTERVAL
            if progress is not None:
                progress(nonce - start, expected)
