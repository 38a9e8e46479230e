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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .ciphersuite import CipherSuite
from .codec import CachedStruct, Reader, Struct, Writer, encode_varint
from .credentials import Credential, CredentialType
from .errors import DecodeError, UsageError
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
        w.u16s(self.versions)
        w.u16s(self.cipher_suites)
        w.u16s(self.extensions)
        w.u16s(self.proposals)
        w.u16s(self.credentials)

    @classmethod
    def decode(cls, r: Reader) -> Capabilities:
        if cls is not Capabilities:
            return cls(r.u16s(), r.u16s(), r.u16s(), r.u16s(), r.u16s())
        # Members of a group mostly list the same capabilities: decode each
        # distinct encoding once and share the (immutable) value.
        start = r.position
        for _ in range(5):
            r.opaque()
        encoding = r.taken(start)
        found = _CAPABILITIES.get(encoding)
        if found is None:
            inner = Reader(encoding)
            found = cls(inner.u16s(), inner.u16s(), inner.u16s(), inner.u16s(), inner.u16s())
            if len(_CAPABILITIES) >= _CAPABILITIES_KEPT:
                _CAPABILITIES.clear()
            _CAPABILITIES[encoding] = found
        return found


#: Recently decoded Capabilities by encoding (see :meth:`Capabilities.decode`).
_CAPABILITIES: dict[bytes, Capabilities] = {}
_CAPABILITIES_KEPT: Final = 256


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


_SOURCES: Final = {source.value: source for source in LeafNodeSource}


def _no_group(source: LeafNodeSource) -> UsageError:
    return UsageError(
        f"a {source.name.lower()} leaf node is signed with its group_id and leaf_index"
    )


