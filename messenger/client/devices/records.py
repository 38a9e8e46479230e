"""Sync records: what one device of an account tells the others (docs/devices.md §3).

A :class:`~messenger.client.content.Sync` message body, sent only in the
account's devices group, carries a batch of records in the TLS
presentation language of RFC 9420 §2.1 (:mod:`messenger.mls.codec`)::

    struct {
        uint8 version = 1;
        SyncRecord records<V>;      // at most MAX_RECORDS
    } SyncRecords;

    struct {
        uint8 type;                 // RecordType
        opaque key<V>;              // what the value is of (below)
        uint64 clock;               // the writer's clock, Unix ms
        opaque value<V>;            // the type's value (below)
    } SyncRecord;

Types, their keys and values:

* ``device`` -- key: the client ID; ``optional<opaque name<V>>``,
  ``uint64 last_seen``;
* ``contact_name`` -- key: the account ID; ``optional<opaque name<V>>``;
* ``contact_blocked`` -- key: the account ID; ``uint8 blocked``;
* ``contact_verified`` -- key: the account ID; ``optional<opaque fingerprint<V>>``;
* ``conversation_muted`` -- key: the MLS group ID; ``uint8 muted``,
  ``optional<uint64> until``;
* ``conversation_archived`` -- key: the group ID; ``uint8 archived``;
* ``conversation_draft`` -- key: the group ID; ``optional<opaque text<V>>``;
* ``conversation_read`` -- key: the group ID; ``opaque uid[16]``: read up to
  and including that message;
* ``setting`` -- key: the setting's name (:data:`SETTING_NAMES`); ``uint8 enabled``;
* ``signed_out`` -- key: the client ID of the sender itself, no value: this
  device signs out, the others remove its leaves (docs/devices.md §5).

The writer of each record is the member that sent the message (MLS
authenticates it, RFC 9420 §6.1); the last writer wins per (type, key), by
``clock`` with the client ID to break ties (:mod:`.sync`).

The sender may be a hostile ex-device of the account: every length is
bounded, every field checked. A batch of a future version, or a record of
a type this client does not know, is skipped, not an error; bytes that do
not follow the format raise :class:`RecordDecodeError` -- never another
exception.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from messenger.mls.codec import Reader, Writer
from messenger.mls.errors import DecodeError

from ..content import MAX_SYNC_BYTES, MAX_TEXT_BYTES, UID_SIZE
from ..errors import ContentDecodeError

__all__ = [
    "MAX_DEVICE_NAME_LENGTH",
    "MAX_RECORDS",
    "RECORDS_VERSION",
    "SETTING_NAMES",
    "ContactBlocked",
    "ContactName",
    "ContactVerified",
    "ConversationArchived",
    "ConversationDraft",
    "ConversationMuted",
    "ConversationRead",
    "DeviceInfo",
    "Record",
    "RecordDecodeError",
    "RecordType",
    "Setting",
    "SignedOut",
    "Stamped",
    "decode_records",
    "encode_batches",
    "encode_records",
    "record_key",
]

RECORDS_VERSION: Final = 1
#: The most records one batch holds.
MAX_RECORDS: Final = 256
#: The longest device name (characters).
MAX_DEVICE_NAME_LENGTH: Final = 64
#: The longest contact name (characters), as the facade allows.
MAX_CONTACT_NAME_LENGTH: Final = 100
#: The longest safety-number fingerprint (bytes).
MAX_FINGERPRINT_BYTES: Final = 64
#: The longest MLS group ID taken as a key (bytes).
MAX_GROUP_ID_BYTES: Final = 255
#: Clocks fit the store's signed 64-bit integers.
_MAX_CLOCK: Final = 2**63 - 1
#: Account and client IDs as the server issues them (``messenger.api`` idents).
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The synced settings by their name in a record.
SETTING_NAMES: Final = ("read_receipts", "typing_indicators")


class RecordDecodeError(ContentDecodeError):
    """Bytes that are not a batch of sync records (the sending device's fault)."""


class RecordType(enum.IntEnum):
    DEVICE = 1
    CONTACT_NAME = 2
    CONTACT_BLOCKED = 3
    CONTACT_VERIFIED = 4
    CONVERSATION_MUTED = 5
    CONVERSATION_ARCHIVED = 6
    CONVERSATION_DRAFT = 7
    CONVERSATION_READ = 8
    SETTING = 9
    SIGNED_OUT = 10


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device's own name and when it was last seen (it sends this about itself)."""

    client_id: str
    name: str | None
    last_seen_at: int


@dataclass(frozen=True, slots=True)
class ContactName:
    account_id: str
    name: str | None
    """The name the user gave the contact (None: their own name or handle)."""


@dataclass(frozen=True, slots=True)
class ContactBlocked:
    account_id: str
    blocked: bool


@dataclass(frozen=True, slots=True)
class ContactVerified:
    account_id: str
    fingerprint: bytes | None
    """The safety number's fingerprint the user verified (None: not verified)."""


@dataclass(frozen=True, slots=True)
class ConversationMuted:
    group_id: bytes
    muted: bool
    until: int | None = None


@dataclass(frozen=True, slots=True)
class ConversationArchived:
    group_id: bytes
    archived: bool


@dataclass(frozen=True, slots=True)
class ConversationDraft:
    group_id: bytes
    draft: str | None


@dataclass(frozen=True, slots=True)
class ConversationRead:
    group_id: bytes
    up_to: bytes
    """The uid of the last message read."""


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    """One of :data:`SETTING_NAMES`."""
    enabled: bool


@dataclass(frozen=True, slots=True)
class SignedOut:
    """The sending device leaves the account: remove it from every group."""

    client_id: str


Record = (
    DeviceInfo
    | ContactName
    | ContactBlocked
    | ContactVerified
    | ConversationMuted
    | ConversationArchived
    | ConversationDraft
    | ConversationRead
    | Setting
    | SignedOut
)

_TYPE_OF: Final[dict[type, RecordType]] = {
    DeviceInfo: RecordType.DEVICE,
    ContactName: RecordType.CONTACT_NAME,
    ContactBlocked: RecordType.CONTACT_BLOCKED,
    ContactVerified: RecordType.CONTACT_VERIFIED,
    ConversationMuted: RecordType.CONVERSATION_MUTED,
    ConversationArchived: RecordType.CONVERSATION_ARCHIVED,
    ConversationDraft: RecordType.CONVERSATION_DRAFT,
    ConversationRead: RecordType.CONVERSATION_READ,
    Setting: RecordType.SETTING,
    SignedOut: RecordType.SIGNED_OUT,
}


@dataclass(frozen=True, slots=True)
class Stamped:
    """A record and its writer's clock (Unix ms)."""

    record: Record
    clock: int

    @property
    def type(self) -> RecordType:
        return _TYPE_OF[type(self.record)]


def _key_bytes(record: Record) -> bytes:
    match record:
        case DeviceInfo(client_id=key) | Setting(name=key) | SignedOut(client_id=key):
            return key.encode("ascii")
        case ContactName(account_id=key) | ContactBlocked(account_id=key):
            return key.encode("ascii")
        case ContactVerified(account_id=key):
            return key.encode("ascii")
        case (
            ConversationMuted(group_id=gid)
            | ConversationArchived(group_id=gid)
            | ConversationDraft(group_id=gid)
            | ConversationRead(group_id=gid)
        ):
            return gid
    raise TypeError(f"not a record: {record!r}")  # pragma: no cover - exhaustive


def record_key(record: Record) -> tuple[str, str]:
    """The (type name, key) under which the record's clock is kept (:mod:`..store.sync_clock`)."""
    kind = _TYPE_OF[type(record)]
    key = _key_bytes(record)
    text = key.hex() if isinstance(record, _CONVERSATION_RECORDS) else key.decode("ascii")
    return kind.name.lower(), text


_CONVERSATION_RECORDS: Final = (
    ConversationMuted,
    ConversationArchived,
    ConversationDraft,
    ConversationRead,
)


# -- encoding ----------------------------------------------------------------------------


def _optional_text(w: Writer, text: str | None, limit_chars: int, limit_bytes: int) -> None:
    if text is not None:
        data = text.encode("utf-8")
        if not 0 < len(text) <= limit_chars or len(data) > limit_bytes:
            raise ValueError("a text out of bounds in a sync record")
    w.optional(None if text is None else text.encode("utf-8"), Writer.opaque)


def _check_id(value: str) -> None:
    if not _ID.fullmatch(value):
        raise ValueError("not an account or client ID")


def _value(record: Record) -> bytes:
    w = Writer()
    match record:
        case DeviceInfo(client_id, name, last_seen_at):
            _check_id(client_id)
            _optional_text(w, name, MAX_DEVICE_NAME_LENGTH, 4 * MAX_DEVICE_NAME_LENGTH)
            _check_clock(last_seen_at)
            w.u64(last_seen_at)
        case ContactName(account_id, name):
            _check_id(account_id)
            _optional_text(w, name, MAX_CONTACT_NAME_LENGTH, 4 * MAX_CONTACT_NAME_LENGTH)
        case ContactBlocked(account_id, blocked):
            _check_id(account_id)
            w.u8(int(blocked))
        case ContactVerified(account_id, fingerprint):
            _check_id(account_id)
            if fingerprint is not None and not 0 < len(fingerprint) <= MAX_FINGERPRINT_BYTES:
                raise ValueError("a fingerprint out of bounds")
            w.optional(fingerprint, Writer.opaque)
        case ConversationMuted(group_id, muted, until):
            _check_group(group_id)
            w.u8(int(muted))
            if until is not None:
                _check_clock(until)
            w.optional(until, Writer.u64)
        case ConversationArchived(group_id, archived):
            _check_group(group_id)
            w.u8(int(archived))
        case ConversationDraft(group_id, draft):
            _check_group(group_id)
            _optional_text(w, draft, MAX_TEXT_BYTES, MAX_TEXT_BYTES)
        case ConversationRead(group_id, up_to):
            _check_group(group_id)
            if len(up_to) != UID_SIZE:
                raise ValueError(f"a message uid is {UID_SIZE} bytes")
            w.raw(up_to)
        case Setting(name, enabled):
            if name not in SETTING_NAMES:
                raise ValueError(f"not a synced setting: {name!r}")
            w.u8(int(enabled))
        case SignedOut(client_id):
            _check_id(client_id)
    return w.getvalue()


def _check_group(group_id: bytes) -> None:
    if not 0 < len(group_id) <= MAX_GROUP_ID_BYTES:
        raise ValueError("a group ID out of bounds")


def _check_clock(value: int) -> None:
    if not 0 <= value <= _MAX_CLOCK:
        raise ValueError("a time out of bounds")


def _encode_one(stamped: Stamped) -> bytes:
    _check_clock(stamped.clock)
    w = Writer()
    w.u8(stamped.type)
    w.opaque(_key_bytes(stamped.record))
    w.u64(stamped.clock)
    w.opaque(_value(stamped.record))
    return w.getvalue()


def _batch(encoded: Sequence[bytes]) -> bytes:
    w = Writer()
    w.u8(RECORDS_VERSION)
    w.opaque(b"".join(encoded))
    return w.getvalue()


def encode_records(records: Sequence[Stamped]) -> bytes:
    """One batch; ValueError if a record is malformed or the batch too large."""
    if len(records) > MAX_RECORDS:
        raise ValueError(f"at most {MAX_RECORDS} records in a batch")
    data = _batch([_encode_one(r) for r in records])
    if len(data) > MAX_SYNC_BYTES:
        raise ValueError(f"a batch of sync records is at most {MAX_SYNC_BYTES} bytes")
    return data


def encode_batches(records: Iterable[Stamped]) -> list[bytes]:
    """Records cut into as few batches as the bounds allow (a snapshot for a new device)."""
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    room = MAX_SYNC_BYTES - 16  # the version and the vector's length prefix
    for record in records:
        one = _encode_one(record)
        if current and (len(current) == MAX_RECORDS or size + len(one) > room):
            batches.append(_batch(current))
            current, size = [], 0
        current.append(one)
        size += len(one)
    if current:
        batches.append(_batch(current))
    return batches


# -- decoding ----------------------------------------------------------------------------


def _text(r: Reader, limit_chars: int, limit_bytes: int) -> str:
    data = r.opaque()
    if len(data) > limit_bytes:
        raise RecordDecodeError("a text too long")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordDecodeError("a text that is not UTF-8") from None
    if not 0 < len(text) <= limit_chars:
        raise RecordDecodeError("a text out of bounds")
    return text


def _flag(r: Reader) -> bool:
    value = r.u8()
    if value > 1:
        raise RecordDecodeError(f"a flag is 0 or 1, not {value}")
    return value == 1


def _clock(r: Reader) -> int:
    value = r.u64()
    if value > _MAX_CLOCK:
        raise RecordDecodeError("a time out of bounds")
    return value


def _ident(key: bytes) -> str:
    try:
        text = key.decode("ascii")
    except UnicodeDecodeError:
        raise RecordDecodeError("an ID that is not ASCII") from None
    if not _ID.fullmatch(text):
        raise RecordDecodeError("not an account or client ID")
    return text


def _group(key: bytes) -> bytes:
    if not 0 < len(key) <= MAX_GROUP_ID_BYTES:
        raise RecordDecodeError("a group ID out of bounds")
    return key


def _decode_value(kind: RecordType, key: bytes, r: Reader) -> Record:
    if kind is RecordType.DEVICE:
        name = r.optional(lambda x: _text(x, MAX_DEVICE_NAME_LENGTH, 4 * MAX_DEVICE_NAME_LENGTH))
        return DeviceInfo(_ident(key), name, _clock(r))
    if kind is RecordType.CONTACT_NAME:
        contact = r.optional(
            lambda x: _text(x, MAX_CONTACT_NAME_LENGTH, 4 * MAX_CONTACT_NAME_LENGTH)
        )
        return ContactName(_ident(key), contact)
    if kind is RecordType.CONTACT_BLOCKED:
        return ContactBlocked(_ident(key), _flag(r))
    if kind is RecordType.CONTACT_VERIFIED:
        fingerprint = r.optional(Reader.opaque)
        if fingerprint is not None and not 0 < len(fingerprint) <= MAX_FINGERPRINT_BYTES:
            raise RecordDecodeError("a fingerprint out of bounds")
        return ContactVerified(_ident(key), fingerprint)
    if kind is RecordType.SETTING:
        name = _ident(key)
        if name not in SETTING_NAMES:
            raise RecordDecodeError("not a synced setting")
        return Setting(name, _flag(r))
    if kind is RecordType.SIGNED_OUT:
        return SignedOut(_ident(key))
    group_id = _group(key)
    if kind is RecordType.CONVERSATION_MUTED:
        muted = _flag(r)
        return ConversationMuted(group_id, muted, r.optional(_clock))
    if kind is RecordType.CONVERSATION_ARCHIVED:
        return ConversationArchived(group_id, _flag(r))
    if kind is RecordType.CONVERSATION_DRAFT:
        return ConversationDraft(
            group_id, r.optional(lambda x: _text(x, MAX_TEXT_BYTES, MAX_TEXT_BYTES))
        )
    assert kind is RecordType.CONVERSATION_READ
    return ConversationRead(group_id, r.read(UID_SIZE))


def decode_records(data: bytes) -> list[Stamped]:
    """The records of a batch, in order; unknown types and future versions are skipped.

    RecordDecodeError if ``data`` is not a valid batch.
    """
    if len(data) > MAX_SYNC_BYTES:
        raise RecordDecodeError("too many bytes of sync records")
    try:
        r = Reader(bytes(data))
        version = r.u8()
        if version != RECORDS_VERSION:
            return []
        inner = r.sub()
        r.finish()
        found: list[Stamped] = []
        count = 0
        while inner.remaining():
            count += 1
            if count > MAX_RECORDS:
                raise RecordDecodeError(f"more than {MAX_RECORDS} records in a batch")
            raw_type = inner.u8()
            key = inner.opaque()
            clock = _clock(inner)
            value = inner.opaque()
            try:
                kind = RecordType(raw_type)
            except ValueError:
                continue  # a type of a later version
            vr = Reader(value)
            record = _decode_value(kind, key, vr)
            vr.finish()
            found.append(Stamped(record, clock))
    except DecodeError as exc:
        raise RecordDecodeError(f"malformed sync records: {exc}") from None
    return found
