"""The TLS presentation language as used by MLS (RFC 9420 §2.1).

One codec idiom for every wire struct:

* a :class:`Writer` appends fixed-width integers, MLS variable-length
  integers (RFC 9420 §2.1.2) and length-prefixed vectors to a buffer;
* a :class:`Reader` consumes them, checks every bound, and rejects
  non-minimal varints, the reserved ``11`` prefix, truncation and trailing
  bytes with :class:`~messenger.mls.errors.DecodeError` -- never ``IndexError``,
  ``ValueError`` or ``struct.error``;
* a struct subclasses :class:`Struct` and implements ``encode(w)`` and the
  class method ``decode(r)``; :meth:`Struct.to_bytes` and
  :meth:`Struct.from_bytes` wrap them and insist on consuming every byte;
* a :class:`CachedStruct` is a deeply immutable struct that keeps its
  encoding, for the values that are hashed and signed over and over.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable, Sequence
from typing import Self, TypeVar

from .errors import DecodeError, UsageError

__all__ = [
    "MAX_VARINT",
    "CachedStruct",
    "Reader",
    "Struct",
    "Writer",
    "decode_all",
    "encode_items",
    "encode_varint",
    "enum_value",
    "vl_bytes",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.IntEnum)

#: The largest value a variable-length integer can hold (RFC 9420 §2.1.2).
MAX_VARINT = (1 << 30) - 1


def encode_varint(value: int) -> bytes:
    """Encode ``value`` in the minimal MLS varint form (RFC 9420 §2.1.2)."""
    if value < 0:
        raise ValueError("varint must not be negative")
    if value < 0x40:
        return bytes((value,))
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value <= MAX_VARINT:
        return (value | 0x8000_0000).to_bytes(4, "big")
    raise ValueError("varint too large")


def enum_value(cls: type[E], value: int) -> E:
    """``value`` as a member of ``cls``; :class:`DecodeError` if it is unknown.

    For the closed enums of RFC 9420 whose unknown values cannot be parsed
    (``ContentType``, ``SenderType``, ``WireFormat``, ...).
    """
    try:
        return cls(value)
    except ValueError:
        raise DecodeError(f"unknown {cls.__name__} {value}") from None


def vl_bytes(data: bytes) -> bytes:
    """``opaque data<V>``: a varint length followed by the bytes."""
    return encode_varint(len(data)) + data


class Writer:
    """Appends TLS-encoded values to an internal buffer."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)

    def raw(self, data: bytes) -> None:
        """Fixed-size ``opaque data[n]``: the bytes with no length."""
        self._buf += data

    def u8(self, value: int) -> None:
        self._buf += value.to_bytes(1, "big")

    def u16(self, value: int) -> None:
        self._buf += value.to_bytes(2, "big")

    def u32(self, value: int) -> None:
        self._buf += value.to_bytes(4, "big")

    def u64(self, value: int) -> None:
        self._buf += value.to_bytes(8, "big")

    def boolean(self, value: bool) -> None:
        self._buf.append(1 if value else 0)

    def varint(self, value: int) -> None:
        self._buf += encode_varint(value)

    def opaque(self, data: bytes) -> None:
        """``opaque data<V>`` (RFC 9420 §2.1.2)."""
        n = len(data)
        buf = self._buf
        if n < 0x40:
            buf.append(n)
        else:
            buf += encode_varint(n)
        buf += data

    def vector(self, items: Iterable[T], item: Callable[[Writer, T], None]) -> None:
        """``T items<V>``: the encoded items, prefixed by their byte length."""
        inner = Writer()
        for value in items:
            item(inner, value)
        self._append_vector(inner._buf)

    def structs(self, items: Iterable[Struct]) -> None:
        """``T items<V>`` for a vector of :class:`Struct` values."""
        inner = Writer()
        for value in items:
            value.encode(inner)
        self._append_vector(inner._buf)

    def _append_vector(self, body: bytearray) -> None:
        self._buf += encode_varint(len(body))
        self._buf += body

    def u16s(self, values: Sequence[int]) -> None:
        """``uint16 values<V>``: the same as ``vector(values, Writer.u16)``."""
        self.opaque(b"".join(v.to_bytes(2, "big") for v in values))

    def optional(self, value: T | None, item: Callable[[Writer, T], None]) -> None:
        """``optional<T>`` (RFC 9420 §2.1.3): a presence byte then the value."""
        if value is None:
            self._buf.append(0)
        else:
            self._buf.append(1)
            item(self, value)

    def struct(self, value: Struct) -> None:
        value.encode(self)


