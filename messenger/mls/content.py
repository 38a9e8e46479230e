"""The framing data types: content, authentication, public and private messages.

RFC 9420 §6 (FramedContent, Sender, WireFormat, ContentType), §6.1
(FramedContentTBS, FramedContentAuthData, AuthenticatedContent), §6.2
(PublicMessage, AuthenticatedContentTBM), §6.3 (PrivateMessage), §6.3.1
(PrivateMessageContent, PrivateContentAAD), §6.3.2 (SenderData,
SenderDataAAD) and §8.2 (the transcript hash inputs).

These are the values only. Signing, membership tags and the encryption of
PrivateMessages (protect/unprotect) are done by :mod:`messenger.mls.framing`
on top of them. Values decoded here are unverified (architecture guide,
convention 3).

Some encodings depend on a value outside the struct: the
``confirmation_tag`` of :class:`FramedContentAuthData` and the body of
:class:`PrivateMessageContent` depend on the content type, so their
``decode`` and ``from_bytes`` take it as an extra argument.

The content of a message is ``bytes`` (application data), a
:class:`~messenger.mls.proposals.Proposal` or a
:class:`~messenger.mls.commit.Commit`; its type gives the ``ContentType``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .codec import Reader, Struct, Writer, decode_all, enum_value
from .commit import Commit
from .errors import DecodeError, UsageError
from .group_context import GroupContext, ProtocolVersion
from .proposals import Proposal

__all__ = [
    "AuthenticatedContent",
    "AuthenticatedContentTBM",
    "ConfirmedTranscriptHashInput",
    "Content",
    "ContentType",
    "FramedContent",
    "FramedContentAuthData",
    "FramedContentTBS",
    "InterimTranscriptHashInput",
    "PrivateContentAAD",
    "PrivateMessage",
    "PrivateMessageContent",
    "PublicMessage",
    "Sender",
    "SenderData",
    "SenderDataAAD",
    "SenderType",
    "WireFormat",
    "content_type_of",
    "framed_content_tbs",
]


class WireFormat(enum.IntEnum):
    """The wire formats of RFC 9420 §17.2 (``uint16``); 0 is reserved."""

    PUBLIC_MESSAGE = 1
    PRIVATE_MESSAGE = 2
    WELCOME = 3
    GROUP_INFO = 4
    KEY_PACKAGE = 5


class ContentType(enum.IntEnum):
    """``ContentType`` (RFC 9420 §6); 0 is reserved."""

    APPLICATION = 1
    PROPOSAL = 2
    COMMIT = 3


class SenderType(enum.IntEnum):
    """``SenderType`` (RFC 9420 §6); 0 is reserved."""

    MEMBER = 1
    EXTERNAL = 2
    NEW_MEMBER_PROPOSAL = 3
    NEW_MEMBER_COMMIT = 4


_CONTENT_TYPES: dict[int, ContentType] = {t.value: t for t in ContentType}

#: The content of a message: application data, a proposal or a commit.
Content = bytes | Proposal | Commit


def content_type_of(content: Content) -> ContentType:
    """The ``ContentType`` that tags ``content`` (RFC 9420 §6)."""
    if isinstance(content, Proposal):
        return ContentType.PROPOSAL
    if isinstance(content, Commit):
        return ContentType.COMMIT
    return ContentType.APPLICATION


def _encode_content(w: Writer, content: Content) -> None:
    """The ``select (content_type)`` part of FramedContent (RFC 9420 §6)."""
    if isinstance(content, Proposal | Commit):
        content.encode(w)
    else:
        w.opaque(content)


def _decode_content(r: Reader, content_type: ContentType) -> Content:
    if content_type == ContentType.APPLICATION:
        return r.opaque()
    if content_type == ContentType.PROPOSAL:
        return Proposal.decode(r)
    return Commit.decode(r)


def _require_content_type(content_type: ContentType | None, what: str) -> ContentType:
    if content_type is None:
        raise UsageError(f"decoding {what} needs the content type")
    return content_type


def _check_confirmation_tag(content_type: ContentType, auth: FramedContentAuthData) -> None:
    """RFC 9420 §6.1: ``confirmation_tag`` is present exactly for commits."""
    if (auth.confirmation_tag is not None) != (content_type == ContentType.COMMIT):
        raise UsageError("auth has a confirmation_tag exactly when the content is a commit")


@dataclass(frozen=True, slots=True)
class Sender(Struct):
    """``Sender`` (RFC 9420 §6).

    ``index`` is the ``leaf_index`` of a member or the ``sender_index`` of an
    external sender, and 0 for new members. Build one with :meth:`member`,
    :meth:`external`, :meth:`new_member_proposal` or
    :meth:`new_member_commit`.
    """

    sender_type: SenderType
    index: int = 0

    def __post_init__(self) -> None:
        if self.index and self.sender_type not in (SenderType.MEMBER, SenderType.EXTERNAL):
            raise UsageError(f"a {self.sender_type.name.lower()} sender has no index")

    @classmethod
    def member(cls, leaf_index: int) -> Sender:
        return cls(SenderType.MEMBER, leaf_index)

    @classmethod
    def external(cls, sender_index: int) -> Sender:
        return cls(SenderType.EXTERNAL, sender_index)

    @classmethod
    def new_member_proposal(cls) -> Sender:
        return cls(SenderType.NEW_MEMBER_PROPOSAL)

    @classmethod
    def new_member_commit(cls) -> Sender:
        return cls(SenderType.NEW_MEMBER_COMMIT)

    @property
    def leaf_index(self) -> int:
        """The sender's leaf; :class:`UsageError` unless it is a member."""
        if self.sender_type != SenderType.MEMBER:
            raise UsageError(f"a {self.sender_type.name.lower()} sender has no leaf_index")
        return self.index

    @property
    def sender_index(self) -> int:
        """Index into ``external_senders``; :class:`UsageError` unless external."""
        if self.sender_type != SenderType.EXTERNAL:
            raise UsageError(f"a {self.sender_type.name.lower()} sender has no sender_index")
        return self.index

    @property
    def signs_with_group_context(self) -> bool:
        """Whether FramedContentTBS covers the GroupContext (RFC 9420 §6.1)."""
        return self.sender_type in (SenderType.MEMBER, SenderType.NEW_MEMBER_COMMIT)

    def encode(self, w: Writer) -> None:
        w.u8(self.sender_type)
        if self.sender_type in (SenderType.MEMBER, SenderType.EXTERNAL):
            w.u32(self.index)

    @classmethod
    def decode(cls, r: Reader) -> Sender:
        sender_type = enum_value(SenderType, r.u8())
        if sender_type in (SenderType.MEMBER, SenderType.EXTERNAL):
            return cls(sender_type, r.u32())
        return cls(sender_type)


