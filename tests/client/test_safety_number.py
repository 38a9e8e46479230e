"""Safety numbers: symmetric, stable, and sensitive to every key."""

from __future__ import annotations

import pytest

from messenger.client.safety_number import (
    SafetyNumber,
    identity_fingerprint,
    safety_number,
)

ALICE = ("acct-alice", [bytes([1]) * 32])
BOB = ("acct-bob", [bytes([2]) * 32, bytes([3]) * 32])


def test_symmetric() -> None:
    assert safety_number(ALICE, BOB) == safety_number(BOB, ALICE)


def test_stable_across_runs_and_key_order() -> None:
    # Pinned: a change of the construction must be deliberate (it breaks verifications).
    number = safety_number(ALICE, BOB)
    assert number.digits == safety_number(ALICE, (BOB[0], list(reversed(BOB[1])))).digits
    assert number.digits == PINNED


PINNED = "443467794433145998592976869742968680362776795008489727472137"


def test_shape_sixty_digits_in_twelve_groups() -> None:
    number = safety_number(ALICE, BOB)
    assert len(number.digits) == 60 and number.digits.isdigit()
    assert len(number.groups) == 12 and all(len(g) == 5 for g in number.groups)
    assert str(number).count("\n") == 2
    assert len(identity_fingerprint(*ALICE)) == 30


@pytest.mark.parametrize(
    "other",
    [
        ("acct-bob", [bytes([2]) * 32]),  # a client key less
        ("acct-bob", [bytes([2]) * 32, bytes([4]) * 32]),  # a key swapped
        ("acct-bobby", BOB[1]),  # another account id
    ],
)
def test_any_change_changes_the_number(other: tuple[str, list[bytes]]) -> None:
    assert safety_number(ALICE, other) != safety_number(ALICE, BOB)


def test_the_fingerprint_identifies_the_number() -> None:
    a = safety_number(ALICE, BOB)
    assert a.fingerprint == SafetyNumber(a.digits).fingerprint
    assert a.fingerprint != safety_number(ALICE, ("acct-carol", [bytes(32)])).fingerprint


def test_an_identity_needs_a_key() -> None:
    with pytest.raises(ValueError, match="key"):
        identity_fingerprint("acct", [])
