"""Ratchet tree nodes and the ``ratchet_tree`` extension (RFC 9420 §7.1, §12.4.3.3).

A node of the ratchet tree is either a :class:`~messenger.mls.leaf_node.LeafNode`
or a :class:`ParentNode` (RFC 9420 §7.1); a :class:`Node` carries one of them
with its ``NodeType`` tag. :class:`RatchetTree` is the body of the
``ratchet_tree`` extension: the nodes in array order, ``None`` for a blank
node (RFC 9420 §12.4.3.3).

HPKE public keys are plain ``bytes``. Tree-level checks (that leaves sit at
even indices, parent hashes, unmerged leaves) belong to the tree module; the
decoder only insists on what RFC 9420 §12.4.3.3 asks of the encoding: the
vector is not empty and does not end in a blank node.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from .codec import Reader, Struct, Writer, enum_value
from .errors import DecodeError, UsageError
from .extensions import ExtensionBody, ExtensionType
from .leaf_node import LeafNode

__all__ = [
    "Node",
    "NodeType",
    "ParentNode",
    "RatchetTree",
]


class NodeType(enum.IntEnum):
    """``NodeType`` (RFC 9420 §7.8); 0 is reserved."""

    LEAF = 1
    PARENT = 2


@dataclass(frozen=True, slots=True)
class ParentNode(Struct):
    """``ParentNode`` (RFC 9420 §7.1).

    ``unmerged_leaves`` are leaf indices, which RFC 9420 §7.1 requires to be
    in increasing order; that is checked by tree validation.
    """

    encryption_key: bytes
    parent_hash: bytes = b""
    unmerged_leaves: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.opaque(self.parent_hash)
        w.vector(self.unmerged_leaves, Writer.u32)

    @classmethod
    def decode(cls, r: Reader) -> ParentNode:
        return cls(r.opaque(), r.opaque(), tuple(r.vector(Reader.u32)))


@dataclass(frozen=True, slots=True)
class Node(Struct):
    """``Node`` (RFC 9420 §12.4.3.3): a leaf or a parent, tagged by ``NodeType``."""

    value: LeafNode | ParentNode

    @property
    def node_type(self) -> NodeType:
        return NodeType.LEAF if isinstance(self.value, LeafNode) else NodeType.PARENT

    @property
    def leaf(self) -> LeafNode:
        """The leaf node; :class:`UsageError` if this is a parent."""
        if not isinstance(self.value, LeafNode):
            raise UsageError("node is a parent node, not a leaf")
        return self.value

    @property
    def parent(self) -> ParentNode:
        """The parent node; :class:`UsageError` if this is a leaf."""
        if not isinstance(self.value, ParentNode):
            raise UsageError("node is a leaf node, not a parent")
        return self.value

    def encode(self, w: Writer) -> None:
        w.u8(self.node_type)
        self.value.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> Node:
        node_type = enum_value(NodeType, r.u8())
        if node_type == NodeType.LEAF:
            return cls(LeafNode.decode(r))
        return cls(ParentNode.decode(r))


def _encode_optional_node(w: Writer, node: Node | None) -> None:
    w.optional(node, Writer.struct)


def _decode_optional_node(r: Reader) -> Node | None:
    return r.optional(Node.decode)


@dataclass(frozen=True, slots=True)
class RatchetTree(ExtensionBody):
    """``optional<Node> ratchet_tree<V>`` (RFC 9420 §12.4.3.3).

    The nodes in array order (RFC 9420 Appendix C), ``None`` for a blank
    node, without trailing blank nodes. A receiver extends the vector with
    blanks to a full tree of ``2^(d+1) - 1`` nodes.
    """

    extension_type: ClassVar[ExtensionType] = ExtensionType.RATCHET_TREE

    nodes: tuple[Node | None, ...]

    def __post_init__(self) -> None:
        if not self.nodes or self.nodes[-1] is None:
            raise UsageError("a ratchet_tree must end in a non-blank node")

    @classmethod
    def from_values(cls, values: Iterable[LeafNode | ParentNode | None]) -> RatchetTree:
        """The extension body for a tree given as an array of node values.

        Trailing blank nodes are dropped, as RFC 9420 §12.4.3.3 requires.
        """
        nodes = [None if v is None else Node(v) for v in values]
        while nodes and nodes[-1] is None:
            nodes.pop()
        return cls(tuple(nodes))

    @property
    def values(self) -> tuple[LeafNode | ParentNode | None, ...]:
        """The node values in array order, ``None`` for blank nodes."""
        return tuple(None if n is None else n.value for n in self.nodes)

    def encode(self, w: Writer) -> None:
        w.vector(self.nodes, _encode_optional_node)

    @classmethod
    def decode(cls, r: Reader) -> RatchetTree:
        nodes = tuple(r.vector(_decode_optional_node))
        # RFC 9420 §12.4.3.3: "The receiver MUST check that the last node in
        # ratchet_tree is non-blank".
        if not nodes:
            raise DecodeError("empty ratchet_tree")
        if nodes[-1] is None:
            raise DecodeError("ratchet_tree ends in a blank node")
        return cls(nodes)
