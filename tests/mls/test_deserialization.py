"""RFC 9420 §2.1.2: variable-length vector headers (deserialization.json)."""

from __future__ import annotations

from typing import Any

import pytest

from messenger.mls.codec import Reader, Writer, encode_varint
from tests.mls.vectors import assert_eq, cases, h

#: Longer bodies than this are not materialised (the largest is 2^30 - 1).
_MAX_BODY = 1 << 16


@pytest.mark.parametrize("tc", cases("deserialization"))
def test_vlbytes_header(tc: dict[str, Any]) -> None:
    header = h(tc["vlbytes_header"])
    length: int = tc["length"]

    r = Reader(header)
    assert_eq("decoded length", r.varint(), length)
    assert_eq("bytes left after header", r.remaining(), 0)
    assert_eq("re-encoded header", encode_varint(length), header)

    if length <= _MAX_BODY:
        body = bytes(i & 0xFF for i in range(length))
        w = Writer()
        w.opaque(body)
        assert_eq("opaque<V> encoding", w.getvalue(), header + body)
        r = Reader(header + body)
        assert_eq("opaque<V> body", r.opaque(), body)
        r.finish()
