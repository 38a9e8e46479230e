"""Commits and update paths, as wire structs (RFC 9420 §12.4, §7.6).

A :class:`Commit` lists the proposals it covers and, for a "full" commit, an
:class:`UpdatePath`: the committer's new leaf node and, for each node of its
filtered direct path, a new HPKE public key and the path secret encrypted to
each node of the copath's resolution (RFC 9420 §7.6). Creating and processing
commits is the group logic's business; this module is only the encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ciphersuite import HPKECiphertext
from .codec import Reader, Struct, Writer
from .leaf_node import LeafNode
from .proposals import ProposalOrRef

__all__ = [
    "Commit",
    "UpdatePath",
    "UpdatePathNode",
]


@dataclass(frozen=True, slots=True)
class UpdatePathNode(Struct):
    """``UpdatePathNode`` (RFC 9420 §7.6).

    ``encrypted_path_secret`` holds one ciphertext per node in the resolution
    of the corresponding copath node, in resolution order.
    """

    encryption_key: bytes
    encrypted_path_secret: tuple[HPKECiphertext, ...]

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.structs(self.encrypted_path_secret)

    @classmethod
    def decode(cls, r: Reader) -> UpdatePathNode:
        return cls(r.opaque(), tuple(r.structs(HPKECiphertext)))


@dataclass(frozen=True, slots=True)
class UpdatePath(Struct):
    """``UpdatePath`` (RFC 9420 §7.6): nodes in filtered-direct-path order."""

    leaf_node: LeafNode
    nodes: tuple[UpdatePathNode, ...]

    def encode(self, w: Writer) -> None:
        self.leaf_node.encode(w)
        w.structs(self.nodes)

    @classmethod
    def decode(cls, r: Reader) -> UpdatePath:
        return cls(LeafNode.decode(r), tuple(r.structs(UpdatePathNode)))


@dataclass(frozen=True, slots=True)
class Commit(Struct):
    """``Commit`` (RFC 9420 §12.4): covered proposals and an optional path."""

    proposals: tuple[ProposalOrRef, ...] = ()
    path: UpdatePath | None = None

    def encode(self, w: Writer) -> None:
        w.structs(self.proposals)
        w.optional(self.path, Writer.struct)

    @classmethod
    def decode(cls, r: Reader) -> Commit:
        return cls(tuple(r.structs(ProposalOrRef)), r.optional(UpdatePath.decode))