@dataclass(frozen=True, slots=True)
class FramedContent(Struct):
    """``FramedContent`` (RFC 9420 §6)."""

    group_id: bytes
    epoch: int
    sender: Sender
    authenticated_data: bytes
    content: Content

    @property
    def content_type(self) -> ContentType:
        return content_type_of(self.content)

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        self.sender.encode(w)
        w.opaque(self.authenticated_data)
        w.u8(self.content_type)
        _encode_content(w, self.content)

    @classmethod
    def decode(cls, r: Reader) -> FramedContent:
        group_id = r.opaque()
        epoch = r.u64()
        sender = Sender.decode(r)
        authenticated_data = r.opaque()
        content_type = enum_value(ContentType, r.u8())
        return cls(group_id, epoch, sender, authenticated_data, _decode_content(r, content_type))


@dataclass(frozen=True, slots=True)
class FramedContentAuthData(Struct):
    """``FramedContentAuthData`` (RFC 9420 §6.1).

    ``confirmation_tag`` is present exactly when the content is a commit;
    :meth:`decode` therefore takes the content type.
    """

    signature: bytes
    confirmation_tag: bytes | None = None

    def encode(self, w: Writer) -> None:
        w.opaque(self.signature)
        if self.confirmation_tag is not None:
            w.opaque(self.confirmation_tag)

    @classmethod
    def decode(cls, r: Reader, content_type: ContentType | None = None) -> FramedContentAuthData:
        content_type = _require_content_type(content_type, "FramedContentAuthData")
        signature = r.opaque()
        if content_type == ContentType.COMMIT:
            return cls(signature, r.opaque())
        return cls(signature)

    @classmethod
    def from_bytes(
        cls, data: bytes, content_type: ContentType | None = None
    ) -> FramedContentAuthData:
        return decode_all(data, lambda r: cls.decode(r, content_type))


