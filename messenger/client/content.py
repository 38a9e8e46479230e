"""The content of an application message: a versioned, padded binary format.

What a client puts into ``Group.encrypt`` (RFC 9420 §6.3, §15) is one
:class:`Content`: a message uid, the sender's clock and one body of a
known kind. The encoding uses the TLS presentation language of RFC 9420
§2.1 (:mod:`messenger.mls.codec`)::

    struct {
        uint8 version;              // 1, or 2 when the message disappears
        uint8 kind;                 // ContentKind
        opaque uid[16];             // random, names the message
        uint64 sent_at;             // sender's clock, Unix ms
        select (version) {
            case 2: uint32 expires_after;   // seconds, > 0 (docs/attachments.md §7)
        };
        opaque fields<V>;           // the kind's fields, below
        uint8 padding[...];         // zeros, up to the bucket size
    } MessageContent;

Version 1 is written for every message without a timer, so such messages
are byte for byte what earlier versions wrote.

Fields per kind: ``text`` -- ``opaque body<V>`` (UTF-8); ``reply`` and
``edit`` -- ``opaque target[16]``, ``opaque body<V>``; ``delete`` and
``read_receipt`` -- ``opaque target[16]``; ``reaction`` -- ``opaque
target[16]``, ``opaque emoji<V>``, ``uint8 remove``; ``typing`` -- ``uint8
active``; ``profile`` -- ``opaque name<V>`` (how the sender wants to be
called; members announce it when they join or see others join); ``sync`` --
``opaque records<V>`` (at most :data:`MAX_SYNC_BYTES`; sync records between
one account's devices, sent only in its devices group and decoded by
:mod:`.devices.records`, docs/devices.md §3); ``file`` -- an attachment
(docs/attachments.md §2)::

    opaque blob_id[16]; opaque access[32]; opaque key[32]; opaque digest[32];
    uint64 size; opaque media_type<V>; opaque name<V>;
    uint32 width; uint32 height; opaque thumbnail<V>; opaque caption<V>;

Padding hides the length of short messages from everyone but the members
(RFC 9420 §15.1 pads too, in smaller steps): the whole encoding is padded
with zeros to the next multiple of 64 bytes up to 512, of 256 up to 4096,
then of 1024 (:func:`padded_length`).

Compatibility: the version byte comes first in every version, and the
fields of a kind are length-prefixed. A decoder therefore turns a message
of a future version, or a kind it does not know, into :class:`Unsupported`
(with the uid and time when it can read them) instead of failing. Bytes
that do not follow the format are :class:`ContentDecodeError` -- never
another exception.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from messenger.mls.codec import Reader, Writer
from messenger.mls.errors import DecodeError

from .errors import ContentDecodeError, MessageTooLongError

__all__ = [
    "ATTACHMENT_ACCESS_SIZE",
    "ATTACHMENT_DIGEST_SIZE",
    "ATTACHMENT_KEY_SIZE",
    "BLOB_ID_SIZE",
    "CONTENT_VERSION",
    "MAX_ATTACHMENT_SIZE",
    "MAX_EMOJI_LENGTH",
    "MAX_EXPIRES_AFTER",
    "MAX_FILE_NAME_BYTES",
    "MAX_MEDIA_TYPE_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_SYNC_BYTES",
    "MAX_TEXT_BYTES",
    "MAX_THUMBNAIL_BYTES",
    "UID_SIZE",
    "Body",
    "Content",
    "ContentKind",
    "Delete",
    "Edit",
    "File",
    "Profile",
    "Reaction",
    "ReadReceipt",
    "Reply",
    "Sync",
    "Text",
    "Typing",
    "Unsupported",
    "decode_content",
    "encode_content",
    "padded_length",
]

#: The version this client writes for a message without a timer; it also
#: reads (and writes for a disappearing message) :data:`_TIMED_VERSION`.
CONTENT_VERSION: Final = 1
_TIMED_VERSION: Final = 2
#: The longest disappearing-message timer: one year, in seconds.
MAX_EXPIRES_AFTER: Final = 365 * 24 * 3600
#: Sizes of an attachment's blob ID, access capability, file key and digest.
BLOB_ID_SIZE: Final = 16
ATTACHMENT_ACCESS_SIZE: Final = 32
ATTACHMENT_KEY_SIZE: Final = 32
ATTACHMENT_DIGEST_SIZE: Final = 32
#: The largest attachment any client describes (servers set lower limits).
MAX_ATTACHMENT_SIZE: Final = 1 << 40
#: The longest media type (ASCII) and file name (UTF-8 bytes).
MAX_MEDIA_TYPE_LENGTH: Final = 127
MAX_FILE_NAME_BYTES: Final = 255
#: The largest thumbnail carried in a message.
MAX_THUMBNAIL_BYTES: Final = 48 * 1024
#: Length of a message uid.
UID_SIZE: Final = 16
#: The longest text body (UTF-8 bytes).
MAX_TEXT_BYTES: Final = 32 * 1024
#: The longest reaction (characters): any emoji ZWJ sequence, no prose.
MAX_EMOJI_LENGTH: Final = 32
#: The longest profile name (characters).
MAX_NAME_LENGTH: Final = 64
#: The most bytes of sync records one message carries.
MAX_SYNC_BYTES: Final = 64 * 1024
_MAX_U64: Final = 2**64 - 1


class ContentKind(enum.IntEnum):
    TEXT = 1
    REPLY = 2
    EDIT = 3
    DELETE = 4
    REACTION = 5
    READ_RECEIPT = 6
    TYPING = 7
    PROFILE = 8
    SYNC = 9
    FILE = 10


@dataclass(frozen=True, slots=True)
class Text:
    body: str


@dataclass(frozen=True, slots=True)
class Reply:
    target: bytes
    """The uid of the message replied to."""
    body: str


@dataclass(frozen=True, slots=True)
class Edit:
    target: bytes
    body: str
    """The new text."""


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``target`` for everyone (only its sender may)."""

    target: bytes


