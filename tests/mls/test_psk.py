"""RFC 9420 §8.4: PreSharedKeyID encoding and the psk_secret chain (psk_secret.json)."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.codec import Reader
from messenger.mls.errors import DecodeError
from messenger.mls.psk import PreSharedKeyID, PSKType, ResumptionPSKUsage, psk_secret
from tests.mls.vectors import assert_eq, cases, h


@pytest.mark.parametrize("tc", cases("psk_secret"))
def test_psk_secret_vector(tc: dict[str, Any]) -> None:
    suite = get_cipher_suite(tc["cipher_suite"])
    psks = [
        (PreSharedKeyID.external(h(p["psk_id"]), h(p["psk_nonce"])), h(p["psk"]))
        for p in tc["psks"]
    ]
    assert_eq(f"psk_secret ({len(psks)} psks)", psk_secret(suite, psks), h(tc["psk_secret"]))


def test_no_psks_is_zero_vector() -> None:
    for suite_id in (1, 5, 7):
        suite = get_cipher_suite(suite_id)
        assert psk_secret(suite, []) == bytes(suite.hash_len)


def test_external_round_trip() -> None:
    psk = PreSharedKeyID.external(b"id", b"n" * 32)
    data = psk.to_bytes()
    assert data == b"\x01\x02id\x20" + b"n" * 32
    assert PreSharedKeyID.from_bytes(data) == psk


def test_resumption_round_trip() -> None:
    psk = PreSharedKeyID.resumption(ResumptionPSKUsage.BRANCH, b"group", 7, b"\x00" * 32)
    data = psk.to_bytes()
    assert data[:2] == b"\x02\x03"
    decoded = PreSharedKeyID.from_bytes(data)
    assert decoded == psk
    assert decoded.psktype is PSKType.RESUMPTION
    assert decoded.usage is ResumptionPSKUsage.BRANCH
    assert decoded.psk_epoch == 7


@pytest.mark.parametrize("data", [b"\x00\x00\x00", b"\x03\x00\x00", b"\xff"])
def test_unknown_psktype_rejected(data: bytes) -> None:
    with pytest.raises(DecodeError, match="PSKType"):
        PreSharedKeyID.from_bytes(data)


def test_unknown_usage_rejected() -> None:
    bad = b"\x02\x00" + b"\x00" + bytes(8) + b"\x00"
    with pytest.raises(DecodeError, match="ResumptionPSKUsage"):
        PreSharedKeyID.from_bytes(bad)


def test_truncated_and_trailing_rejected() -> None:
    data = PreSharedKeyID.external(b"id", b"nonce").to_bytes()
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            PreSharedKeyID.from_bytes(data[:cut])
    with pytest.raises(DecodeError):
        PreSharedKeyID.from_bytes(data + b"\x00")
    r = Reader(data + data)
    assert PreSharedKeyID.decode(r) == PreSharedKeyID.decode(r)
    r.finish()


def test_psk_order_and_type_matter() -> None:
    suite = get_cipher_suite(1)
    a = (PreSharedKeyID.external(b"a", bytes(32)), b"A" * 32)
    b = (PreSharedKeyID.external(b"b", bytes(32)), b"B" * 32)
    res = (PreSharedKeyID.resumption(ResumptionPSKUsage.APPLICATION, b"a", 0, bytes(32)), b"A" * 32)
    assert psk_secret(suite, [a, b]) != psk_secret(suite, [b, a])
    assert psk_secret(suite, [a]) != psk_secret(suite, [res])