@dataclass(frozen=True, slots=True)
class FramedContentTBS(Struct):
    """``FramedContentTBS`` (RFC 9420 §6.1): what a message signature covers.

    ``context`` is present exactly when the sender is a ``member`` or a
    ``new_member_commit``.
    """

    wire_format: WireFormat
    content: FramedContent
    context: GroupContext | None = None
    version: int = ProtocolVersion.MLS10

    def __post_init__(self) -> None:
        if (self.context is not None) != self.content.sender.signs_with_group_context:
            raise UsageError(
                "FramedContentTBS has a GroupContext exactly for member and "
                "new_member_commit senders"
            )

    def encode(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.wire_format)
        self.content.encode(w)
        if self.context is not None:
            self.context.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> FramedContentTBS:
        version = r.u16()
        wire_format = enum_value(WireFormat, r.u16())
        content = FramedContent.decode(r)
        context = GroupContext.decode(r) if content.sender.signs_with_group_context else None
        return cls(wire_format, content, context, version)


@dataclass(frozen=True, slots=True)
class AuthenticatedContent(Struct):
    """``AuthenticatedContent`` (RFC 9420 §6): content with its auth data.

    Hashed by ``MakeProposalRef`` (RFC 9420 §5.2) and, for commits, by the
    transcript hashes (RFC 9420 §8.2).
    """

    wire_format: WireFormat
    content: FramedContent
    auth: FramedContentAuthData

    def __post_init__(self) -> None:
        _check_confirmation_tag(self.content.content_type, self.auth)

    @property
    def content_type(self) -> ContentType:
        return self.content.content_type

    def encode(self, w: Writer) -> None:
        w.u16(self.wire_format)
        self.content.encode(w)
        self.auth.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> AuthenticatedContent:
        wire_format = enum_value(WireFormat, r.u16())
        content = FramedContent.decode(r)
        return cls(wire_format, content, FramedContentAuthData.decode(r, content.content_type))

    def tbs(self, context: GroupContext | None) -> FramedContentTBS:
        """The signed content; ``context`` is used only if the sender type needs it."""
        return framed_content_tbs(self.wire_format, self.content, context)

    def confirmed_transcript_hash_input(self) -> ConfirmedTranscriptHashInput:
        """RFC 9420 §8.2; only for commits."""
        return ConfirmedTranscriptHashInput(self.wire_format, self.content, self.auth.signature)

    def interim_transcript_hash_input(self) -> InterimTranscriptHashInput:
        """RFC 9420 §8.2; only for commits."""
        if self.auth.confirmation_tag is None:
            raise UsageError("only a commit has an interim transcript hash input")
        return InterimTranscriptHashInput(self.auth.confirmation_tag)


def framed_content_tbs(
    wire_format: WireFormat, content: FramedContent, context: GroupContext | None
) -> FramedContentTBS:
    """``FramedContentTBS`` for ``content``, including ``context`` when the sender needs it.

    :class:`UsageError` if the sender needs a GroupContext and none is given.
    """
    if content.sender.signs_with_group_context:
        if context is None:
            raise UsageError("a member or new_member_commit signature covers the GroupContext")
        return FramedContentTBS(wire_format, content, context)
    return FramedContentTBS(wire_format, content)