def _decode_content(r: Reader) -> _Content:
    encryption_key = r.opaque()
    signature_key = r.opaque()
    credential = Credential.decode(r)
    capabilities = Capabilities.decode(r)
    raw_source = r.u8()
    source = _SOURCES.get(raw_source)
    if source is None:
        raise DecodeError(f"unknown LeafNodeSource {raw_source}")
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
        w = Writer()
        _encode_content(w, self)
        content = w.getvalue()
        if self.group_id is not None and self.leaf_index is not None:
            w.opaque(self.group_id)
            w.u32(self.leaf_index)
        signature = suite.sign_with_label(signature_private_key, _LABEL, w.getvalue())
        leaf = LeafNode(
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
        # The LeafNode's encoding is the TBS up to its extensions, then the signature.
        leaf._keep_encoding(content + encode_varint(len(signature)) + signature)
        return leaf


@dataclass(frozen=True, slots=True)
class LeafNode(CachedStruct):
    """``LeafNode`` (RFC 9420 §7.2), as decoded: its signature is unchecked.

    ``lifetime`` is present exactly for the ``key_package`` source and
    ``parent_hash`` exactly for the ``commit`` source. The encoding is kept
    (a decoded leaf keeps the bytes it came from): tree hashes and signature
    checks use it again and again.
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

    def _encode_fields(self, w: Writer) -> None:
        _encode_content(w, self)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> LeafNode:
        if cls is LeafNode:
            leaf = _decode_common_leaf(r)
            if leaf is not None:
                return leaf
        start = r.position
        leaf = cls(*_decode_content(r), signature=r.opaque())
        leaf._keep_encoding(r.taken(start))
        return leaf

    def to_tbs(self, group_id: bytes | None = None, leaf_index: int | None = None) -> LeafNodeTBS:
        """The signed content; ``group_id``/``leaf_index`` for update and commit leaves.

        They are ignored for the ``key_package`` source, whose signature does
        not bind a group (RFC 9420 §7.2).
        """
        if self.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            group_id = leaf_index = None
        elif group_id is None or leaf_index is None:
            raise _no_group(self.leaf_node_source)
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

    def tbs_bytes(self, group_id: bytes | None = None, leaf_index: int | None = None) -> bytes:
        """``to_tbs(group_id, leaf_index).to_bytes()``, from this leaf's encoding.

        ``LeafNodeTBS`` is the LeafNode without its signature, then the
        group id and leaf index for update and commit leaves (RFC 9420 §7.2).
        """
        if self.leaf_node_source == LeafNodeSource.KEY_PACKAGE:
            tail = b""
        elif group_id is None or leaf_index is None:
            raise _no_group(self.leaf_node_source)
        else:
            tail = encode_varint(len(group_id)) + group_id + leaf_index.to_bytes(4, "big")
        encoding = self.to_bytes()
        signature = self.signature
        end = len(encoding) - len(signature) - len(encode_varint(len(signature)))
        return encoding[:end] + tail

    def verify_signature(
        self,
        suite: CipherSuite,
        group_id: bytes | None = None,
        leaf_index: int | None = None,
    ) -> bool:
        """``VerifyWithLabel(signature_key, "LeafNodeTBS", ...)`` (RFC 9420 §7.2)."""
        tbs = self.tbs_bytes(group_id, leaf_index)
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


def _vector_at(data: bytes, p: int, end: int) -> tuple[int, int]:
    """Where the body of the ``<V>`` vector at ``p`` starts and ends.

    ``(p, -1)`` unless it has a minimal one- or two-byte length and fits
    before ``end``.
    """
    if p >= end:
        return p, -1
    n = data[p]
    if n < 0x40:
        p += 1
    elif n < 0x80 and p + 1 < end:
        n = ((n & 0x3F) << 8) | data[p + 1]
        if n < 0x40:
            return p, -1
        p += 2
    else:
        return p, -1
    q = p + n
    return (p, q) if q <= end else (p, -1)


def _decode_common_leaf(r: Reader) -> LeafNode | None:
    """A LeafNode of the usual shape, parsed in place; ``None`` for any other.

    A joiner decodes thousands of leaves (RFC 9420 §12.4.3.1), nearly all
    alike: keys and capabilities with one-byte lengths, a basic credential,
    an identity and a signature with one- or two-byte lengths. This reads
    those straight from the buffer; for anything else -- including every
    malformed input -- it returns ``None`` without consuming anything, and
    :meth:`LeafNode.decode` takes the general path, which raises the errors.
    (A malformed extension list raises here, the same error.)
    """
    data, start, end = r.buffer()
    p = start
    # encryption_key, signature_key: opaque<V> with a one-byte length
    if p >= end or data[p] >= 0x40:
        return None
    q = p + 1 + data[p]
    encryption_key = data[p + 1 : q]
    p = q
    if p >= end or data[p] >= 0x40:
        return None
    q = p + 1 + data[p]
    signature_key = data[p + 1 : q]
    p = q
    # credential: uint16 basic, opaque identity<V>
    if p + 2 > end or data[p] != 0 or data[p + 1] != CredentialType.BASIC:
        return None
    p, q = _vector_at(data, p + 2, end)
    if q < 0:
        return None
    identity = data[p:q]
    p = q
    # capabilities: five uint16<V> vectors
    caps_start = p
    for _ in range(5):
        if p >= end or data[p] >= 0x40:
            return None
        p += 1 + data[p]
    if p >= end:
        return None
    caps_encoding = data[caps_start:p]
    capabilities = _CAPABILITIES.get(caps_encoding)
    if capabilities is None:
        capabilities = Capabilities.decode(Reader(caps_encoding))
    source = data[p]
    p += 1
    lifetime: Lifetime | None = None
    parent_hash: bytes | None = None
    if source == LeafNodeSource.KEY_PACKAGE:
        q = p + 16
        if q > end:
            return None
        lifetime = Lifetime(
            int.from_bytes(data[p : p + 8], "big"), int.from_bytes(data[p + 8 : q], "big")
        )
        p = q
    elif source == LeafNodeSource.COMMIT:
        if p >= end or data[p] >= 0x40:
            return None
        q = p + 1 + data[p]
        parent_hash = data[p + 1 : q]
        p = q
    elif source != LeafNodeSource.UPDATE:
        return None
    # extensions<V>
    if p >= end or data[p] >= 0x40:
        return None
    q = p + 1 + data[p]
    if q > end:
        return None
    extensions: tuple[Extension, ...] = ()
    if q > p + 1:
        inner = Reader(data, p + 1, q)
        items = []
        while not inner.at_end():
            items.append(Extension.decode(inner))
        extensions = tuple(items)
    p = q
    # signature: opaque<V>
    p, q = _vector_at(data, p, end)
    if q < 0:
        return None
    # The fields are consistent by construction (a basic credential without
    # certificates, lifetime and parent_hash as the source says), so the
    # objects are built without __init__'s checks, slot by slot.
    credential = _new(Credential)
    _set_credential_type(credential, CredentialType.BASIC)
    _set_identity(credential, identity)
    _set_certificates(credential, ())
    leaf = _new(LeafNode)
    _set_encryption_key(leaf, encryption_key)
    _set_signature_key(leaf, signature_key)
    _set_credential(leaf, credential)
    _set_capabilities(leaf, capabilities)
    _set_leaf_node_source(leaf, _SOURCES[source])
    _set_lifetime(leaf, lifetime)
    _set_parent_hash(leaf, parent_hash)
    _set_extensions(leaf, extensions)
    _set_signature(leaf, data[p:q])
    _set_encoding(leaf, data[start:q])
    r.seek(q)
    return leaf


_Setter = Callable[[object, object], None]


def _slot_setter(cls: type, name: str) -> _Setter:
    setter: _Setter = cls.__dict__[name].__set__
    return setter


_new = object.__new__
_set_credential_type = _slot_setter(Credential, "credential_type")
_set_identity = _slot_setter(Credential, "identity")
_set_certificates = _slot_setter(Credential, "certificates")
_set_encryption_key = _slot_setter(LeafNode, "encryption_key")
_set_signature_key = _slot_setter(LeafNode, "signature_key")
_set_credential = _slot_setter(LeafNode, "credential")
_set_capabilities = _slot_setter(LeafNode, "capabilities")
_set_leaf_node_source = _slot_setter(LeafNode, "leaf_node_source")
_set_lifetime = _slot_setter(LeafNode, "lifetime")
_set_parent_hash = _slot_setter(LeafNode, "parent_hash")
_set_extensions = _slot_setter(LeafNode, "extensions")
_set_signature = _slot_setter(LeafNode, "signature")
_set_encoding = _slot_setter(CachedStruct, "_encoding")
