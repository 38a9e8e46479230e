"""Credentials: the identity a member presents (RFC 9420 §5.3).

A :class:`Credential` binds an identity to a member's signature key; whether
that binding holds is for the Authentication Service to decide (RFC 9420
§5.3.1), not for this module. Here are only the wire forms:

* ``basic`` -- an application-defined identity, carried as opaque bytes;
* ``x509`` -- a chain of DER certificates, end-entity first.

``Credential`` is a tagged union with no length around the body, so a
credential of a type this implementation does not know cannot be skipped:
decoding it is a :class:`~messenger.mls.errors.DecodeError` (RFC 9420 §5.3,
§13.3). Capabilities and required capabilities still carry credential types
as plain ``int`` values, because unknown values there must be ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .codec import Reader, Struct, Writer
from .errors import DecodeError, UsageError

__all__ = [
    "Certificate",
    "Credential",
    "CredentialType",
]


class CredentialType(enum.IntEnum):
    """The credential types this implementation can parse (RFC 9420 §17.5)."""

    BASIC = 1
    X509 = 2


@dataclass(frozen=True, slots=True)
class Certificate(Struct):
    """``Certificate`` (RFC 9420 §5.3): one DER-encoded X.509 certificate."""

    cert_data: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.cert_data)

    @classmethod
    def decode(cls, r: Reader) -> Certificate:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class Credential(Struct):
    """``Credential`` (RFC 9420 §5.3).

    For ``BASIC`` only ``identity`` is meaningful, for ``X509`` only
    ``certificates`` (end-entity first). Build one with :meth:`basic` or
    :meth:`x509`.
    """

    credential_type: CredentialType
    identity: bytes = b""
    certificates: tuple[Certificate, ...] = ()

    def __post_init__(self) -> None:
        if self.credential_type == CredentialType.BASIC and self.certificates:
            raise UsageError("a basic credential has no certificates")
        if self.credential_type == CredentialType.X509 and self.identity:
            raise UsageError("an x509 credential has no basic identity")

    @classmethod
    def basic(cls, identity: bytes) -> Credential:
        return cls(CredentialType.BASIC, identity=identity)

    @classmethod
    def x509(cls, chain: Iterable[bytes]) -> Credential:
        """An X.509 credential from DER certificates, end-entity first."""
        return cls(CredentialType.X509, certificates=tuple(Certificate(c) for c in chain))

    def encode(self, w: Writer) -> None:
        w.u16(self.credential_type)
        if self.credential_type == CredentialType.BASIC:
            w.opaque(self.identity)
        elif self.credential_type == CredentialType.X509:
            w.structs(self.certificates)
        else:  # pragma: no cover - the field's type forbids it
            raise UsageError(f"unknown CredentialType {self.credential_type}")

    @classmethod
    def decode(cls, r: Reader) -> Credential:
        raw_type = r.u16()
        if raw_type == CredentialType.BASIC:
            return cls(CredentialType.BASIC, identity=r.opaque())
        if raw_type == CredentialType.X509:
            return cls(CredentialType.X509, certificates=tuple(r.structs(Certificate)))
        # RFC 9420 §5.3: the body of an unknown type has no length to skip by.
        raise DecodeError(f"unknown CredentialType {raw_type}")
