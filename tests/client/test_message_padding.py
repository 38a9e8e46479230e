"""The padded envelope of every MLS message, on the wire and stored (docs/metadata.md §4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messenger.api.blobs import is_padme
from messenger.api.padding import (
    ENVELOPE_OVERHEAD,
    MIN_BUCKET,
    PaddingError,
    bucket,
    is_bucket,
    pad,
    padded_length,
    unpad,
)


def test_buckets() -> None:
    assert [bucket(n) for n in (0, 1, 255, 256, 257, 512, 513, 65536)] == [
        256,
        256,
        256,
        256,
        512,
        512,
        1024,
        65536,
    ]
    assert is_padme(bucket(65537)) and bucket(65537) >= 65537
    assert bucket(65537) <= 65537 * 1.12
    with pytest.raises(ValueError):
        bucket(-1)


def test_texts_of_any_length_share_a_size() -> None:
    sizes = {len(pad(b"m" * n)) for n in range(1, MIN_BUCKET - ENVELOPE_OVERHEAD + 1)}
    assert sizes == {MIN_BUCKET}


@given(st.binary(min_size=1, max_size=200_000))
def test_round_trip_and_canonical_size(message: bytes) -> None:
    envelope = pad(message)
    assert len(envelope) == padded_length(len(message))
    assert is_bucket(len(envelope))
    assert len(envelope) <= max(MIN_BUCKET, 2 * (len(message) + ENVELOPE_OVERHEAD))
    assert unpad(envelope) == message


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x01" + bytes(300), "bare"),
        (b"", "not a padded"),
        (b"\xff\x02" + bytes(254), "not a padded"),
        (b"\xff\x01" + (0).to_bytes(4, "big") + bytes(250), "length"),
        (b"\xff\x01" + (300).to_bytes(4, "big") + bytes(250), "length"),
        (b"\xff\x01" + (3).to_bytes(4, "big") + b"abc" + bytes(250), "bucket"),
        (b"\xff\x01" + (3).to_bytes(4, "big") + b"abc" + bytes(246) + b"\x01", "zero"),
        (pad(b"abc") + bytes(256), "bucket"),
    ],
)
def test_anything_but_a_canonical_envelope_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(PaddingError, match=reason) as caught:
        unpad(data)
    assert caught.value.outdated == (reason == "bare")


@given(st.binary(max_size=600))
def test_random_bytes_never_crash_unpad(data: bytes) -> None:
    try:
        message = unpad(data)
    except PaddingError:
        return
    assert pad(message) == data, "only the canonical envelope of a message is accepted"