class Reader:
    """Consumes TLS-encoded values from ``data``, checking every bound."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def position(self) -> int:
        return self._pos

    def remaining(self) -> int:
        return self._end - self._pos

    def at_end(self) -> bool:
        return self._pos >= self._end

    def finish(self) -> None:
        """Raise :class:`DecodeError` unless every byte was consumed."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing bytes")

    def read(self, n: int) -> bytes:
        """Fixed-size ``opaque data[n]``."""
        pos = self._pos
        end = pos + n
        if n < 0 or end > self._end:
            raise DecodeError(f"truncated: needed {n} bytes, {self._end - pos} left")
        self._pos = end
        return self._data[pos:end]

    def u8(self) -> int:
        pos = self._pos
        if pos >= self._end:
            raise DecodeError("truncated: needed 1 byte, 0 left")
        self._pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        pos = self._pos
        end = pos + 2
        if end > self._end:
            self.read(2)  # raises
        self._pos = end
        return int.from_bytes(self._data[pos:end], "big")

    def u32(self) -> int:
        pos = self._pos
        end = pos + 4
        if end > self._end:
            self.read(4)  # raises
        self._pos = end
        return int.from_bytes(self._data[pos:end], "big")

    def u64(self) -> int:
        pos = self._pos
        end = pos + 8
        if end > self._end:
            self.read(8)  # raises
        self._pos = end
        return int.from_bytes(self._data[pos:end], "big")

    def boolean(self) -> bool:
        value = self.u8()
        if value > 1:
            raise DecodeError(f"invalid boolean {value}")
        return value == 1

    def varint(self) -> int:
        """A minimal MLS variable-length integer (RFC 9420 §2.1.2)."""
        first = self.u8()
        prefix = first >> 6
        if prefix == 0:
            return first
        if prefix == 3:
            raise DecodeError("invalid varint prefix 0b11")
        length = 1 << prefix
        value = first & 0x3F
        for byte in self.read(length - 1):
            value = (value << 8) | byte
        if (prefix == 1 and value < 0x40) or (prefix == 2 and value < 0x4000):
            raise DecodeError("non-minimal varint encoding")
        return value

    def opaque(self) -> bytes:
        """``opaque data<V>``."""
        pos = self._pos
        end = self._end
        if pos < end:
            data = self._data
            n = data[pos]
            start = -1
            if n < 0x40:  # a one-byte length: most fields
                start = pos + 1
            elif n < 0x80 and pos + 1 < end:  # two bytes: signatures, ciphertexts
                n = ((n & 0x3F) << 8) | data[pos + 1]
                if n >= 0x40:  # else not minimal
                    start = pos + 2
            if start >= 0:
                stop = start + n
                if stop <= end:
                    self._pos = stop
                    return data[start:stop]
        return self.read(self.varint())  # the general case, and every error

    def u16s(self) -> tuple[int, ...]:
        """``uint16 values<V>``: the same as ``tuple(vector(Reader.u16))``."""
        data = self.opaque()
        n = len(data)
        if n & 1:
            raise DecodeError("truncated: needed 2 bytes, 1 left")
        return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, n, 2))

    def taken(self, start: int) -> bytes:
        """The bytes consumed since position ``start``."""
        return self._data[start : self._pos]

    def buffer(self) -> tuple[bytes, int, int]:
        """``(data, position, end)``: for a decoder that parses the bytes itself.

        It then moves on with :meth:`seek`, or lets the usual methods take over.
        """
        return self._data, self._pos, self._end

    def seek(self, position: int) -> None:
        """Continue at ``position``, between the current position and the end."""
        if not self._pos <= position <= self._end:
            raise UsageError(f"cannot seek to {position}")
        self._pos = position

    def sub(self) -> Reader:
        """A reader over the next ``<V>``-prefixed region; advances past it."""
        length = self.varint()
        start = self._pos
        end = start + length
        if end > self._end:
            raise DecodeError(f"truncated: vector of {length} bytes, {self._end - start} left")
        self._pos = end
        return Reader(self._data, start, end)

    def vector(self, item: Callable[[Reader], T]) -> list[T]:
        """``T items<V>``: decode items until the prefixed region is used up."""
        pos = self._pos
        if pos < self._end and self._data[pos] == 0:  # empty: most extension lists
            self._pos = pos + 1
            return []
        inner = self.sub()
        out: list[T] = []
        while inner._pos < inner._end:
            out.append(item(inner))
        return out

    def structs(self, cls: type[S]) -> list[S]:
        """``T items<V>`` for a vector of :class:`Struct` values."""
        return self.vector(cls.decode)

    def optional(self, item: Callable[[Reader], T]) -> T | None:
        """``optional<T>`` (RFC 9420 §2.1.3)."""
        present = self.u8()
        if present == 0:
            return None
        if present != 1:
            raise DecodeError(f"invalid optional presence byte {present}")
        return item(self)