@dataclass(frozen=True, slots=True)
class Reaction:
    target: bytes
    emoji: str
    remove: bool = False


@dataclass(frozen=True, slots=True)
class ReadReceipt:
    """The sender has read everything up to and including ``target``."""

    target: bytes


@dataclass(frozen=True, slots=True)
class Typing:
    active: bool


@dataclass(frozen=True, slots=True)
class Profile:
    """How the sender wants to be called (a self-chosen name, not verified)."""

    name: str


@dataclass(frozen=True, slots=True)
class Sync:
    """Sync records between this account's devices (encoded by :mod:`.devices.records`)."""

    records: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class File:
    """An attachment: where its encrypted blob is, and how to read it (docs/attachments.md §2).

    ``digest`` is the SHA-256 of the whole stored blob (ciphertext and
    padding); ``size`` the size of the file itself. ``width`` and ``height``
    are 0 unless the file is an image; ``thumbnail`` is a small JPEG or
    empty; ``caption`` is text shown with the file (may be empty).
    """

    blob_id: bytes
    access: bytes = field(repr=False)
    key: bytes = field(repr=False)
    digest: bytes
    size: int
    media_type: str
    name: str
    width: int = 0
    height: int = 0
    thumbnail: bytes = field(default=b"", repr=False)
    caption: str = ""


Body = Text | Reply | Edit | Delete | Reaction | ReadReceipt | Typing | Profile | Sync | File

_KIND_OF: Final[dict[type, ContentKind]] = {
    Text: ContentKind.TEXT,
    Reply: ContentKind.REPLY,
    Edit: ContentKind.EDIT,
    Delete: ContentKind.DELETE,
    Reaction: ContentKind.REACTION,
    ReadReceipt: ContentKind.READ_RECEIPT,
    Typing: ContentKind.TYPING,
    Profile: ContentKind.PROFILE,
    Sync: ContentKind.SYNC,
    File: ContentKind.FILE,
}