@dataclass(frozen=True, slots=True)
class AuthenticatedContentTBM(Struct):
    """``AuthenticatedContentTBM`` (RFC 9420 §6.2): what a membership tag covers."""

    content_tbs: FramedContentTBS
    auth: FramedContentAuthData

    def __post_init__(self) -> None:
        _check_confirmation_tag(self.content_tbs.content.content_type, self.auth)

    def encode(self, w: Writer) -> None:
        self.content_tbs.encode(w)
        self.auth.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> AuthenticatedContentTBM:
        tbs = FramedContentTBS.decode(r)
        return cls(tbs, FramedContentAuthData.decode(r, tbs.content.content_type))


@dataclass(frozen=True, slots=True)
class PublicMessage(Struct):
    """``PublicMessage`` (RFC 9420 §6.2), as decoded: nothing is verified.

    ``membership_tag`` is present exactly when the sender is a member.
    """

    content: FramedContent
    auth: FramedContentAuthData
    membership_tag: bytes | None = None

    def __post_init__(self) -> None:
        _check_confirmation_tag(self.content.content_type, self.auth)
        is_member = self.content.sender.sender_type == SenderType.MEMBER
        if (self.membership_tag is not None) != is_member:
            raise UsageError("a PublicMessage has a membership_tag exactly for member senders")

    def encode(self, w: Writer) -> None:
        self.content.encode(w)
        self.auth.encode(w)
        if self.membership_tag is not None:
            w.opaque(self.membership_tag)

    @classmethod
    def decode(cls, r: Reader) -> PublicMessage:
        content = FramedContent.decode(r)
        auth = FramedContentAuthData.decode(r, content.content_type)
        tag = r.opaque() if content.sender.sender_type == SenderType.MEMBER else None
        return cls(content, auth, tag)

    def authenticated_content(self) -> AuthenticatedContent:
        """The AuthenticatedContent this message carries (RFC 9420 §6.2)."""
        return AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, self.content, self.auth)

    def tbm(self, context: GroupContext) -> AuthenticatedContentTBM:
        """The input to ``membership_tag`` (RFC 9420 §6.2), for member senders."""
        tbs = framed_content_tbs(WireFormat.PUBLIC_MESSAGE, self.content, context)
        return AuthenticatedContentTBM(tbs, self.auth)


@dataclass(frozen=True, slots=True)
class PrivateMessage(Struct):
    """``PrivateMessage`` (RFC 9420 §6.3), as decoded: nothing is decrypted."""

    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes
    encrypted_sender_data: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.u8(self.content_type)
        w.opaque(self.authenticated_data)
        w.opaque(self.encrypted_sender_data)
        w.opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> PrivateMessage:
        group_id = r.opaque()
        epoch = r.u64()
        raw_type = r.u8()
        content_type = _CONTENT_TYPES.get(raw_type)
        if content_type is None:
            raise DecodeError(f"unknown ContentType {raw_type}")
        return cls(group_id, epoch, content_type, r.opaque(), r.opaque(), r.opaque())

    def sender_data_aad(self) -> SenderDataAAD:
        """The AAD of ``encrypted_sender_data`` (RFC 9420 §6.3.2)."""
        return SenderDataAAD(self.group_id, self.epoch, self.content_type)

    def content_aad(self) -> PrivateContentAAD:
        """The AAD of ``ciphertext`` (RFC 9420 §6.3.1)."""
        return PrivateContentAAD(
            self.group_id, self.epoch, self.content_type, self.authenticated_data
        )


