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

where ``version`` is two bytes and ``account_id`` is UTF-8. In version 2
(:data:`FINGERPRINT_VERSION`, docs/devices.md §1) ``key_material`` is the
side's **account key**, the key that certifies every device of the account:
the number stays the same when a contact links or removes a device, and
changes with a new account key (a new account, or a server's "ghost" key).
An account without an account key (registered before account keys) falls
back to version 1 (:data:`LEGACY_FINGERPRINT_VERSION`), whose
``key_material`` is the account's client signature keys, sorted and
concatenated. Each side uses its own version; the two never coincide, as
the version is hashed in. Its first 30 bytes give 30 digits: each 5-byte
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
    "LEGACY_FINGERPRINT_VERSION",
    "AccountSide",
    "SafetyNumber",
    "Side",
    "account_fingerprint",
    "identity_fingerprint",
    "safety_number",
]

#: Over the account key (docs/devices.md §1).
FINGERPRINT_VERSION: Final = 2
#: Over the devices' signature keys, for an account without an account key.
LEGACY_FINGERPRINT_VERSION: Final = 1
ITERATIONS: Final = 5200
_DIGITS_PER_SIDE: Final = 30


def _key_material(signature_keys: Iterable[bytes]) -> bytes:
    keys = sorted(set(bytes(k) for k in signature_keys))
    if not keys:
        raise ValueError("an identity has at least one signature key")
    return b"".join(keys)


def _fingerprint(version: int, account_id: str, material: bytes) -> str:
    digest = hashlib.sha512(
        version.to_bytes(2, "big") + material + account_id.encode("utf-8")
    ).digest()
    for _ in range(ITERATIONS - 1):
        digest = hashlib.sha512(digest + material).digest()
    chunks = (int.from_bytes(digest[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return "".join(f"{chunk:05d}" for chunk in chunks)


def identity_fingerprint(account_id: str, signature_keys: Iterable[bytes]) -> str:
    """The 30-digit version-1 fingerprint of an account and its clients' signature keys."""
    return _fingerprint(LEGACY_FINGERPRINT_VERSION, account_id, _key_material(signature_keys))


def account_fingerprint(account_id: str, account_key: bytes) -> str:
    """The 30-digit version-2 fingerprint of an account and its account key."""
    if len(account_key) != 32:
        raise ValueError("an account key is a 32-byte Ed25519 public key")
    return _fingerprint(FINGERPRINT_VERSION, account_id, bytes(account_key))


@dataclass(frozen=True, slots=True)
class AccountSide:
    """One side of a version-2 safety number: an account and its account key."""

    account_id: str
    account_key: bytes


#: One side: an :class:`AccountSide` (version 2), or ``(account_id,
#: signature_keys)`` for an account without an account key (version 1).
Side = AccountSide | tuple[str, Iterable[bytes]]


def _side_fingerprint(side: Side) -> str:
    if isinstance(side, AccountSide):
        return account_fingerprint(side.account_id, side.account_key)
    account_id, keys = side
    return identity_fingerprint(account_id, keys)


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


def safety_number(mine: Side, theirs: Side) -> SafetyNumber:
    """The safety number of two identities (each a :data:`Side`).

    Symmetric: ``safety_number(a, b) == safety_number(b, a)``.
    """
    sides = sorted(_side_fingerprint(side) for side in (mine, theirs))
    digits = "".join(sides)
    assert len(digits) == 2 * _DIGITS_PER_SIDE
    return SafetyNumber(digits)
