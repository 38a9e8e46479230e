"""Key packages: pre-published material for adding a client (RFC 9420 §10).

A :class:`KeyPackage` is signed with the signature key of its own leaf node
over a :class:`KeyPackageTBS` (RFC 9420 §10). Build one by filling in a
:class:`KeyPackageTBS` and calling :meth:`KeyPackageTBS.sign`; check one
with :meth:`KeyPackage.verify_signature`. Welcome messages and Add proposals
name a key package by :meth:`KeyPackage.ref` (``MakeKeyPackageRef``,
RFC 9420 §5.2). The other checks of RFC 9420 §10.1 belong to validation.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ciphersuite import CipherSuite
from .codec import CachedStruct, Reader, Struct, Writer, encode_varint
from .extensions import Extension
from .group_context import ProtocolVersion
from .leaf_node import LeafNode

__all__ = [
    "KeyPackage",
    "KeyPackageTBS",
]

_LABEL = b"KeyPackageTBS"


def _encode_content(w: Writer, kp: KeyPackage | KeyPackageTBS) -> None:
    w.u16(kp.version)
    w.u16(kp.cipher_suite)
    w.opaque(kp.init_key)
    kp.leaf_node.encode(w)
    w.structs(kp.extensions)


def _decode_content(r: Reader) -> tuple[int, int, bytes, LeafNode, tuple[Extension, ...]]:
    return (
        r.u16(),
        r.u16(),
        r.opaque(),
        LeafNode.decode(r),
        tuple(r.structs(Extension)),
    )


@dataclass(frozen=True, slots=True)
class KeyPackageTBS(Struct):
    """``KeyPackageTBS`` (RFC 9420 §10): what a key package's signature covers."""

    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    version: int = ProtocolVersion.MLS10

    def encode(self, w: Writer) -> None:
        _encode_content(w, self)

    @classmethod
    def decode(cls, r: Reader) -> KeyPackageTBS:
        version, suite, init_key, leaf_node, extensions = _decode_content(r)
        return cls(suite, init_key, leaf_node, extensions, version)

    def sign(self, suite: CipherSuite, signature_private_key: bytes) -> KeyPackage:
        """``SignWithLabel(., "KeyPackageTBS", KeyPackageTBS)`` (RFC 9420 §10)."""
        signature = suite.sign_with_label(signature_private_key, _LABEL, self.to_bytes())
        return KeyPackage(
            cipher_suite=self.cipher_suite,
            init_key=self.init_key,
            leaf_node=self.leaf_node,
            extensions=self.extensions,
            signature=signature,
            version=self.version,
        )


@dataclass(frozen=True, slots=True)
class KeyPackage(CachedStruct):
    """``KeyPackage`` (RFC 9420 §10), as decoded: its signature is unchecked.

    ``version`` is the last field so that it can default to ``mls10``; on the
    wire it comes first. The encoding is kept, for :meth:`ref` and the
    signature.
    """

    cipher_suite: int
    init_key: bytes
    leaf_node: LeafNode
    extensions: tuple[Extension, ...] = ()
    signature: bytes = b""
    version: int = ProtocolVersion.MLS10

    def _encode_fields(self, w: Writer) -> None:
        _encode_content(w, self)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> KeyPackage:
        start = r.position
        version, suite, init_key, leaf_node, extensions = _decode_content(r)
        key_package = cls(suite, init_key, leaf_node, extensions, r.opaque(), version)
        key_package._keep_encoding(r.taken(start))
        return key_package

    def to_tbs(self) -> KeyPackageTBS:
        return KeyPackageTBS(
            cipher_suite=self.cipher_suite,
            init_key=self.init_key,
            leaf_node=self.leaf_node,
            extensions=self.extensions,
            version=self.version,
        )

    def verify_signature(self, suite: CipherSuite) -> bool:
        """``VerifyWithLabel`` with the leaf's signature key (RFC 9420 §10).

        ``suite`` should be the one named by :attr:`cipher_suite`.
        """
        # KeyPackageTBS is the KeyPackage without its trailing signature.
        encoding = self.to_bytes()
        signature = self.signature
        tbs = encoding[: len(encoding) - len(signature) - len(encode_varint(len(signature)))]
        return suite.verify_with_label(self.leaf_node.signature_key, _LABEL, tbs, signature)

    def ref(self, suite: CipherSuite) -> bytes:
        """``MakeKeyPackageRef`` (RFC 9420 §5.2), hashed with ``suite``."""
        return suite.key_package_ref(self.to_bytes())
