"""The link exchange's messages: round trips, and every malformed one refused cleanly."""

from __future__ import annotations

import json

import pytest

from messenger.client import LinkFailedError
from messenger.client.linking import payloads as p

ANSWER = p.Answer(
    client_id="client-1",
    queue_id="queue-1",
    credential=b"\x01" * 100,
    account_private_key=b"\x02" * 32,
    account_public_key=b"\x03" * 32,
    certified_at=1_700_000_000_000,
    device_certificate=b"\x04" * 64,
    server_key=b"\x05" * 32,
    devices_group=b"\x06" * 16,
    handle="alice",
    display_name="Alice",
    history=True,
    groups=12,
)


@pytest.mark.parametrize(
    "payload",
    [
        p.Invitation("acct-1", "Alice", "Laptop"),
        p.Invitation("acct-1", None, None),
        p.Offer(b"\x01" * 32, b"\x02" * 64, "Desktop"),
        ANSWER,
        p.Ready(),
        p.Added((b"\x01" * 16, b"\x02" * 32), 1234),
        p.Added((), 0),
        p.HistoryEnd(3, 3_000_000, b"\x09" * 32),
        p.Done(),
        p.Refusal("declined"),
        p.Refusal("cancelled"),
    ],
)
def test_round_trips(payload: object) -> None:
    assert p.decode(p.encode(payload)) == payload  # type: ignore[arg-type]


def test_chunks_carry_raw_bytes() -> None:
    assert p.decode(p.encode_chunk(b"\x00\xff" * 10)) == b"\x00\xff" * 10


def test_the_account_key_stays_out_of_reprs() -> None:
    assert "\\x02" not in repr(ANSWER) and "account_private_key" not in repr(ANSWER)


def _raw(kind: p.Kind, data: object) -> bytes:
    return bytes([kind]) + json.dumps(data).encode()


def _answer_with(**changes: object) -> bytes:
    data = json.loads(p.encode(ANSWER)[1:])
    data.update(changes)
    return _raw(p.Kind.ANSWER, data)


@pytest.mark.parametrize(
    "plaintext",
    [
        b"",
        b"\x00{}",  # an unknown kind
        b"\xff{}",
        bytes([p.Kind.CHUNK]),  # an empty chunk
        bytes([p.Kind.READY]) + b"not json",
        bytes([p.Kind.READY]) + b"[]",
        _raw(p.Kind.READY, {"extra": 1}),
        _raw(p.Kind.INVITATION, {"account_id": "a b", "display_name": None, "device_name": None}),
        _raw(p.Kind.INVITATION, {"account_id": "a", "display_name": 5, "device_name": None}),
        _raw(p.Kind.INVITATION, {"account_id": "a", "display_name": "x\x00", "device_name": None}),
        _raw(p.Kind.OFFER, {"signature_key": "AAAA", "proof": "AAAA", "device_name": "D"}),
        _raw(p.Kind.OFFER, {"signature_key": "A" * 43, "proof": "A" * 86, "device_name": ""}),
        _raw(p.Kind.OFFER, {"signature_key": "A" * 43, "proof": "A" * 86, "device_name": "D" * 65}),
        _answer_with(groups=-1),
        _answer_with(groups=True),
        _answer_with(history="yes"),
        _answer_with(account_private_key=None),  # part of the account key only
        _answer_with(certified_at=1.5),
        _answer_with(credential="not base64!"),
        _answer_with(credential="AAA="),  # padded
        _raw(p.Kind.ADDED, {"groups": ["AAAA", 5], "history_bytes": 0}),
        _raw(p.Kind.ADDED, {"groups": [""], "history_bytes": 0}),
        _raw(p.Kind.ADDED, {"groups": [], "history_bytes": -5}),
        _raw(p.Kind.HISTORY_END, {"chunks": 1, "size": 1, "sha256": "AAAA"}),
        _raw(p.Kind.REFUSAL, {"reason": "bored"}),
    ],
)
def test_malformed_messages_are_refused(plaintext: bytes) -> None:
    with pytest.raises(LinkFailedError):
        p.decode(plaintext)
