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

from .codec import CachedStruct, Reader, Struct, Writer, encode_varint
from .errors import DecodeError, UsageError
from .extensions import ExtensionBody, ExtensionType
from .leaf_node import LeafNode

__all__ = [
    "Node",
    "NodeType",
    "ParentNode",
    "RatchetTree",
    "decode_node_values",
    "encode_node_values",
]


class NodeType(enum.IntEnum):
    """``NodeType`` (RFC 9420 §7.8); 0 is reserved."""

    LEAF = 1
    PARENT = 2


@dataclass(frozen=True, slots=True)
class ParentNode(CachedStruct):
    """``ParentNode`` (RFC 9420 §7.1).

    ``unmerged_leaves`` are leaf indices, which RFC 9420 §7.1 requires to be
    in increasing order; that is checked by tree validation. The encoding is
    kept, for tree hashes (RFC 9420 §7.8).
    """

    encryption_key: bytes
    parent_hash: bytes = b""
    unmerged_leaves: tuple[int, ...] = ()

    def _encode_fields(self, w: Writer) -> None:
        w.opaque(self.encryption_key)
        w.opaque(self.parent_hash)
        w.vector(self.unmerged_leaves, Writer.u32)

    @classmethod
    def decode(cls, r: Reader) -> ParentNode:
        data, start, end = r.buffer()
        # The usual shape, read in place: a key and a parent hash with
        # one-byte lengths, no unmerged leaves.
        if start < end and data[start] < 0x40:
            p = start + 1 + data[start]
            if p < end and data[p] < 0x40:
                q = p + 1 + data[p]
                if q < end and data[q] == 0:
                    node = cls(data[start + 1 : p], data[p + 1 : q])
                    node._keep_encoding(data[start : q + 1])
                    r.seek(q + 1)
                    return node
        node = cls(r.opaque(), r.opaque(), tuple(r.vector(Reader.u32)))
        node._keep_encoding(r.taken(start))
        return node


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
        return cls(_decode_node_value(r))


def _decode_node_value(r: Reader) -> LeafNode | ParentNode:
    """The body of a ``Node``: a leaf or parent node after its ``NodeType``."""
    node_type = r.u8()
    if node_type == _LEAF:
        return LeafNode.decode(r)
    if node_type == _PARENT:
        return ParentNode.decode(r)
    raise DecodeError(f"unknown NodeType {node_type}")


_LEAF = NodeType.LEAF.value
_PARENT = NodeType.PARENT.value


#: ``optional<Node>`` up to the node's body: present, then the NodeType.
_PRESENT_LEAF = bytes((1, NodeType.LEAF))
_PRESENT_PARENT = bytes((1, NodeType.PARENT))


def encode_node_values(values: Iterable[LeafNode | ParentNode | None]) -> bytes:
    """The encoded ``ratchet_tree`` for node values in array order (RFC 9420 §12.4.3.3).

    The same as ``RatchetTree.from_values(values).to_bytes()``: trailing
    blank nodes are dropped, and :class:`UsageError` if nothing is left.
    Built from the nodes' kept encodings, without :class:`Node` wrappers.
    """
    parts: list[bytes] = []
    append = parts.append
    last = 0  # the length of parts up to the last non-blank node
    for value in values:
        if value is None:
            append(b"\x00")
            continue
        append(_PRESENT_LEAF if isinstance(value, LeafNode) else _PRESENT_PARENT)
        append(value.to_bytes())
        last = len(parts)
    if not last:
        raise UsageError("a ratchet_tree must end in a non-blank node")
    del parts[last:]
    body = b"".join(parts)
    return encode_varint(len(body)) + body


def decode_node_values(r: Reader) -> list[LeafNode | ParentNode | None]:
    """The node values of an encoded ``ratchet_tree`` (RFC 9420 §12.4.3.3).

    The same as ``RatchetTree.decode(r).values``, without the :class:`Node`
    wrappers: a joiner goes straight from the bytes to the tree.
    """
    inner = r.sub()
    values: list[LeafNode | ParentNode | None] = []
    append = values.append
    data, pos, end = inner.buffer()
    while pos < end:
        present = data[pos]
        if present == 0:
            append(None)
            pos += 1
            continue
        if present != 1:
            raise DecodeError(f"invalid optional presence byte {present}")
        inner.seek(pos + 1)
        append(_decode_node_value(inner))
        pos = inner.position
    # RFC 9420 §12.4.3.3: "The receiver MUST check that the last node in
    # ratchet_tree is non-blank".
    if not values:
        raise DecodeError("empty ratchet_tree")
    if values[-1] is None:
        raise DecodeError("ratchet_tree ends in a blank node")
    return values


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
        w.raw(encode_node_values(None if n is None else n.value for n in self.nodes))

    @classmethod
    def decode(cls, r: Reader) -> RatchetTree:
        return cls(tuple(None if v is None else Node(v) for v in decode_node_values(r)))