@dataclass(frozen=True, slots=True)
class PrivateMessageContent(Struct):
    """``PrivateMessageContent`` (RFC 9420 §6.3.1): the plaintext of a PrivateMessage.

    ``padding_length`` zero bytes follow the auth data. Decoding takes the
    content type (from the PrivateMessage), treats every remaining byte as
    padding, and rejects non-zero padding as malformed.
    """

    content: Content
    auth: FramedContentAuthData
    padding_length: int = 0

    def __post_init__(self) -> None:
        _check_confirmation_tag(self.content_type, self.auth)
        if self.padding_length < 0:
            raise UsageError("padding_length must not be negative")

    @property
    def content_type(self) -> ContentType:
        return content_type_of(self.content)

    def encode(self, w: Writer) -> None:
        _encode_content(w, self.content)
        self.auth.encode(w)
        w.raw(bytes(self.padding_length))

    @classmethod
    def decode(cls, r: Reader, content_type: ContentType | None = None) -> PrivateMessageContent:
        content_type = _require_content_type(content_type, "PrivateMessageContent")
        content = _decode_content(r, content_type)
        auth = FramedContentAuthData.decode(r, content_type)
        padding = r.read(r.remaining())
        # RFC 9420 §6.3.1: "A receiver MUST verify that there are no non-zero
        # bytes in the padding field".
        if padding.count(0) != len(padding):
            raise DecodeError("non-zero padding in PrivateMessageContent")
        return cls(content, auth, len(padding))

    @classmethod
    def from_bytes(
        cls, data: bytes, content_type: ContentType | None = None
    ) -> PrivateMessageContent:
        return decode_all(data, lambda r: cls.decode(r, content_type))


@dataclass(frozen=True, slots=True)
class PrivateContentAAD(Struct):
    """``PrivateContentAAD`` (RFC 9420 §6.3.1)."""

    group_id: bytes
    epoch: int
    content_type: ContentType
    authenticated_data: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.u8(self.content_type)
        w.opaque(self.authenticated_data)

    @classmethod
    def decode(cls, r: Reader) -> PrivateContentAAD:
        return cls(r.opaque(), r.u64(), enum_value(ContentType, r.u8()), r.opaque())


@dataclass(frozen=True, slots=True)
class SenderData(Struct):
    """``SenderData`` (RFC 9420 §6.3.2): who sent a PrivateMessage, and with which key."""

    leaf_index: int
    generation: int
    reuse_guard: bytes

    def __post_init__(self) -> None:
        if len(self.reuse_guard) != 4:
            raise UsageError("reuse_guard is 4 bytes")

    def encode(self, w: Writer) -> None:
        w.u32(self.leaf_index)
        w.u32(self.generation)
        w.raw(self.reuse_guard)

    @classmethod
    def decode(cls, r: Reader) -> SenderData:
        return cls(r.u32(), r.u32(), r.read(4))


@dataclass(frozen=True, slots=True)
class SenderDataAAD(Struct):
    """``SenderDataAAD`` (RFC 9420 §6.3.2)."""

    group_id: bytes
    epoch: int
    content_type: ContentType

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u64(self.epoch)
        w.u8(self.content_type)

    @classmethod
    def decode(cls, r: Reader) -> SenderDataAAD:
        return cls(r.opaque(), r.u64(), enum_value(ContentType, r.u8()))


@dataclass(frozen=True, slots=True)
class ConfirmedTranscriptHashInput(Struct):
    """``ConfirmedTranscriptHashInput`` (RFC 9420 §8.2); the content is a commit."""

    wire_format: WireFormat
    content: FramedContent
    signature: bytes

    def __post_init__(self) -> None:
        if self.content.content_type != ContentType.COMMIT:
            raise UsageError("the confirmed transcript hash covers commits only")

    def encode(self, w: Writer) -> None:
        w.u16(self.wire_format)
        self.content.encode(w)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> ConfirmedTranscriptHashInput:
        wire_format = enum_value(WireFormat, r.u16())
        content = FramedContent.decode(r)
        if content.content_type != ContentType.COMMIT:
            raise DecodeError("ConfirmedTranscriptHashInput content is not a commit")
        return cls(wire_format, content, r.opaque())


@dataclass(frozen=True, slots=True)
class InterimTranscriptHashInput(Struct):
    """``InterimTranscriptHashInput`` (RFC 9420 §8.2)."""

    confirmation_tag: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.confirmation_tag)

    @classmethod
    def decode(cls, r: Reader) -> InterimTranscriptHashInput:
        return cls(r.opaque())
