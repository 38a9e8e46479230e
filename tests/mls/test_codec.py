"""RFC 9420 §2.1: the TLS presentation language codec (messenger.mls.codec)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest

from messenger.mls.codec import (
    MAX_VARINT,
    Reader,
    Struct,
    Writer,
    decode_all,
    encode_items,
    encode_varint,
    enum_value,
    vl_bytes,
)
from messenger.mls.errors import DecodeError

# -- varints (RFC 9420 §2.1.2) -------------------------------------------------

VARINT_BOUNDARIES = [
    (0, "00"),
    (1, "01"),
    (37, "25"),
    (0x3F, "3f"),
    (0x40, "4040"),
    (0x3FFF, "7fff"),
    (0x4000, "80004000"),
    (494878333, "9d7f3e7d"),
    (MAX_VARINT, "bfffffff"),
]


@pytest.mark.parametrize(("value", "encoding"), VARINT_BOUNDARIES, ids=lambda v: str(v))
def test_varint_boundaries(value: int, encoding: str) -> None:
    data = bytes.fromhex(encoding)
    assert encode_varint(value) == data
    r = Reader(data)
    assert r.varint() == value
    assert r.at_end()
    w = Writer()
    w.varint(value)
    assert w.getvalue() == data


@pytest.mark.parametrize("value", [-1, MAX_VARINT + 1, 1 << 40])
def test_varint_out_of_range_is_not_encodable(value: int) -> None:
    with pytest.raises(ValueError, match="varint"):
        encode_varint(value)


@pytest.mark.parametrize(
    "encoding",
    ["4000", "403f", "4025", "80000000", "80003fff", "80000001"],
)
def test_non_minimal_varint_rejected(encoding: str) -> None:
    with pytest.raises(DecodeError, match="non-minimal"):
        Reader(bytes.fromhex(encoding)).varint()


@pytest.mark.parametrize("encoding", ["c0", "c000000000000000", "ffffffffffffffff"])
def test_varint_prefix_11_rejected(encoding: str) -> None:
    with pytest.raises(DecodeError, match="0b11"):
        Reader(bytes.fromhex(encoding)).varint()


@pytest.mark.parametrize("encoding", ["", "40", "80", "8000", "800000"])
def test_truncated_varint_rejected(encoding: str) -> None:
    with pytest.raises(DecodeError, match="truncated"):
        Reader(bytes.fromhex(encoding)).varint()


# -- fixed-width integers and fixed-size opaque ---------------------------------


def test_fixed_width_integers_round_trip() -> None:
    w = Writer()
    w.u8(0xAB)
    w.u16(0xBEEF)
    w.u32(0xDEADBEEF)
    w.u64(0x0123456789ABCDEF)
    w.raw(b"xyz")
    data = w.getvalue()
    assert data.hex() == "abbeefdeadbeef0123456789abcdef78797a"
    assert len(w) == len(data)
    r = Reader(data)
    assert (r.u8(), r.u16(), r.u32(), r.u64(), r.read(3)) == (
        0xAB,
        0xBEEF,
        0xDEADBEEF,
        0x0123456789ABCDEF,
        b"xyz",
    )
    r.finish()


@pytest.mark.parametrize(
    ("method", "size"), [(Reader.u8, 1), (Reader.u16, 2), (Reader.u32, 4), (Reader.u64, 8)]
)
def test_truncated_integers_rejected(method: object, size: int) -> None:
    for n in range(size):
        with pytest.raises(DecodeError, match="truncated"):
            method(Reader(bytes(n)))  # type: ignore[operator]


def test_read_negative_or_past_end_rejected() -> None:
    r = Reader(b"abc")
    with pytest.raises(DecodeError):
        r.read(-1)
    with pytest.raises(DecodeError, match="truncated"):
        r.read(4)
    assert r.read(3) == b"abc"


def test_boolean() -> None:
    w = Writer()
    w.boolean(True)
    w.boolean(False)
    assert w.getvalue() == b"\x01\x00"
    r = Reader(b"\x01\x00\x02")
    assert r.boolean() is True
    assert r.boolean() is False
    with pytest.raises(DecodeError, match="boolean"):
        r.boolean()


# -- opaque<V> and vectors -------------------------------------------------------


def test_opaque_round_trip() -> None:
    for n in (0, 1, 63, 64, 300, 0x4000):
        data = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
        w = Writer()
        w.opaque(data)
        encoded = w.getvalue()
        assert encoded == vl_bytes(data) == encode_varint(n) + data
        r = Reader(encoded)
        assert r.opaque() == data
        r.finish()


def test_opaque_length_beyond_input_rejected() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"\x05abcd").opaque()
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"\x80\x01\x00\x00").opaque()


def test_vector_of_integers() -> None:
    w = Writer()
    w.vector([1, 2, 0xFFFF], Writer.u16)
    data = w.getvalue()
    assert data.hex() == "06" + "0001" + "0002" + "ffff"
    assert Reader(data).vector(Reader.u16) == [1, 2, 0xFFFF]


def test_vector_item_straddling_the_length_is_rejected() -> None:
    # Three bytes of uint16 items: the second item runs past the vector.
    with pytest.raises(DecodeError, match="truncated"):
        Reader(bytes.fromhex("03000100ff")).vector(Reader.u16)


def test_sub_reader_is_bounded() -> None:
    r = Reader(bytes.fromhex("02aabbcc"))
    inner = r.sub()
    assert inner.remaining() == 2
    assert inner.read(2) == b"\xaa\xbb"
    with pytest.raises(DecodeError):
        inner.u8()
    assert r.u8() == 0xCC
    assert r.at_end()


# -- optional<T> (RFC 9420 §2.1.3) -----------------------------------------------


def test_optional_presence_byte() -> None:
    w = Writer()
    w.optional(None, Writer.u8)
    w.optional(7, Writer.u8)
    assert w.getvalue() == b"\x00\x01\x07"
    r = Reader(w.getvalue())
    assert r.optional(Reader.u8) is None
    assert r.optional(Reader.u8) == 7
    r.finish()


@pytest.mark.parametrize("presence", [2, 0x40, 0xFF])
def test_optional_invalid_presence_byte_rejected(presence: int) -> None:
    with pytest.raises(DecodeError, match="presence"):
        Reader(bytes((presence, 7))).optional(Reader.u8)


def test_optional_present_but_truncated_rejected() -> None:
    with pytest.raises(DecodeError, match="truncated"):
        Reader(b"\x01").optional(Reader.u16)


# -- structs, trailing bytes -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pair(Struct):
    a: int
    b: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.a)
        w.opaque(self.b)

    @classmethod
    def decode(cls, r: Reader) -> _Pair:
        return cls(r.u16(), r.opaque())


def test_struct_round_trip_and_trailing_bytes() -> None:
    value = _Pair(513, b"hi")
    data = value.to_bytes()
    assert data.hex() == "0201026869"
    assert _Pair.from_bytes(data) == value
    with pytest.raises(DecodeError, match="1 trailing bytes"):
        _Pair.from_bytes(data + b"\x00")
    with pytest.raises(DecodeError, match="truncated"):
        _Pair.from_bytes(data[:-1])


def test_struct_vectors() -> None:
    items = [_Pair(1, b""), _Pair(2, b"x")]
    data = encode_items(items)
    assert data.hex() == "07" + "000100" + "00020178"
    assert decode_all(data, lambda r: r.structs(_Pair)) == items
    w = Writer()
    w.structs(items)
    assert w.getvalue() == data


def test_decode_all_rejects_trailing_bytes() -> None:
    assert decode_all(b"\x05", Reader.u8) == 5
    with pytest.raises(DecodeError, match="trailing"):
        decode_all(b"\x05\x06", Reader.u8)


def test_finish_on_sub_reader_counts_only_its_region() -> None:
    r = Reader(bytes.fromhex("0201020304"))
    inner = r.sub()
    inner.u8()
    with pytest.raises(DecodeError, match="1 trailing"):
        inner.finish()


# -- closed enums ---------------------------------------------------------------------


class _Color(enum.IntEnum):
    RED = 1
    GREEN = 2


def test_enum_value() -> None:
    assert enum_value(_Color, 2) is _Color.GREEN
    with pytest.raises(DecodeError, match="unknown _Color 0"):
        enum_value(_Color, 0)
    with pytest.raises(DecodeError, match="unknown _Color 3"):
        enum_value(_Color, 3)
