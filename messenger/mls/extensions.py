"""Extensions and the typed bodies of the default ones (RFC 9420 §13.3, §13.4).

An :class:`Extension` is a ``uint16`` type and opaque data. Its type is kept
as a plain ``int``: extension lists in KeyPackages, LeafNodes and GroupInfos
may carry unknown (for instance GREASE) types, which must be ignored, not
rejected (RFC 9420 §13.4, §13.5).

The default extensions of RFC 9420 §17.3 get typed bodies, each an
:class:`ExtensionBody` that knows its type and converts to and from an
:class:`Extension`:

* :class:`ApplicationId` (RFC 9420 §5.3.3),
* :class:`RequiredCapabilities` (RFC 9420 §11.1),
* :class:`ExternalPub` (RFC 9420 §12.4.3.2),
* :class:`ExternalSenders`, a list of :class:`ExternalSender` (RFC 9420 §12.1.8.1).

The ``ratchet_tree`` body (RFC 9420 §12.4.3.3) lives with the tree nodes in
:mod:`messenger.mls.nodes`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from .codec import Reader, Struct, Writer
from .credentials import Credential
from .errors import UsageError, ValidationError

__all__ = [
    "DEFAULT_EXTENSION_TYPES",
    "ApplicationId",
    "Extension",
    "ExtensionBody",
    "ExtensionType",
    "ExternalPub",
    "ExternalSender",
    "ExternalSenders",
    "RequiredCapabilities",
    "check_unique_extensions",
    "find_extension",
]


class ExtensionType(enum.IntEnum):
    """The extension types defined by RFC 9420 (§17.3)."""

    APPLICATION_ID = 1
    RATCHET_TREE = 2
    REQUIRED_CAPABILITIES = 3
    EXTERNAL_PUB = 4
    EXTERNAL_SENDERS = 5


#: RFC 9420 §7.2: the "default" extension types, which every client supports
#: and which MUST NOT be listed in ``Capabilities.extensions``.
DEFAULT_EXTENSION_TYPES: frozenset[int] = frozenset(ExtensionType)


@dataclass(frozen=True, slots=True)
class Extension(Struct):
    """``Extension`` (RFC 9420 §7.2): a ``uint16`` type and opaque data."""

    extension_type: int
    extension_data: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.extension_type)
        w.opaque(self.extension_data)

    @classmethod
    def decode(cls, r: Reader) -> Extension:
        return cls(r.u16(), r.opaque())


def find_extension(extensions: Iterable[Extension], extension_type: int) -> Extension | None:
    """The first extension of ``extension_type`` in ``extensions``, if any."""
    for ext in extensions:
        if ext.extension_type == extension_type:
            return ext
    return None


def check_unique_extensions(extensions: Iterable[Extension]) -> None:
    """Raise :class:`ValidationError` if a type occurs twice (RFC 9420 §13.4).

    "Any field containing a list of extensions MUST NOT have more than one
    extension of any given type."
    """
    seen: set[int] = set()
    for ext in extensions:
        if ext.extension_type in seen:
            raise ValidationError(f"duplicate extension of type 0x{ext.extension_type:04x}")
        seen.add(ext.extension_type)


class ExtensionBody(Struct):
    """The typed ``extension_data`` of one extension type.

    Subclasses set :attr:`extension_type`. The body's encoding is the
    ``extension_data`` of the :class:`Extension` that carries it.
    """

    __slots__ = ()

    extension_type: ClassVar[ExtensionType]

    def to_extension(self) -> Extension:
        return Extension(self.extension_type, self.to_bytes())

    @classmethod
    def from_extension(cls, extension: Extension) -> Self:
        """Decode ``extension``'s data; :class:`DecodeError` if malformed."""
        if extension.extension_type != cls.extension_type:
            raise UsageError(
                f"extension of type 0x{extension.extension_type:04x} is not {cls.__name__}"
            )
        return cls.from_bytes(extension.extension_data)

    @classmethod
    def find_in(cls, extensions: Iterable[Extension]) -> Self | None:
        """The decoded body of this type in ``extensions``, or ``None``."""
        ext = find_extension(extensions, cls.extension_type)
        return None if ext is None else cls.from_extension(ext)


@dataclass(frozen=True, slots=True)
class ApplicationId(ExtensionBody):
    """``application_id`` (RFC 9420 §5.3.3): an application's id for a leaf."""

    extension_type: ClassVar[ExtensionType] = ExtensionType.APPLICATION_ID

    application_id: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.application_id)

    @classmethod
    def decode(cls, r: Reader) -> ApplicationId:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class RequiredCapabilities(ExtensionBody):
    """``RequiredCapabilities`` (RFC 9420 §11.1).

    The lists hold raw ``uint16`` values: extension, proposal and credential
    types, known or not.
    """

    extension_type: ClassVar[ExtensionType] = ExtensionType.REQUIRED_CAPABILITIES

    extension_types: tuple[int, ...] = ()
    proposal_types: tuple[int, ...] = ()
    credential_types: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vector(self.extension_types, Writer.u16)
        w.vector(self.proposal_types, Writer.u16)
        w.vector(self.credential_types, Writer.u16)

    @classmethod
    def decode(cls, r: Reader) -> RequiredCapabilities:
        return cls(
            tuple(r.vector(Reader.u16)),
            tuple(r.vector(Reader.u16)),
            tuple(r.vector(Reader.u16)),
        )


@dataclass(frozen=True, slots=True)
class ExternalPub(ExtensionBody):
    """``ExternalPub`` (RFC 9420 §12.4.3.2): the HPKE key for external joins."""

    extension_type: ClassVar[ExtensionType] = ExtensionType.EXTERNAL_PUB

    external_pub: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.external_pub)

    @classmethod
    def decode(cls, r: Reader) -> ExternalPub:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class ExternalSender(Struct):
    """``ExternalSender`` (RFC 9420 §12.1.8.1)."""

    signature_key: bytes
    credential: Credential

    def encode(self, w: Writer) -> None:
        w.opaque(self.signature_key)
        self.credential.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> ExternalSender:
        return cls(r.opaque(), Credential.decode(r))


@dataclass(frozen=True, slots=True)
class ExternalSenders(ExtensionBody):
    """``ExternalSender external_senders<V>`` (RFC 9420 §12.1.8.1).

    ``Sender.sender_index`` of an ``external`` sender indexes :attr:`senders`.
    """

    extension_type: ClassVar[ExtensionType] = ExtensionType.EXTERNAL_SENDERS

    senders: tuple[ExternalSender, ...]

    def encode(self, w: Writer) -> None:
        w.structs(self.senders)

    @classmethod
    def decode(cls, r: Reader) -> ExternalSenders:
        return cls(tuple(r.structs(ExternalSender)))
