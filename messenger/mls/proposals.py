"""Proposals and proposal references, as wire structs (RFC 9420 §12.1, §12.4).

Each proposal body of RFC 9420 §12.1.1-§12.1.7 is its own struct; a
:class:`Proposal` tags one of them with its ``ProposalType``. A Commit covers
proposals through :class:`ProposalOrRef`, by value or by ``ProposalRef``
(RFC 9420 §12.4).

The ``Proposal`` union has no length around its body, so a proposal of an
unknown type cannot be skipped: decoding it is a
:class:`~messenger.mls.errors.DecodeError` (RFC 9420 §12.1, §13.3). Which
proposals are valid and how they change a group is the business of the group
logic; this module is only the encoding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from .codec import Reader, Struct, Writer, enum_value
from .errors import DecodeError
from .extensions import Extension
from .key_package import KeyPackage
from .leaf_node import LeafNode
from .psk import PreSharedKeyID

__all__ = [
    "DEFAULT_PROPOSAL_TYPES",
    "Add",
    "ExternalInit",
    "GroupContextExtensions",
    "PreSharedKey",
    "Proposal",
    "ProposalBody",
    "ProposalOrRef",
    "ProposalOrRefType",
    "ProposalType",
    "ReInit",
    "Remove",
    "Update",
]


class ProposalType(enum.IntEnum):
    """The proposal types defined by RFC 9420 (§17.4)."""

    ADD = 1
    UPDATE = 2
    REMOVE = 3
    PSK = 4
    REINIT = 5
    EXTERNAL_INIT = 6
    GROUP_CONTEXT_EXTENSIONS = 7


#: RFC 9420 §7.2: the "default" proposal types, which every client supports
#: and which MUST NOT be listed in ``Capabilities.proposals``.
DEFAULT_PROPOSAL_TYPES: frozenset[int] = frozenset(ProposalType)


@dataclass(frozen=True, slots=True)
class Add(Struct):
    """``Add`` (RFC 9420 §12.1.1): add the client of ``key_package``."""

    proposal_type: ClassVar[ProposalType] = ProposalType.ADD

    key_package: KeyPackage

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Add:
        return cls(KeyPackage.decode(r))


@dataclass(frozen=True, slots=True)
class Update(Struct):
    """``Update`` (RFC 9420 §12.1.2): replace the sender's leaf node."""

    proposal_type: ClassVar[ProposalType] = ProposalType.UPDATE

    leaf_node: LeafNode

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Update:
        return cls(LeafNode.decode(r))


@dataclass(frozen=True, slots=True)
class Remove(Struct):
    """``Remove`` (RFC 9420 §12.1.3): remove the member at leaf ``removed``."""

    proposal_type: ClassVar[ProposalType] = ProposalType.REMOVE

    removed: int

    def encode(self, w: Writer) -> None:
        w.u32(self.removed)

    @classmethod
    def decode(cls, r: Reader) -> Remove:
        return cls(r.u32())


@dataclass(frozen=True, slots=True)
class PreSharedKey(Struct):
    """``PreSharedKey`` (RFC 9420 §12.1.4): inject a PSK into the key schedule."""

    proposal_type: ClassVar[ProposalType] = ProposalType.PSK

    psk: PreSharedKeyID

    def encode(self, w: Writer) -> None:
        self.psk.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> PreSharedKey:
        return cls(PreSharedKeyID.decode(r))


