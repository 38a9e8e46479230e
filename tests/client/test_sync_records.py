"""The sync record codec (docs/devices.md §3): round trips, bounds, and fuzzing.

The sender may be a hostile ex-device of the account: whatever bytes it
puts in a Sync message, decoding gives records or RecordDecodeError --
never another exception, never an unbounded value.
"""

from __future__ import annotations

import random

import pytest

from messenger.client.content import (
    MAX_SYNC_BYTES,
    MAX_TEXT_BYTES,
    Content,
    Sync,
    decode_content,
    encode_content,
)
from messenger.client.devices.records import (
    MAX_RECORDS,
    ContactBlocked,
    ContactName,
    ContactVerified,
    ConversationArchived,
    ConversationDraft,
    ConversationMuted,
    ConversationRead,
    DeviceInfo,
    RecordDecodeError,
    RecordType,
    Setting,
    SignedOut,
    Stamped,
    decode_records,
    encode_batches,
    encode_records,
    record_key,
)
from messenger.client.errors import ContentDecodeError
from messenger.mls.codec import Writer

GROUP = bytes(range(32))
UID = bytes(range(16))

ALL = [
    Stamped(DeviceInfo("client-1", "Laptop", 1_000), 1),
    Stamped(DeviceInfo("client-1", None, 0), 2),
    Stamped(ContactName("bob_B-1", "Bobby 🐙"), 3),
    Stamped(ContactName("bob", None), 4),
    Stamped(ContactBlocked("bob", True), 5),
    Stamped(ContactVerified("bob", b"\x01" * 32), 6),
    Stamped(ContactVerified("bob", None), 7),
    Stamped(ConversationMuted(GROUP, True, 123_456), 8),
    Stamped(ConversationMuted(GROUP, True, None), 9),
    Stamped(ConversationMuted(GROUP, False), 10),
    Stamped(ConversationArchived(GROUP, True), 11),
    Stamped(ConversationDraft(GROUP, "half a thought"), 12),
    Stamped(ConversationDraft(GROUP, None), 13),
    Stamped(ConversationRead(GROUP, UID), 14),
    Stamped(Setting("read_receipts", False), 15),
    Stamped(Setting("typing_indicators", True), 2**63 - 1),
    Stamped(SignedOut("client-2"), 16),
]


def test_every_record_type_round_trips() -> None:
    assert decode_records(encode_records(ALL)) == ALL
    assert {s.type for s in ALL} == set(RecordType)


def test_records_travel_as_sync_content() -> None:
    data = encode_content(Content(UID, 5, Sync(encode_records(ALL))))
    decoded = decode_content(data)
    assert isinstance(decoded, Content) and isinstance(decoded.body, Sync)
    assert decode_records(decoded.body.records) == ALL


def test_record_keys_name_the_value() -> None:
    assert record_key(ContactName("bob", "x")) == ("contact_name", "bob")
    assert record_key(ContactBlocked("bob", True)) == ("contact_blocked", "bob")
    assert record_key(ConversationDraft(GROUP, None)) == ("conversation_draft", GROUP.hex())
    assert record_key(Setting("read_receipts", True)) == ("setting", "read_receipts")


@pytest.mark.parametrize(
    "record",
    [
        DeviceInfo("has space", "x", 1),
        DeviceInfo("c", "", 1),
        DeviceInfo("c", "x" * 65, 1),
        ContactName("bob", "x" * 101),
        ContactVerified("bob", b""),
        ContactVerified("bob", b"x" * 65),
        ConversationMuted(b"", True),
        ConversationMuted(b"x" * 256, True),
        ConversationMuted(GROUP, True, -1),
        ConversationDraft(GROUP, "x" * (MAX_TEXT_BYTES + 1)),
        ConversationRead(GROUP, b"short"),
        Setting("notification_content", True),
        SignedOut("é"),
    ],
)
def test_malformed_records_are_not_encoded(record: object) -> None:
    with pytest.raises(ValueError):
        encode_records([Stamped(record, 1)])  # type: ignore[arg-type]


def test_batches_are_bounded_and_split() -> None:
    with pytest.raises(ValueError):
        encode_records([Stamped(ContactBlocked("bob", True), 1)] * (MAX_RECORDS + 1))
    many = [Stamped(ConversationDraft(bytes([i % 256]) * 32, "x" * 2000), i) for i in range(100)]
    batches = encode_batches(many)
    assert len(batches) > 1
    assert all(len(b) <= MAX_SYNC_BYTES for b in batches)
    assert [r for b in batches for r in decode_records(b)] == many
    small = [Stamped(ContactBlocked("bob", True), i) for i in range(600)]
    assert [len(decode_records(b)) for b in encode_batches(small)] == [256, 256, 88]