class Struct(abc.ABC):
    """A value with a TLS encoding. Subclasses are frozen dataclasses."""

    __slots__ = ()

    @abc.abstractmethod
    def encode(self, w: Writer) -> None:
        """Append this value's encoding to ``w``."""

    @classmethod
    @abc.abstractmethod
    def decode(cls, r: Reader) -> Self:
        """Consume one value from ``r``."""

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Decode exactly one value; trailing bytes are a :class:`DecodeError`."""
        r = Reader(bytes(data))
        value = cls.decode(r)
        r.finish()
        return value


S = TypeVar("S", bound=Struct)


class CachedStruct(Struct):
    """A :class:`Struct` that is immutable all the way down, with its encoding kept.

    For the values that are encoded and hashed again and again: leaf and
    parent nodes (tree hashes, RFC 9420 §7.8; signatures, §7.2), key
    packages (references, §5.2) and the GroupContext (§8.1). Subclasses are
    frozen dataclasses whose fields hold only immutable values (bytes, ints,
    tuples, other such structs); they implement :meth:`_encode_fields`, and
    :meth:`to_bytes` computes the encoding once. A decoder may hand over the
    bytes it consumed with :meth:`_keep_encoding`: decoding accepts only the
    canonical encoding, so they are the encoding.
    """

    __slots__ = ("_encoding",)

    _encoding: bytes

    @abc.abstractmethod
    def _encode_fields(self, w: Writer) -> None:
        """Append this value's encoding to ``w``, field by field."""

    def encode(self, w: Writer) -> None:
        w.raw(self.to_bytes())

    def to_bytes(self) -> bytes:
        try:
            return self._encoding
        except AttributeError:
            pass
        w = Writer()
        self._encode_fields(w)
        encoding = w.getvalue()
        object.__setattr__(self, "_encoding", encoding)
        return encoding

    def _keep_encoding(self, encoding: bytes) -> None:
        object.__setattr__(self, "_encoding", encoding)


def decode_all(data: bytes, item: Callable[[Reader], T]) -> T:
    """Decode one value with ``item`` and insist on consuming every byte."""
    r = Reader(bytes(data))
    value = item(r)
    r.finish()
    return value


def encode_items(items: Sequence[Struct]) -> bytes:
    """Encode ``items<V>`` of structs as standalone bytes."""
    w = Writer()
    w.structs(items)
    return w.getvalue()
