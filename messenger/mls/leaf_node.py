"""Leaf nodes: a member's keys, credential and capabilities (RFC 9420 §7.2).

A :class:`LeafNode` is signed by its owner over a :class:`LeafNodeTBS`, which
for leaves created inside a group (``update`` and ``commit`` sources) also
covers the group id and the leaf's index (RFC 9420 §7.2). Build a leaf by
filling in a :class:`LeafNodeTBS` and calling :meth:`LeafNodeTBS.sign`; check
one with :meth:`LeafNode.verify_signature`. The other rules of RFC 9420 §7.3
(leaf node validation) belong to the group logic, not to this module.

Capabilities hold raw ``uint16`` values, since unknown values in them must be
ignored (RFC 9420 §7.2, §13.4).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .ciphersuite import CipherSuite
from .codec import Reader, Struct, Writer, enum_value
from .credentials import Credential
from .errors import UsageError
from .extensions import Extension

__all__ = [
    "Capabilities",
    "LeafNode",
    "LeafNodeSource",
    "LeafNodeTBS",
    "Lifetime",
]

_LABEL = b"LeafNodeTBS"


class LeafNodeSource(enum.IntEnum):
    """``LeafNodeSource`` (RFC 9420 §7.2); 0 is reserved."""

    KEY_PACKAGE = 1
    UPDATE = 2
    COMMIT = 3


@dataclass(frozen=True, slots=True)
class Capabilities(Struct):
    """``Capabilities`` (RFC 9420 §7.2): what a client supports.

    The default proposal and extension types of RFC 9420 §7.2 are not listed.
    """

    versions: tuple[int, ...] = ()
    cipher_suites: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()
    proposals: tuple[int, ...] = ()
    credentials: tuple[int, ...] = ()

    def encode(self, w: Writer) -> None:
        w.vector(self.versions, Writer.u16)
        w.vector(self.cipher_suites, Writer.u16)
        w.vector(self.extensions, Writer.u16)
        w.vector(self.proposals, Writer.u16)
        w.vector(self.credentials, Writer.u16)

    @classmethod
    def decode(cls, r: Reader) -> Capabilities:
        return cls(
            tuple(r.vector(Reader.u16)),
            tuple(r.vector(Reader.u16)),
            tuple(r.vector(Reader.u16)),
            tuple(r.vector(Reader.u16)),
            tuple(r.vector(Reader.u16)),
        )


@dataclass(frozen=True, slots=True)
class Lifetime(Struct):
    """``Lifetime`` (RFC 9420 §7.2): seconds since the Unix epoch, inclusive."""

    not_before: int
    not_after: int

    def encode(self, w: Writer) -> None:
        w.u64(self.not_before)
        w.u64(self.not_after)

    @classmethod
    def decode(cls, r: Reader) -> Lifetime:
        return cls(r.u64(), r.u64())

    def contains(self, now: int) -> bool:
        """Whether ``now`` lies within the lifetime."""
        return self.not_before <= now <= self.not_after


def _check_source(source: LeafNodeSource, lifetime: object, parent_hash: object) -> None:
    """RFC 9420 §7.2: ``lifetime`` iff key_package, ``parent_hash`` iff commit."""
    if (lifetime is not None) != (source == LeafNodeSource.KEY_PACKAGE):
        raise UsageError("a leaf node has a lifetime exactly when its source is key_package")
    if (parent_hash is not None) != (source == LeafNodeSource.COMMIT):
        raise UsageError("a leaf node has a parent_hash exactly when its source is commit")


def _encode_content(w: Writer, leaf: LeafNode | LeafNodeTBS) -> None:
    """The fields that LeafNode and LeafNodeTBS share, up to ``extensions``."""
    w.opaque(leaf.encryption_key)
    w.opaque(leaf.signature_key)
    leaf.credential.encode(w)
    leaf.capabilities.encode(w)
    w.u8(leaf.leaf_node_source)
    if leaf.lifetime is not None:
        leaf.lifetime.encode(w)
    if leaf.parent_hash is not None:
        w.opaque(leaf.parent_hash)
    w.structs(leaf.extensions)


_Content = tuple[
    bytes,
    bytes,
    Credential,
    Capabilities,
    LeafNodeSource,
    Lifetime | None,
    bytes | None,
    tuple[Extension, ...],
]


def _decode_content(r: Reader) -> _Content:
    encryption_key = r.opaque()
    signature_key = r.opaque()
    credential = Credential.decode(r)
    capabilities = Capabilities.decode(r)
    source = enum_value(LeafNodeSource, r.u8())
    lifetime = Lifetime.decode(r) if source == LeafNodeSource.KEY_PACKAGE else None
    parent_hash = r.opaque() if source == LeafNodeSource.COMMIT else None
    extensions = tuple(r.structs(Extension))
    return (
        encryption_key,
        signature_key,
        credential,
        capabilities,
        source,
        lifetime,
        parent_hash,
        extensions,
    )


@dataclass(frozen=True, slots=True)
class LeafNodeTBS(Struct):
    """``LeafNodeTBS`` (RFC 9420 §7.2): what a leaf node's signature covers.

    ``group_id`` and ``leaf_index`` are present exactly for the ``update``
    and ``commit`` sources.
    """

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: LeafNodeSource
    lifetime: Lifetime | None = None
    parent_hash: bytes | None = None
    extensions: tuple[Extension, ...] = ()
    group_id: bytes | None = None
    leaf_index: int | None = None

    def __post_init__(self) -> None:
        _check_source(self.leaf_node_source, self.lifetime, self.parent_hash)
        in_group = self.leaf_node_source != LeafNodeSource.KEY_PACKAGE
        if (self.group_id is not None) != in_group or (self.leaf_index is not None) != in_group:
            raise UsageError(
                "LeafNodeTBS has group_id and leaf_index exactly for update and commit sources"
            )

    def encode(self, w: Writer) -> None:
        _encode_content(w, self)
        if self.group_id is not None and self.leaf_index is not None:
            w.opaque(self.group_id)
            w.u32(self.leaf_index)

    @classmethod
    def decode(cls, r: Reader) -> LeafNodeTBS:
        content = _decode_content(r)
        if content[4] == LeafNodeSource.KEY_PACKAGE:
            return cls(*content)
        return cls(*content, group_id=r.opaque(), leaf_index=r.u32())

    def sign(self, suite: CipherSuite, signature_private_key: bytes) -> LeafNode:
        """``SignWithLabel(., "LeafNodeTBS", LeafNodeTBS)`` (RFC 9420 §7.2)."""
        signature = suite.sign_with_label(signature_private_key, _LABEL, self.to_bytes())
        return LeafNode(
            encryption_key=self.encryption_key,
            signature_key=self.signature_key,
            credential=self.credential,
            capabilities=self.capabilities,
            leaf_node_source=self.leaf_node_source,
            lifetime=self.lifetime,
            parent_hash=self.parent_hash,
            extensions=self.extensions,
            signature=signature,
        )


@dataclass(frozen=True, slots=True)
class LeafNode(Struct):
    """``LeafNode`` (RFC 9420 §7.2), as decoded: its signature is unchecked.

    ``lifetime`` is present exactly for the ``key_package`` source and
    ``parent_hash`` exactly for the ``commit`` source.
    """

    encryption_key: bytes
    signature_key: bytes
    credential: Credential
    capabilities: Capabilities
    leaf_node_source: LeafNodeSource
    lifetime: Lifetime | None = None
    parent_hash: bytes | None = None
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""

    def __post_init__(self) -> None:
        _check_source(self.leaf_node_source, self.lifetime, self.parent_hash)

    def encode(self, w: Writer) -> None:
        _encode_content(w, self)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> LeafNode:
        return cls(*_decode_content(r), signature=r.opaque())

    def to_tbs(self, group_id: bytes | None = None, leaf_index: int | None = None) -> LeafNodeTBS:
        """The signed content; ``group_id``/``leaf_index`` for update and commit leaves.

        They are ignored for the ``key_package`` source, whose signature does
        not bind a group (RFC 9420 §7.2).
        """
        if self.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            group_id = leaf_index = None
        elif group_id is None or leaf_index is None:
            raise UsageError(
                f"a {self.leaf_node_source.name.lower()} leaf node is signed "
                "with its group_id and leaf_index"
            )
        return LeafNodeTBS(
            encryption_key=self.encryption_key,
            signature_key=self.signature_key,
            credential=self.credential,
            capabilities=self.capabilities,
            leaf_node_source=self.leaf_node_source,
            lifetime=self.lifetime,
            parent_hash=self.parent_hash,
            extensions=self.extensions,
            group_id=group_id,
            leaf_index=leaf_index,
        )

    def verify_signature(
        self,
        suite: CipherSuite,
        group_id: bytes | None = None,
        leaf_index: int | None = None,
    ) -> bool:
        """``VerifyWithLabel(signature_key, "LeafNodeTBS", ...)`` (RFC 9420 §7.2)."""
        tbs = self.to_tbs(group_id, leaf_index).to_bytes()
        return suite.verify_with_label(self.signature_key, _LABEL, tbs, self.signature)

    def resign(
        self,
        suite: CipherSuite,
        signature_private_key: bytes,
        group_id: bytes | None = None,
        leaf_index: int | None = None,
    ) -> LeafNode:
        """This leaf with a fresh signature (after a field was changed)."""
        return self.to_tbs(group_id, leaf_index).sign(suite, signature_private_key)
