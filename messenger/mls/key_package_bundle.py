"""Generating key packages, with the private keys that go with them (RFC 9420 §10).

A client publishes :class:`~messenger.mls.key_package.KeyPackage` values so
that others can add it to groups asynchronously (RFC 9420 §10). For each one
it keeps three private keys until the KeyPackage is used (RFC 9420 §16.8,
"KeyPackage Reuse"):

* the HPKE private key of ``init_key``, which opens the GroupSecrets of a
  Welcome (RFC 9420 §12.4.3.1);
* the HPKE private key of ``leaf_node.encryption_key``, which becomes the
  member's leaf key in the group's ratchet tree (RFC 9420 §7.1);
* the signature private key of ``leaf_node.signature_key``.

:class:`KeyPackageBundle` holds the KeyPackage and those keys; it encodes to
bytes (a private encoding, for the client's database).
:func:`generate_key_package` makes one from fresh randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .ciphersuite import CipherSuite, RandomSource, get_cipher_suite
from .codec import Reader, Struct, Writer
from .credentials import Credential, CredentialType
from .errors import UsageError
from .extensions import DEFAULT_EXTENSION_TYPES, Extension, check_unique_extensions
from .group_context import ProtocolVersion
from .key_package import KeyPackage, KeyPackageTBS
from .leaf_node import Capabilities, LeafNodeSource, LeafNodeTBS, Lifetime
from .messages import MLSMessage

__all__ = [
    "DEFAULT_LIFETIME",
    "LAST_RESORT_EXTENSION_TYPE",
    "LIFETIME_MARGIN",
    "KeyPackageBundle",
    "default_capabilities",
    "generate_key_package",
]

#: How long a generated KeyPackage is valid by default: 90 days.
DEFAULT_LIFETIME: Final = 90 * 24 * 3600

#: ``not_before`` is set this far in the past, for peers whose clocks lag.
LIFETIME_MARGIN: Final = 3600

#: The ``last_resort`` KeyPackage extension (draft-ietf-mls-extensions,
#: IANA "MLS Extension Types" 0x000A): this KeyPackage may be used more than
#: once (RFC 9420 §16.8).
LAST_RESORT_EXTENSION_TYPE: Final = 0x000A


def default_capabilities(suite: CipherSuite, extensions: Sequence[int] = ()) -> Capabilities:
    """What this implementation supports (RFC 9420 §7.2).

    Version ``mls10``, the group's suite, both credential types, and the
    non-default extension types in ``extensions``. Default proposal and
    extension types are never listed (RFC 9420 §7.2).
    """
    listed = tuple(sorted({t for t in extensions if t not in DEFAULT_EXTENSION_TYPES}))
    return Capabilities(
        versions=(ProtocolVersion.MLS10,),
        cipher_suites=(suite.suite_id,),
        extensions=listed,
        proposals=(),
        credentials=(CredentialType.BASIC, CredentialType.X509),
    )


@dataclass(frozen=True, slots=True)
class KeyPackageBundle(Struct):
    """A KeyPackage and its private keys (RFC 9420 §10).

    The encoding is private to this implementation: the KeyPackage, then the
    three private keys as ``opaque<V>``. Never send it to anyone.
    """

    key_package: KeyPackage
    init_private_key: bytes
    encryption_private_key: bytes
    signature_private_key: bytes

    def encode(self, w: Writer) -> None:
        self.key_package.encode(w)
        w.opaque(self.init_private_key)
        w.opaque(self.encryption_private_key)
        w.opaque(self.signature_private_key)

    @classmethod
    def decode(cls, r: Reader) -> KeyPackageBundle:
        return cls(KeyPackage.decode(r), r.opaque(), r.opaque(), r.opaque())

    def __repr__(self) -> str:  # never print private keys
        kp = self.key_package
        return f"KeyPackageBundle(suite={kp.cipher_suite}, credential={kp.leaf_node.credential!r})"

    @property
    def suite(self) -> CipherSuite:
        return get_cipher_suite(self.key_package.cipher_suite)

    def ref(self) -> bytes:
        """``MakeKeyPackageRef`` of the KeyPackage (RFC 9420 §5.2)."""
        return self.key_package.ref(self.suite)

    def message(self) -> bytes:
        """The KeyPackage as an ``MLSMessage``, ready to publish (RFC 9420 §6)."""
        return MLSMessage(self.key_package).to_bytes()

    @property
    def is_last_resort(self) -> bool:
        return any(
            e.extension_type == LAST_RESORT_EXTENSION_TYPE for e in self.key_package.extensions
        )


def generate_key_package(
    suite: CipherSuite,
    credential: Credential,
    signature_private_key: bytes,
    random: RandomSource,
    *,
    now: int,
    lifetime: int = DEFAULT_LIFETIME,
    capabilities: Capabilities | None = None,
    extensions: Sequence[Extension] = (),
    leaf_extensions: Sequence[Extension] = (),
    last_resort: bool = False,
) -> KeyPackageBundle:
    """A fresh KeyPackage signed with ``signature_private_key`` (RFC 9420 §10).

    ``now`` is the current time in seconds since the Unix epoch; the
    KeyPackage is valid from ``LIFETIME_MARGIN`` seconds before it for
    ``lifetime`` seconds. The init and leaf encryption keys are fresh HPKE
    key pairs from ``random``. ``capabilities`` defaults to
    :func:`default_capabilities` listing the non-default types of
    ``extensions`` and ``leaf_extensions`` (RFC 9420 §10: they MUST be listed).
    With ``last_resort`` the KeyPackage carries the ``last_resort`` extension.
    """
    if now < 0 or lifetime <= 0:
        raise UsageError("now must not be negative and lifetime must be positive")
    kp_extensions = list(extensions)
    if last_resort:
        kp_extensions.append(Extension(LAST_RESORT_EXTENSION_TYPE, b""))
    check_unique_extensions(kp_extensions)
    check_unique_extensions(leaf_extensions)
    if capabilities is None:
        types = [e.extension_type for e in (*kp_extensions, *leaf_extensions)]
        capabilities = default_capabilities(suite, types)
    if credential.credential_type not in capabilities.credentials:
        raise UsageError("capabilities must list the credential's own type (RFC 9420 §7.2)")
    for ext in leaf_extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in capabilities.extensions:
            raise UsageError(f"leaf extension 0x{t:04x} is not listed in capabilities")

    signature_key = suite.signature_public_key(signature_private_key)
    init_private, init_public = suite.generate_hpke_key_pair(random)
    enc_private, enc_public = suite.generate_hpke_key_pair(random)
    if init_public == enc_public:  # RFC 9420 §10.1; only with a broken random source
        raise UsageError("the random source returned the same key twice")
    not_before = max(0, now - LIFETIME_MARGIN)
    leaf = LeafNodeTBS(
        encryption_key=enc_public,
        signature_key=signature_key,
        credential=credential,
        capabilities=capabilities,
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=Lifetime(not_before, min(now + lifetime, (1 << 64) - 1)),
        extensions=tuple(leaf_extensions),
    ).sign(suite, signature_private_key)
    key_package = KeyPackageTBS(
        cipher_suite=suite.suite_id,
        init_key=init_public,
        leaf_node=leaf,
        extensions=tuple(kp_extensions),
    ).sign(suite, signature_private_key)
    return KeyPackageBundle(key_package, init_private, enc_private, signature_private_key)