@dataclass(frozen=True, slots=True)
class Content:
    """One message: its uid, the sender's clock (Unix ms) and its body.

    ``expires_after`` is the message's disappearing timer in seconds (0:
    none), as the sender's group state had it (docs/attachments.md §7).
    """

    uid: bytes
    sent_at: int
    body: Body
    expires_after: int = 0

    @property
    def kind(self) -> ContentKind:
        return _KIND_OF[type(self.body)]


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A message this client cannot show: a newer version, or an unknown kind.

    ``uid`` and ``sent_at`` are known for an unknown kind of a known version;
    for an unknown version only ``version`` is.
    """

    version: int
    kind: int | None = None
    uid: bytes | None = None
    sent_at: int | None = None


def padded_length(length: int) -> int:
    """The bucket that an encoding of ``length`` bytes is padded to."""
    if length <= 512:
        step = 64
    elif length <= 4096:
        step = 256
    else:
        step = 1024
    return max(step, -(-length // step) * step)


def _check_uid(uid: bytes, what: str) -> None:
    if len(uid) != UID_SIZE:
        raise ValueError(f"{what} must be {UID_SIZE} bytes")


def _text_bytes(body: str) -> bytes:
    data = body.encode("utf-8")
    if len(data) > MAX_TEXT_BYTES:
        raise MessageTooLongError(f"{len(data)} bytes of text, at most {MAX_TEXT_BYTES}")
    return data


def _check_emoji(emoji: str) -> None:
    if not 0 < len(emoji) <= MAX_EMOJI_LENGTH:
        raise ValueError(f"a reaction is 1 to {MAX_EMOJI_LENGTH} characters")


def _encode_fields(body: Body) -> bytes:
    w = Writer()
    match body:
        case Text(text):
            w.opaque(_text_bytes(text))
        case Reply(target, text) | Edit(target, text):
            _check_uid(target, "target")
            w.raw(target)
            w.opaque(_text_bytes(text))
        case Delete(target) | ReadReceipt(target):
            _check_uid(target, "target")
            w.raw(target)
        case Reaction(target, emoji, remove):
            _check_uid(target, "target")
            _check_emoji(emoji)
            w.raw(target)
            w.opaque(emoji.encode("utf-8"))
            w.u8(int(remove))
        case Typing(active):
            w.u8(int(active))
        case Profile(name):
            if not 0 < len(name) <= MAX_NAME_LENGTH:
                raise ValueError(f"a profile name is 1 to {MAX_NAME_LENGTH} characters")
            w.opaque(name.encode("utf-8"))
        case Sync(records):
            if len(records) > MAX_SYNC_BYTES:
                raise ValueError(f"sync records are at most {MAX_SYNC_BYTES} bytes")
            w.opaque(records)
        case File():
            _encode_file(w, body)
    return w.getvalue()


def _encode_file(w: Writer, f: File) -> None:
    for value, size, what in (
        (f.blob_id, BLOB_ID_SIZE, "blob_id"),
        (f.access, ATTACHMENT_ACCESS_SIZE, "access"),
        (f.key, ATTACHMENT_KEY_SIZE, "key"),
        (f.digest, ATTACHMENT_DIGEST_SIZE, "digest"),
    ):
        if len(value) != size:
            raise ValueError(f"{what} must be {size} bytes")
        w.raw(value)
    if not 0 <= f.size <= MAX_ATTACHMENT_SIZE:
        raise ValueError("the file size is out of range")
    w.u64(f.size)
    if not _media_type_ok(f.media_type):
        raise ValueError("a media type is printable ASCII of at most 127 characters")
    w.opaque(f.media_type.encode("ascii"))
    name = f.name.encode("utf-8")
    if not 0 < len(name) <= MAX_FILE_NAME_BYTES:
        raise ValueError(f"a file name is 1 to {MAX_FILE_NAME_BYTES} bytes")
    w.opaque(name)
    if not (0 <= f.width < 2**32 and 0 <= f.height < 2**32):
        raise ValueError("image dimensions must fit in 32 bits")
    w.u32(f.width)
    w.u32(f.height)
    if len(f.thumbnail) > MAX_THUMBNAIL_BYTES:
        raise ValueError(f"a thumbnail is at most {MAX_THUMBNAIL_BYTES} bytes")
    w.opaque(f.thumbnail)
    w.opaque(_text_bytes(f.caption))


def _media_type_ok(media_type: str) -> bool:
    return (
        0 < len(media_type) <= MAX_MEDIA_TYPE_LENGTH
        and media_type.isascii()
        and media_type.isprintable()
        and "/" in media_type
    )


def encode_content(content: Content) -> bytes:
    """The padded encoding of ``content``.

    ValueError for a malformed uid, target or reaction; MessageTooLongError
    for a text over :data:`MAX_TEXT_BYTES`.
    """
    _check_uid(content.uid, "uid")
    if not 0 <= content.sent_at <= _MAX_U64:
        raise ValueError("sent_at must fit in 64 bits")
    if not 0 <= content.expires_after <= MAX_EXPIRES_AFTER:
        raise ValueError(f"a timer is 0 to {MAX_EXPIRES_AFTER} seconds")
    w = Writer()
    w.u8(_TIMED_VERSION if content.expires_after else CONTENT_VERSION)
    w.u8(content.kind)
    w.raw(content.uid)
    w.u64(content.sent_at)
    if content.expires_after:
        w.u32(content.expires_after)
    w.opaque(_encode_fields(content.body))
    data = w.getvalue()
    return data + bytes(padded_length(len(data)) - len(data))


def _text(r: Reader) -> str:
    data = r.opaque()
    if len(data) > MAX_TEXT_BYTES:
        raise ContentDecodeError("the text is too long")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ContentDecodeError("the text is not UTF-8") from None


def _flag(r: Reader) -> bool:
    value = r.u8()
    if value > 1:
        raise ContentDecodeError(f"a flag is 0 or 1, not {value}")
    return value == 1


def _decode_fields(kind: ContentKind, r: Reader) -> Body:
    if kind is ContentKind.TEXT:
        return Text(_text(r))
    if kind is ContentKind.TYPING:
        return Typing(_flag(r))
    if kind is ContentKind.PROFILE:
        name = _text(r)
        if not 0 < len(name) <= MAX_NAME_LENGTH:
            raise ContentDecodeError("a profile name is 1 to 64 characters")
        return Profile(name)
    if kind is ContentKind.SYNC:
        records = r.opaque()
        if len(records) > MAX_SYNC_BYTES:
            raise ContentDecodeError("too many bytes of sync records")
        return Sync(records)
    if kind is ContentKind.FILE:
        return _decode_file(r)
    target = r.read(UID_SIZE)
    if kind is ContentKind.REPLY:
        return Reply(target, _text(r))
    if kind is ContentKind.EDIT:
        return Edit(target, _text(r))
    if kind is ContentKind.DELETE:
        return Delete(target)
    if kind is ContentKind.READ_RECEIPT:
        return ReadReceipt(target)
    try:
        emoji = r.opaque().decode("utf-8")
    except UnicodeDecodeError:
        raise ContentDecodeError("the reaction is not UTF-8") from None
    if not 0 < len(emoji) <= MAX_EMOJI_LENGTH:
        raise ContentDecodeError("a reaction is 1 to 32 characters")
    return Reaction(target, emoji, _flag(r))


def _decode_file(r: Reader) -> File:
    blob_id = r.read(BLOB_ID_SIZE)
    access = r.read(ATTACHMENT_ACCESS_SIZE)
    key = r.read(ATTACHMENT_KEY_SIZE)
    digest = r.read(ATTACHMENT_DIGEST_SIZE)
    size = r.u64()
    if size > MAX_ATTACHMENT_SIZE:
        raise ContentDecodeError("the file is too large")
    try:
        media_type = r.opaque().decode("ascii")
        name = r.opaque().decode("utf-8")
    except UnicodeDecodeError:
        raise ContentDecodeError("a file's media type or name is not text") from None
    if not _media_type_ok(media_type):
        raise ContentDecodeError("a malformed media type")
    if not 0 < len(name.encode("utf-8")) <= MAX_FILE_NAME_BYTES:
        raise ContentDecodeError("a file name is 1 to 255 bytes")
    width, height = r.u32(), r.u32()
    thumbnail = r.opaque()
    if len(thumbnail) > MAX_THUMBNAIL_BYTES:
        raise ContentDecodeError("the thumbnail is too large")
    caption = _text(r)
    return File(
        blob_id, access, key, digest, size, media_type, name, width, height, thumbnail, caption
    )


def decode_content(data: bytes) -> Content | Unsupported:
    """Decode what :func:`encode_content` made (or a future version's bytes).

    :class:`ContentDecodeError` if ``data`` is not a valid encoding.
    """
    try:
        r = Reader(bytes(data))
        version = r.u8()
        if version not in (CONTENT_VERSION, _TIMED_VERSION):
            return Unsupported(version)
        raw_kind = r.u8()
        uid = r.read(UID_SIZE)
        sent_at = r.u64()
        expires_after = 0
        if version == _TIMED_VERSION:
            expires_after = r.u32()
            if not 0 < expires_after <= MAX_EXPIRES_AFTER:
                raise ContentDecodeError("a timer is 1 second to 1 year")
        fields = r.opaque()
        if any(r.read(r.remaining())):
            raise ContentDecodeError("the padding is not zero")
        try:
            kind = ContentKind(raw_kind)
        except ValueError:
            return Unsupported(version, raw_kind, uid, sent_at)
        fr = Reader(fields)
        body = _decode_fields(kind, fr)
        fr.finish()
    except DecodeError as exc:
        raise ContentDecodeError(f"malformed message content: {exc}") from None
    return Content(uid, sent_at, body, expires_after)
