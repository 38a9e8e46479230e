"""Safety numbers: a fingerprint over two identities that users compare.

The server (the Authentication Service of RFC 9750 §4) certifies which
signature key belongs to which account; a malicious server could certify a
key of its own ("ghost users", docs/threat-model.md). Two users rule this
out by comparing, out of band, a number derived from the keys their apps
actually use in MLS (RFC 9750 §6: users should be able to verify each
other's credentials).

The construction follows Signal's numeric fingerprints. For each side, the
*identity fingerprint* is::

    h = SHA-512(version || key_material || account_id)
    repeat 5199 times: h = SHA-512(h || key_material)

where ``version`` is two bytes (``0x0001``), ``key_material`` is the
account's client signature keys, sorted and concatenated, and
``account_id`` is UTF-8. Its first 30 bytes give 30 digits: each 5-byte
chunk, read as a big-endian integer modulo 100000, gives 5 digits. The
safety number is the two sides' 30-digit strings in sorted order,
concatenated: 60 digits, shown as 12 groups of 5. Sorting makes it the same
whoever computes it; the iterations make it costly to search for keys whose
number looks alike.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "FINGERPRINT_VERSION",
    "ITERATIONS",
    "SafetyNumber",
    "identity_fingerprint",
    "safety_number",
]

FINGERPRINT_VERSION: Final = 1
ITERATIONS: Final = 5200
_DIGITS_PER_SIDE: Final = 30


def _key_material(signature_keys: Iterable[bytes]) -> bytes:
    keys = sorted(set(bytes(k) for k in signature_keys))
    if not keys:
        raise ValueError("an identity has at least one signature key")
    return b"".join(keys)


def identity_fingerprint(account_id: str, signature_keys: Iterable[bytes]) -> str:
    """The 30-digit fingerprint of one account and its clients' signature keys."""
    material = _key_material(signature_keys)
    digest = hashlib.sha512(
        FINGERPRINT_VERSION.to_bytes(2, "big") + material + account_id.encode("utf-8")
    ).digest()
    for _ in range(ITERATIONS - 1):
        digest = hashlib.sha512(digest + material).digest()
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


@dataclass(frozen=True, slots=True)
class SafetyNumber:
    """The 60 digits two users compare."""

    digits: str

    @property
    def groups(self) -> tuple[str, ...]:
        """12 groups of 5 digits."""
        return tuple(self.digits[i : i + 5] for i in range(0, len(self.digits), 5))

    @property
    def fingerprint(self) -> bytes:
        """What is stored when the user marks the number as verified."""
        return hashlib.sha256(self.digits.encode("ascii")).digest()

    def __str__(self) -> str:
        """Three lines of four groups, as shown to users."""
        groups = self.groups
        return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


def safety_number(
    mine: tuple[str, Iterable[bytes]], theirs: tuple[str, Iterable[bytes]]
) -> SafetyNumber:
    """The safety number of two identities, each ``(account_id, signature_keys)``.

    Symmetric: ``safety_number(a, b) == safety_number(b, a)``.
    """
    sides = sorted(identity_fingerprint(account, keys) for account, keys in (mine, theirs))
    digits = "".join(sides)
    assert len(digits) == 2 * _DIGITS_PER_SIDE
    return SafetyNumber(digits)
