"""``MLSMessage``: the envelope of everything MLS sends (RFC 9420 §6).

An :class:`MLSMessage` carries one PublicMessage, PrivateMessage, Welcome,
GroupInfo or KeyPackage, tagged with its ``WireFormat``. The protocol version
must be ``mls10``; any other version, and any wire format this implementation
does not know, is a :class:`~messenger.mls.errors.DecodeError` (RFC 9420 §6,
§17.2), because the body of an unknown format cannot be parsed.

RFC 9420 §10 asks a receiver to check that a KeyPackage's own ``version``
matches the MLSMessage's; that is KeyPackage validation, not decoding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeVar

from .codec import Reader, Struct, Writer
from .content import PrivateMessage, PublicMessage, WireFormat
from .errors import DecodeError
from .group_context import ProtocolVersion
from .key_package import KeyPackage
from .welcome import GroupInfo, Welcome

__all__ = [
    "MLSMessage",
    "MessageBody",
    "message_digest",
]

#: What an MLSMessage can carry (RFC 9420 §6).
MessageBody = PublicMessage | PrivateMessage | Welcome | GroupInfo | KeyPackage

_BODIES: dict[WireFormat, type[MessageBody]] = {
    WireFormat.PUBLIC_MESSAGE: PublicMessage,
    WireFormat.PRIVATE_MESSAGE: PrivateMessage,
    WireFormat.WELCOME: Welcome,
    WireFormat.GROUP_INFO: GroupInfo,
    WireFormat.KEY_PACKAGE: KeyPackage,
}

_BODIES_BY_VALUE: dict[int, type[MessageBody]] = {k.value: v for k, v in _BODIES.items()}

_B = TypeVar("_B", PublicMessage, PrivateMessage, Welcome, GroupInfo, KeyPackage)

_WIRE_FORMATS: dict[type[MessageBody], WireFormat] = {v: k for k, v in _BODIES.items()}


def message_digest(data: bytes) -> bytes:
    """SHA-256 of an encoded MLSMessage: its identity, the same for every cipher suite.

    Not an MLS value: a group recognises its own proposals by it, and the
    client its own messages echoed back by the server.
    """
    return hashlib.sha256(data).digest()


@dataclass(frozen=True, slots=True)
class MLSMessage(Struct):
    """``MLSMessage`` (RFC 9420 §6) with ``version = mls10``."""

    body: MessageBody

    @property
    def version(self) -> ProtocolVersion:
        return ProtocolVersion.MLS10

    @property
    def wire_format(self) -> WireFormat:
        return _WIRE_FORMATS[type(self.body)]

    def encode(self, w: Writer) -> None:
        w.u16(ProtocolVersion.MLS10)
        w.u16(self.wire_format)
        self.body.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> MLSMessage:
        version = r.u16()
        if version != ProtocolVersion.MLS10:
            raise DecodeError(f"unsupported protocol version {version}")
        wire_format = r.u16()
        body = _BODIES_BY_VALUE.get(wire_format)
        if body is None:
            raise DecodeError(f"unknown WireFormat {wire_format}")
        return cls(body.decode(r))

    # Typed access for callers that know what they expect.

    @property
    def public_message(self) -> PublicMessage:
        return self._expect(PublicMessage)

    @property
    def private_message(self) -> PrivateMessage:
        return self._expect(PrivateMessage)

    @property
    def welcome(self) -> Welcome:
        return self._expect(Welcome)

    @property
    def group_info(self) -> GroupInfo:
        return self._expect(GroupInfo)

    @property
    def key_package(self) -> KeyPackage:
        return self._expect(KeyPackage)

    def _expect(self, kind: type[_B]) -> _B:
        """The body if it is a ``kind``; :class:`DecodeError` otherwise.

        A message of the wrong wire format came from a peer, so this is the
        peer's fault, not the caller's.
        """
        if not isinstance(self.body, kind):
            raise DecodeError(
                f"expected {_WIRE_FORMATS[kind].name.lower()}, got {self.wire_format.name.lower()}"
            )
        return self.body