def _raw(kind: int, key: bytes, clock: int, value: bytes) -> bytes:
    w = Writer()
    w.u8(kind)
    w.opaque(key)
    w.u64(clock)
    w.opaque(value)
    return w.getvalue()


def _batch(*records: bytes, version: int = 1) -> bytes:
    w = Writer()
    w.u8(version)
    w.opaque(b"".join(records))
    return w.getvalue()


def test_unknown_types_and_versions_are_skipped() -> None:
    known = _raw(RecordType.CONTACT_BLOCKED, b"bob", 7, b"\x01")
    assert decode_records(_batch(_raw(200, b"?", 1, b"future"), known)) == [
        Stamped(ContactBlocked("bob", True), 7)
    ]
    assert decode_records(_batch(known, version=2)) == []


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        _batch(_raw(RecordType.CONTACT_BLOCKED, b"bob", 7, b"\x02")),  # a flag of 2
        _batch(_raw(RecordType.CONTACT_BLOCKED, b"bob", 7, b"\x01\x00")),  # trailing
        _batch(_raw(RecordType.CONTACT_BLOCKED, b"b b", 7, b"\x01")),  # not an ID
        _batch(_raw(RecordType.CONTACT_BLOCKED, b"\xff", 7, b"\x01")),  # not ASCII
        _batch(_raw(RecordType.CONTACT_BLOCKED, b"bob", 2**63, b"\x01")),  # clock too large
        _batch(_raw(RecordType.SETTING, b"delete_everything", 1, b"\x01")),
        _batch(_raw(RecordType.CONVERSATION_READ, GROUP, 1, b"\x00" * 15)),
        _batch(_raw(RecordType.CONVERSATION_READ, b"", 1, UID)),
        _batch(_raw(RecordType.DEVICE, b"c", 1, b"\x01\x01\xff" + bytes(8))),  # bad UTF-8
        _batch(_raw(RecordType.DEVICE, b"c", 1, b"\x02" + bytes(8))),  # bad optional
        _batch(_raw(RecordType.CONTACT_VERIFIED, b"bob", 1, b"\x01\x41" + b"x" * 65)),
        _batch(_raw(RecordType.CONTACT_BLOCKED, b"bob", 7, b"\x01")) + b"\x00",  # trailing
        _batch(*[_raw(RecordType.CONTACT_BLOCKED, b"bob", 7, b"\x01")] * (MAX_RECORDS + 1)),
        b"\x01" + b"\x80\x01\x00\x00",  # a vector longer than the data
        bytes(MAX_SYNC_BYTES + 1),
    ],
)
def test_malformed_batches_raise_record_decode_error(data: bytes) -> None:
    with pytest.raises(RecordDecodeError):
        decode_records(data)
    assert issubclass(RecordDecodeError, ContentDecodeError)


def _decode_or_refuse(data: bytes) -> None:
    try:
        records = decode_records(data)
    except RecordDecodeError:
        return
    assert len(records) <= MAX_RECORDS
    # What decodes encodes again: every field was within its bounds.
    assert decode_records(encode_records(records)) == records


def test_fuzz_random_bytes() -> None:
    rng = random.Random(0x5EED)
    for _ in range(3000):
        size = rng.choice([1, 2, 5, 16, 64, 300])
        _decode_or_refuse(bytes(rng.getrandbits(8) for _ in range(size)))


def test_fuzz_mutated_valid_batches() -> None:
    rng = random.Random(1234)
    valid = encode_records(ALL)
    for _ in range(4000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            choice = rng.random()
            position = rng.randrange(len(data))
            if choice < 0.5:
                data[position] = rng.getrandbits(8)
            elif choice < 0.75:
                del data[position : position + rng.randint(1, 8)]
            else:
                data[position:position] = bytes(
                    rng.getrandbits(8) for _ in range(rng.randint(1, 8))
                )
        _decode_or_refuse(bytes(data))


def test_fuzz_the_sync_content_wrapper() -> None:
    rng = random.Random(99)
    valid = encode_content(Content(UID, 5, Sync(encode_records(ALL[:3]))))
    for _ in range(2000):
        data = bytearray(valid)
        data[rng.randrange(len(data))] = rng.getrandbits(8)
        try:
            content = decode_content(bytes(data))
        except ContentDecodeError:
            continue
        if isinstance(content, Content) and isinstance(content.body, Sync):
            _decode_or_refuse(content.body.records)
