"""Joining a group: GroupInfo and Welcome, as wire structs (RFC 9420 §12.4.3).

* :class:`GroupInfo` describes an epoch to a joiner and is signed by a member
  over a :class:`GroupInfoTBS` (RFC 9420 §12.4.3). It travels encrypted in a
  Welcome, or in the clear for external joins (RFC 9420 §12.4.3.2).
* :class:`Welcome` carries the encrypted GroupInfo and, per new member, an
  :class:`EncryptedGroupSecrets`: the :class:`GroupSecrets` HPKE-encrypted to
  the member's init key (RFC 9420 §12.4.3.1).

The encryption itself and the joining procedure are the group logic's
business; this module is the encoding and the GroupInfo signature.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ciphersuite import CipherSuite, HPKECiphertext
from .codec import CachedStruct, Reader, Struct, Writer, encode_varint
from .extensions import Extension
from .group_context import GroupContext
from .psk import PreSharedKeyID

__all__ = [
    "EncryptedGroupSecrets",
    "GroupInfo",
    "GroupInfoTBS",
    "GroupSecrets",
    "PathSecret",
    "Welcome",
]

_LABEL = b"GroupInfoTBS"


def _encode_content(w: Writer, gi: GroupInfo | GroupInfoTBS) -> None:
    gi.group_context.encode(w)
    w.structs(gi.extensions)
    w.opaque(gi.confirmation_tag)
    w.u32(gi.signer)


def _decode_content(r: Reader) -> tuple[GroupContext, tuple[Extension, ...], bytes, int]:
    return GroupContext.decode(r), tuple(r.structs(Extension)), r.opaque(), r.u32()


@dataclass(frozen=True, slots=True)
class GroupInfoTBS(Struct):
    """``GroupInfoTBS`` (RFC 9420 §12.4.3): what a GroupInfo's signature covers."""

    group_context: GroupContext
    extensions: tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int

    def encode(self, w: Writer) -> None:
        _encode_content(w, self)

    @classmethod
    def decode(cls, r: Reader) -> GroupInfoTBS:
        return cls(*_decode_content(r))

    def sign(self, suite: CipherSuite, signature_private_key: bytes) -> GroupInfo:
        """``SignWithLabel(., "GroupInfoTBS", GroupInfoTBS)`` (RFC 9420 §12.4.3)."""
        signature = suite.sign_with_label(signature_private_key, _LABEL, self.to_bytes())
        return GroupInfo(
            self.group_context, self.extensions, self.confirmation_tag, self.signer, signature
        )


@dataclass(frozen=True, slots=True)
class GroupInfo(CachedStruct):
    """``GroupInfo`` (RFC 9420 §12.4.3), as decoded: its signature is unchecked.

    ``signer`` is the leaf index of the member whose signature key verifies
    :attr:`signature`. The encoding is kept: with the ratchet tree inline it
    is large, and the signed ``GroupInfoTBS`` is all of it but the signature.
    """

    group_context: GroupContext
    extensions: tuple[Extension, ...]
    confirmation_tag: bytes
    signer: int
    signature: bytes = b""

    def _encode_fields(self, w: Writer) -> None:
        _encode_content(w, self)
        w.opaque(self.signature)

    @classmethod
    def decode(cls, r: Reader) -> GroupInfo:
        start = r.position
        group_info = cls(*_decode_content(r), r.opaque())
        group_info._keep_encoding(r.taken(start))
        return group_info

    def to_tbs(self) -> GroupInfoTBS:
        return GroupInfoTBS(self.group_context, self.extensions, self.confirmation_tag, self.signer)

    def verify_signature(self, suite: CipherSuite, signature_key: bytes) -> bool:
        """``VerifyWithLabel`` with the signer's leaf signature key (RFC 9420 §12.4.3)."""
        encoding = self.to_bytes()
        signature = self.signature
        tbs = encoding[: len(encoding) - len(signature) - len(encode_varint(len(signature)))]
        return suite.verify_with_label(signature_key, _LABEL, tbs, signature)


@dataclass(frozen=True, slots=True)
class PathSecret(Struct):
    """``PathSecret`` (RFC 9420 §12.4.3.1)."""

    path_secret: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.path_secret)

    @classmethod
    def decode(cls, r: Reader) -> PathSecret:
        return cls(r.opaque())


@dataclass(frozen=True, slots=True)
class GroupSecrets(Struct):
    """``GroupSecrets`` (RFC 9420 §12.4.3.1): what a new member decrypts.

    ``path_secret`` is the secret of the lowest node common to the committer's
    and the new member's direct paths, if the commit had a path.
    """

    joiner_secret: bytes
    path_secret: PathSecret | None = None
    psks: tuple[PreSharedKeyID, ...] = ()

    def encode(self, w: Writer) -> None:
        w.opaque(self.joiner_secret)
        w.optional(self.path_secret, Writer.struct)
        w.structs(self.psks)

    @classmethod
    def decode(cls, r: Reader) -> GroupSecrets:
        return cls(r.opaque(), r.optional(PathSecret.decode), tuple(r.structs(PreSharedKeyID)))


@dataclass(frozen=True, slots=True)
class EncryptedGroupSecrets(Struct):
    """``EncryptedGroupSecrets`` (RFC 9420 §12.4.3.1).

    ``new_member`` is the ``KeyPackageRef`` of the joiner's key package.
    """

    new_member: bytes
    encrypted_group_secrets: HPKECiphertext

    def encode(self, w: Writer) -> None:
        w.opaque(self.new_member)
        self.encrypted_group_secrets.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> EncryptedGroupSecrets:
        return cls(r.opaque(), HPKECiphertext.decode(r))


@dataclass(frozen=True, slots=True)
class Welcome(Struct):
    """``Welcome`` (RFC 9420 §12.4.3.1)."""

    cipher_suite: int
    secrets: tuple[EncryptedGroupSecrets, ...]
    encrypted_group_info: bytes

    def encode(self, w: Writer) -> None:
        w.u16(self.cipher_suite)
        w.structs(self.secrets)
        w.opaque(self.encrypted_group_info)

    @classmethod
    def decode(cls, r: Reader) -> Welcome:
        cipher_suite = r.u16()
        # EncryptedGroupSecrets secrets<V>, one per new member: inlined, as
        # the Welcome of a large group's first commit has thousands.
        inner = r.sub()
        secrets = []
        while not inner.at_end():
            new_member = inner.opaque()
            kem_output = inner.opaque()
            secrets.append(
                EncryptedGroupSecrets(new_member, HPKECiphertext(kem_output, inner.opaque()))
            )
        return cls(cipher_suite, tuple(secrets), r.opaque())

    def secrets_for(self, key_package_ref: bytes) -> EncryptedGroupSecrets | None:
        """The entry whose ``new_member`` is ``key_package_ref`` (RFC 9420 §12.4.3.1)."""
        for entry in self.secrets:
            if entry.new_member == key_package_ref:
                return entry
        return None
