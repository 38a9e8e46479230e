"""The message content format: round trips, padding, versions, hostile bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.client.content import (
    CONTENT_VERSION,
    MAX_TEXT_BYTES,
    Content,
    ContentKind,
    Delete,
    Edit,
    Profile,
    Reaction,
    ReadReceipt,
    Reply,
    Text,
    Typing,
    Unsupported,
    decode_content,
    encode_content,
    padded_length,
)
from messenger.client.errors import ContentDecodeError, MessageTooLongError

UID = bytes(range(16))
TARGET = bytes(range(16, 32))

BODIES = [
    Text("hello"),
    Text(""),
    Text("ünïcödé 🎉 and a\nnewline"),
    Reply(TARGET, "a reply"),
    Edit(TARGET, "new text"),
    Delete(TARGET),
    Reaction(TARGET, "👍🏽"),
    Reaction(TARGET, "👍", remove=True),
    ReadReceipt(TARGET),
    Typing(True),
    Typing(False),
    Profile("Alice"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_every_kind_round_trips(body: object) -> None:
    content = Content(UID, 1_700_000_000_000, body)  # type: ignore[arg-type]
    data = encode_content(content)
    assert decode_content(data) == content
    assert len(data) == padded_length(len(data)) and len(data) % 64 == 0


def test_the_layout_starts_with_version_kind_uid_and_time() -> None:
    data = encode_content(Content(UID, 5, Text("hi")))
    assert data[0] == CONTENT_VERSION and data[1] == ContentKind.TEXT
    assert data[2:18] == UID and int.from_bytes(data[18:26], "big") == 5


def test_padding_hides_lengths_within_a_bucket() -> None:
    sizes = {len(encode_content(Content(UID, 0, Text("x" * n)))) for n in range(0, 30)}
    assert sizes == {64}
    assert padded_length(1) == 64 and padded_length(65) == 128 and padded_length(512) == 512
    assert padded_length(513) == 768 and padded_length(4097) == 5120
    long = encode_content(Content(UID, 0, Text("y" * 5000)))
    assert len(long) % 1024 == 0


def test_a_newer_version_is_unsupported_not_an_error() -> None:
    assert decode_content(b"\x03anything at all") == Unsupported(3)
    assert decode_content(b"\xff") == Unsupported(255)


def test_an_unknown_kind_keeps_its_uid_and_time() -> None:
    data = bytearray(encode_content(Content(UID, 42, Text("future"))))
    data[1] = 200
    assert decode_content(bytes(data)) == Unsupported(1, 200, UID, 42)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        b"\x01\x01" + UID,  # no time
        bytes(encode_content(Content(UID, 0, Text("x"))))[:-1] + b"\x01",  # non-zero padding
        b"\x01\x07" + UID + bytes(8) + b"\x01\x02" + bytes(40),  # typing flag 2
        b"\x01\x01" + UID + bytes(8) + b"\x02\x01\xff" + bytes(40),  # text not UTF-8
        b"\x01\x04" + UID + bytes(8) + b"\x03abc" + bytes(40),  # truncated target
        b"\x01\x04" + UID + bytes(8) + b"\x11" + bytes(17) + bytes(30),  # trailing field bytes
        b"\x01\x05" + UID + bytes(8) + b"\x12" + TARGET + b"\x00\x00" + bytes(30),  # empty emoji
    ],
)
def test_malformed_content_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(ContentDecodeError):
        decode_content(data)


def test_encoding_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(MessageTooLongError):
        encode_content(Content(UID, 0, Text("x" * (MAX_TEXT_BYTES + 1))))
    with pytest.raises(ValueError, match="uid"):
        encode_content(Content(b"short", 0, Text("x")))
    with pytest.raises(ValueError, match="reaction"):
        encode_content(Content(UID, 0, Reaction(TARGET, "")))
    with pytest.raises(ValueError, match="target"):
        encode_content(Content(UID, 0, Delete(b"x")))
    with pytest.raises(ValueError, match="profile"):
        encode_content(Content(UID, 0, Profile("")))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decoding_gives_a_record_or_a_typed_error(data: bytes) -> None:
    try:
        result = decode_content(data)
    except ContentDecodeError:
        return
    assert isinstance(result, Content | Unsupported)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(BODIES).flatmap(
        lambda body: (
            st.just(body) if not isinstance(body, Text) else st.text(max_size=2000).map(Text)
        )
    ),
    st.binary(min_size=16, max_size=16),
    st.integers(min_value=0, max_value=2**64 - 1),
)
def test_fuzz_round_trip(body: object, uid: bytes, sent_at: int) -> None:
    content = Content(uid, sent_at, body)  # type: ignore[arg-type]
    assert decode_content(encode_content(content)) == content


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_encodings_never_crash(data: st.DataObject) -> None:
    body = data.draw(st.sampled_from(BODIES))
    encoded = bytearray(encode_content(Content(UID, 7, body)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ContentDecodeError):
        decode_content(bytes(encoded))