@dataclass(frozen=True, slots=True)
class ReInit(Struct):
    """``ReInit`` (RFC 9420 §12.1.5): reinitialise the group with new parameters.

    ``version`` is a plain ``int``: it may name a version later than ours.
    """

    proposal_type: ClassVar[ProposalType] = ProposalType.REINIT

    group_id: bytes
    version: int
    cipher_suite: int
    extensions: tuple[Extension, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.group_id)
        w.u16(self.version)
        w.u16(self.cipher_suite)
        w.structs(self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> ReInit:
        return cls(r.opaque(), r.u16(), r.u16(), tuple(r.structs(Extension)))


@dataclass(frozen=True, slots=True)
class ExternalInit(Struct):
    """``ExternalInit`` (RFC 9420 §12.1.6): the KEM output of an external join."""

    proposal_type: ClassVar[ProposalType] = ProposalType.EXTERNAL_INIT

    kem_output: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output)

    @classmethod
    def decode(cls, r: Reader) -> ExternalInit:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class GroupContextExtensions(Struct):
    """``GroupContextExtensions`` (RFC 9420 §12.1.7): replace the group's extensions."""

    proposal_type: ClassVar[ProposalType] = ProposalType.GROUP_CONTEXT_EXTENSIONS

    extensions: tuple[Extension, ...]

    def encode(self, w: Writer) -> None:
        w.structs(self.extensions)

    @classmethod
    def decode(cls, r: Reader) -> GroupContextExtensions:
        return cls(tuple(r.structs(Extension)))


ProposalBody = Add | Update | Remove | PreSharedKey | ReInit | ExternalInit | GroupContextExtensions

_BODIES: dict[ProposalType, type[ProposalBody]] = {
    ProposalType.ADD: Add,
    ProposalType.UPDATE: Update,
    ProposalType.REMOVE: Remove,
    ProposalType.PSK: PreSharedKey,
    ProposalType.REINIT: ReInit,
    ProposalType.EXTERNAL_INIT: ExternalInit,
    ProposalType.GROUP_CONTEXT_EXTENSIONS: GroupContextExtensions,
}


@dataclass(frozen=True, slots=True)
class Proposal(Struct):
    """``Proposal`` (RFC 9420 §12.1): one proposal body with its type tag."""

    body: ProposalBody

    @property
    def proposal_type(self) -> ProposalType:
        return self.body.proposal_type

    def encode(self, w: Writer) -> None:
        w.u16(self.body.proposal_type)
        self.body.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Proposal:
        raw_type = r.u16()
        try:
            body_cls = _BODIES[ProposalType(raw_type)]
        except ValueError:
            # RFC 9420 §12.1: the body of an unknown type has no length to skip by.
            raise DecodeError(f"unknown ProposalType {raw_type}") from None
        return cls(body_cls.decode(r))


class ProposalOrRefType(enum.IntEnum):
    """``ProposalOrRefType`` (RFC 9420 §12.4); 0 is reserved."""

    PROPOSAL = 1
    REFERENCE = 2


@dataclass(frozen=True, slots=True)
class ProposalOrRef(Struct):
    """``ProposalOrRef`` (RFC 9420 §12.4).

    ``value`` is the :class:`Proposal` itself, or the ``ProposalRef``
    (``MakeProposalRef`` of the AuthenticatedContent that carried it,
    RFC 9420 §5.2) as bytes.
    """

    value: Proposal | bytes

    @classmethod
    def by_value(cls, proposal: Proposal | ProposalBody) -> ProposalOrRef:
        return cls(proposal if isinstance(proposal, Proposal) else Proposal(proposal))

    @classmethod
    def by_reference(cls, reference: bytes) -> ProposalOrRef:
        return cls(bytes(reference))

    @property
    def type(self) -> ProposalOrRefType:
        if isinstance(self.value, Proposal):
            return ProposalOrRefType.PROPOSAL
        return ProposalOrRefType.REFERENCE

    @property
    def proposal(self) -> Proposal | None:
        return self.value if isinstance(self.value, Proposal) else None

    @property
    def reference(self) -> bytes | None:
        return None if isinstance(self.value, Proposal) else self.value

    def encode(self, w: Writer) -> None:
        w.u8(self.type)
        if isinstance(self.value, Proposal):
            self.value.encode(w)
        else:
            w.opaque(self.value)

    @classmethod
    def decode(cls, r: Reader) -> ProposalOrRef:
        if enum_value(ProposalOrRefType, r.u8()) == ProposalOrRefType.PROPOSAL:
            return cls(Proposal.decode(r))
        return cls(r.opaque())
