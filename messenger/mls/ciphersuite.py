"""MLS cipher suites and the labelled primitives built on them.

RFC 9420 §5.1 (cipher suites), §5.1.2 (public key encryption, via HPKE),
§5.1.3 (signing), §5.2 (hash-based identifiers), §8 (ExpandWithLabel,
DeriveSecret), §9 (DeriveTreeSecret) and §17.1 (the registry of suites 1-7).

Keys travel as bytes: signature private keys in the encodings of the mlswg
test vectors (EdDSA: the raw seed; ECDSA: the big-endian scalar; ML-DSA: the
32-byte FIPS 204 seed ``xi``), public keys as RFC 8032 bytes, SEC1
uncompressed points or the FIPS 204 encoding (RFC 9420 §5.1.1).

Post-quantum suites (draft-ietf-mls-pq-ciphersuites-06, §3.1). The draft's
code points are "TBD", so until IANA assigns them these use the MLS
private-use range (RFC 9420 §17.1: 0xF000-0xFFFF), ``0xF000 + n`` for the
draft's ``TBDn``; each is one line in :data:`_SUITE_TABLE`:

======  =====  ===============================================  ======  ======  ======  =======
Value   Draft  Name                                             KEM     AEAD    Hash    Sig.
======  =====  ===============================================  ======  ======  ======  =======
0xF001  TBD1   MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519  0x647a  0x0001  SHA256  ed25519
0xF006  TBD6   MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519        0x0041  0x0002  SHA384  ed25519
0xF00A  TBD10  MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65        0x0041  0x0002  SHA384  mldsa65
======  =====  ===============================================  ======  ======  ======  =======

The KDF is HKDF with the suite's hash (0x0001 HKDF-SHA256, 0x0002
HKDF-SHA384). KEM 0x647a is MLKEM768-X25519 and 0x0041 ML-KEM-768
(draft-ietf-hpke-pq, in .pq_kem).

ML-DSA-65 is the TLS SignatureScheme ``mldsa65`` (0x0905) of
draft-ietf-tls-mldsa, which the MLS draft references; it signs with the
empty context string (FIPS 204 §5.2, pure ML-DSA, hedged: its per-signature
randomness comes from OpenSSL, not from the caller's random source). See
docs/pq-suites.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .codec import Reader, Struct, Writer, encode_varint
from .errors import DecryptionError, UsageError, ValidationError
from .hkdf import expand, extract, hash_constructor, hmac_digest, hmac_states
from .hpke import HPKE, AeadId, KdfId, KemId

__all__ = [
    "CIPHER_SUITES",
    "PQ_CIPHER_SUITES",
    "CipherSuite",
    "HPKECiphertext",
    "HmacKey",
    "RandomSource",
    "SignatureScheme",
    "get_cipher_suite",
    "kdf_label_prefix",
]

#: Where randomness comes from: ``os.urandom`` in production, a seeded
#: generator in tests. The MLS core never reads randomness by itself.
RandomSource = Callable[[int], bytes]

_LABEL_PREFIX: Final = b"MLS 1.0 "


@dataclass(frozen=True, slots=True)
class HPKECiphertext(Struct):
    """``HPKECiphertext`` (RFC 9420 §5.1.3)."""

    kem_output: bytes
    ciphertext: bytes

    def encode(self, w: Writer) -> None:
        w.opaque(self.kem_output)
        w.opaque(self.ciphertext)

    @classmethod
    def decode(cls, r: Reader) -> HPKECiphertext:
        return cls(r.opaque(), r.opaque())


class SignatureScheme:
    """One of the TLS SignatureSchemes used by MLS suites (RFC 9420 §5.1.1)."""

    ED25519: Final = 0x0807
    ED448: Final = 0x0808
    ECDSA_SECP256R1_SHA256: Final = 0x0403
    ECDSA_SECP384R1_SHA384: Final = 0x0503
    ECDSA_SECP521R1_SHA512: Final = 0x0603
    #: draft-ietf-tls-mldsa (``mldsa65``), used by draft-ietf-mls-pq-ciphersuites.
    MLDSA65: Final = 0x0905


_ECDSA: Final[dict[int, tuple[ec.EllipticCurve, hashes.HashAlgorithm, int]]] = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: (ec.SECP256R1(), hashes.SHA256(), 32),
    SignatureScheme.ECDSA_SECP384R1_SHA384: (ec.SECP384R1(), hashes.SHA384(), 48),
    SignatureScheme.ECDSA_SECP521R1_SHA512: (ec.SECP521R1(), hashes.SHA512(), 66),
}

_CURVE_ORDER: Final = {
    SignatureScheme.ECDSA_SECP256R1_SHA256: int(
        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16
    ),
    SignatureScheme.ECDSA_SECP384R1_SHA384: int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
        "581A0DB248B0A77AECEC196ACCC52973",
        16,
    ),
    SignatureScheme.ECDSA_SECP521R1_SHA512: int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
        16,
    ),
}

#: The length of a signature public key in each scheme's encoding (RFC 9420
#: §5.1.1): RFC 8032 for EdDSA, an UncompressedPointRepresentation (RFC 8446
#: §4.2.8.2: 0x04, then x and y) for ECDSA.
_SIGNATURE_KEY_LENGTHS: Final = {
    SignatureScheme.ED25519: 32,
    SignatureScheme.ED448: 57,
    SignatureScheme.MLDSA65: 1952,
    **{scheme: 1 + 2 * size for scheme, (_, _, size) in _ECDSA.items()},
}

_SCHEME_NAMES: Final = {
    SignatureScheme.ED25519: "Ed25519",
    SignatureScheme.ED448: "Ed448",
    SignatureScheme.ECDSA_SECP256R1_SHA256: "ECDSA P-256",
    SignatureScheme.ECDSA_SECP384R1_SHA384: "ECDSA P-384",
    SignatureScheme.ECDSA_SECP521R1_SHA512: "ECDSA P-521",
    SignatureScheme.MLDSA65: "ML-DSA-65",
}


def _signature_key_problem(scheme: int, public: bytes) -> str | None:
    """Why ``public`` is not in the key encoding of ``scheme`` (RFC 9420 §5.1.1), or ``None``."""
    if scheme in _ECDSA:
        size = _ECDSA[scheme][2]
        if public[:1] in (b"\x02", b"\x03") and len(public) == 1 + size:
            return (
                "ECDSA signature keys must be uncompressed SEC1 points (RFC 9420 §5.1.1); "
                "this one is a compressed point"
            )
        if public[:1] != b"\x04":
            return "ECDSA signature keys must be uncompressed SEC1 points (RFC 9420 §5.1.1)"
    length = _SIGNATURE_KEY_LENGTHS[scheme]
    if len(public) != length:
        return (
            f"{_SCHEME_NAMES[scheme]} signature keys are {length} bytes (RFC 9420 §5.1.1), "
            f"not {len(public)}"
        )
    return None


_SigningKey = (
    ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | ec.EllipticCurvePrivateKey
    | mldsa.MLDSA65PrivateKey
)
_VerifyingKey = (
    ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | ec.EllipticCurvePublicKey
    | mldsa.MLDSA65PublicKey
)


@lru_cache(maxsize=256)
def _signing_key(scheme: int, private: bytes) -> _SigningKey:
    try:
        if scheme == SignatureScheme.ED25519:
            return ed25519.Ed25519PrivateKey.from_private_bytes(private)
        if scheme == SignatureScheme.ED448:
            return ed448.Ed448PrivateKey.from_private_bytes(private)
        if scheme == SignatureScheme.MLDSA65:
            return mldsa.MLDSA65PrivateKey.from_seed_bytes(private)
        curve = _ECDSA[scheme][0]
        return ec.derive_private_key(int.from_bytes(private, "big"), curve)
    except ValueError as exc:
        raise UsageError(f"invalid signature private key: {exc}") from None


#: Room for every member of a 10,000-member group: a joiner checks each
#: leaf's signature, then the members' messages, with the same keys; a
#: smaller cache would be cycled through and never hit.
@lru_cache(maxsize=1 << 14)
def _verifying_key(scheme: int, public: bytes) -> _VerifyingKey | None:
    """The key object, or ``None`` if ``public`` is not a valid key."""
    try:
        if scheme == SignatureScheme.ED25519:
            return ed25519.Ed25519PublicKey.from_public_bytes(public)
        if scheme == SignatureScheme.ED448:
            return ed448.Ed448PublicKey.from_public_bytes(public)
        if scheme == SignatureScheme.MLDSA65:
            return mldsa.MLDSA65PublicKey.from_public_bytes(public)
        curve = _ECDSA[scheme][0]
        if not public or public[0] != 0x04:
            return None  # RFC 9420 §5.1.1: uncompressed points only
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, public)
    except ValueError:
        return None


# -- HMAC under one key (RFC 2104 §4); HMAC and HKDF themselves are in .hkdf ---


class HmacKey:
    """HMAC under one key that authenticates many inputs (RFC 2104 §4).

    The hash states after the padded key's inner and outer blocks are
    computed once; each :meth:`mac` copies them, which saves hashing two
    blocks per MAC. For the sender-data key of an epoch (RFC 9420 §6.3.2)
    and the three outputs of a hash-ratchet step (RFC 9420 §9.1). Equal to
    :meth:`CipherSuite.mac` with the same key.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, suite: CipherSuite, key: bytes) -> None:
        self._inner, self._outer = hmac_states(suite.hash_name, key)

    def mac(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def kdf_label_prefix(label: bytes, length: int) -> bytes:
    """``KDFLabel`` up to its context: ``uint16 length || opaque label<V>`` (RFC 9420 §8).

    ``label`` is without the ``"MLS 1.0 "`` prefix. ``ExpandWithLabel(secret,
    label, context, length)`` is ``KDF.Expand(secret, prefix || context<V>,
    length)``; for ``length`` up to ``KDF.Nh`` that is the single HMAC
    ``MAC(secret, prefix || context<V> || 0x01)`` (RFC 5869 §2.3).
    """
    full_label = _LABEL_PREFIX + label
    return length.to_bytes(2, "big") + encode_varint(len(full_label)) + full_label


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """An MLS cipher suite (RFC 9420 §5.1, §17.1).

    Instances are immutable singletons obtained from :func:`get_cipher_suite`.
    """

    suite_id: int
    name: str
    kem_id: int
    kdf_id: int
    aead_id: int
    hash_name: str
    signature_scheme: int
    #: Output length of the hash and of the KDF (``KDF.Nh``).
    hash_len: int
    #: AEAD key length (``AEAD.Nk``).
    key_len: int
    #: AEAD nonce length (``AEAD.Nn``).
    nonce_len: int
    hpke: HPKE = field(compare=False, repr=False)

    # -- hash and KDF (RFC 9420 §5.1, §8) ---------------------------------

    def hash(self, data: bytes) -> bytes:
        return hash_constructor(self.hash_name)(data).digest()

    def mac(self, key: bytes, data: bytes) -> bytes:
        """``MAC(key, data)``: HMAC with the suite's hash (RFC 9420 §5.1)."""
        return hmac_digest(self.hash_name, key, data)

    def verify_mac(self, key: bytes, data: bytes, tag: bytes) -> bool:
        """Constant-time check of a MAC tag."""
        return hmac.compare_digest(self.mac(key, data), tag)

    def extract(self, salt: bytes, ikm: bytes) -> bytes:
        """``KDF.Extract(salt, ikm)`` (HKDF-Extract)."""
        return extract(self.hash_name, salt, ikm)

    def expand(self, prk: bytes, info: bytes, length: int) -> bytes:
        """``KDF.Expand(prk, info, length)`` (HKDF-Expand)."""
        return expand(self.hash_name, self.hash_len, prk, info, length)

    def expand_with_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """``ExpandWithLabel`` (RFC 9420 §8)."""
        info = kdf_label_prefix(label, length) + encode_varint(len(context)) + context
        return expand(self.hash_name, self.hash_len, secret, info, length)

    def derive_secret(self, secret: bytes, label: bytes) -> bytes:
        """``DeriveSecret`` (RFC 9420 §8)."""
        return self.expand_with_label(secret, label, b"", self.hash_len)

    def derive_tree_secret(
        self, secret: bytes, label: bytes, generation: int, length: int
    ) -> bytes:
        """``DeriveTreeSecret`` (RFC 9420 §9)."""
        return self.expand_with_label(secret, label, generation.to_bytes(4, "big"), length)

    # -- hash-based identifiers (RFC 9420 §5.2) ----------------------------

    def ref_hash(self, label: bytes, value: bytes) -> bytes:
        """``RefHash(label, value)`` (RFC 9420 §5.2)."""
        return self.hash(encode_varint(len(label)) + label + encode_varint(len(value)) + value)

    def key_package_ref(self, key_package: bytes) -> bytes:
        """``MakeKeyPackageRef`` over an encoded KeyPackage (RFC 9420 §5.2)."""
        return self.ref_hash(b"MLS 1.0 KeyPackage Reference", key_package)

    def proposal_ref(self, authenticated_content: bytes) -> bytes:
        """``MakeProposalRef`` over an encoded AuthenticatedContent (RFC 9420 §5.2)."""
        return self.ref_hash(b"MLS 1.0 Proposal Reference", authenticated_content)

    # -- AEAD (RFC 9420 §5.1) -----------------------------------------------

    def aead_seal(self, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
        if self.aead_id == AeadId.CHACHA20_POLY1305:
            return ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
        return AESGCM(key).encrypt(nonce, plaintext, aad)

    def aead_open(self, key: bytes, nonce: bytes, aad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt, raising :class:`DecryptionError` on a bad tag."""
        try:
            if self.aead_id == AeadId.CHACHA20_POLY1305:
                return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("AEAD authentication failed") from None

    # -- signatures (RFC 9420 §5.1.2) ---------------------------------------

    def signature_public_key(self, private: bytes) -> bytes:
        """The public key that goes with a signature private key."""
        key = _signing_key(self.signature_scheme, private)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return key.public_key().public_bytes_raw()

    def generate_signature_key_pair(self, random: RandomSource) -> tuple[bytes, bytes]:
        """A fresh ``(private, public)`` signature key pair from ``random``."""
        scheme = self.signature_scheme
        if scheme == SignatureScheme.ED25519:
            private = random(32)
        elif scheme == SignatureScheme.ED448:
            private = random(57)
        elif scheme == SignatureScheme.MLDSA65:
            private = random(32)  # the FIPS 204 seed xi
        else:
            order = _CURVE_ORDER[scheme]
            size = _ECDSA[scheme][2]
            bits = order.bit_length()
            while True:  # rejection sampling for a uniform scalar in [1, n)
                candidate = int.from_bytes(random(size), "big") & ((1 << bits) - 1)
                if 0 < candidate < order:
                    break
            private = candidate.to_bytes(size, "big")
        return private, self.signature_public_key(private)

    def sign(self, private: bytes, message: bytes) -> bytes:
        key = _signing_key(self.signature_scheme, private)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(message, ec.ECDSA(_ECDSA[self.signature_scheme][1]))
        return key.sign(message)

    def verify(self, public: bytes, message: bytes, signature: bytes) -> bool:
        key = _verifying_key(self.signature_scheme, bytes(public))
        if key is None:
            return False
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, message, ec.ECDSA(_ECDSA[self.signature_scheme][1]))
            else:
                key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def is_valid_signature_public_key(self, public: bytes) -> bool:
        return _verifying_key(self.signature_scheme, bytes(public)) is not None

    def check_signature_public_key(self, public: bytes) -> None:
        """:class:`ValidationError` unless ``public`` is in the encoding of the
        suite's signature scheme (RFC 9420 §5.1.1).

        Only the form is checked, without parsing: the length, and for ECDSA
        the uncompressed SEC1 point form. A key of the right form that is
        not a valid key (an ECDSA point off the curve) shows when a signature
        fails to verify with it.
        """
        problem = _signature_key_problem(self.signature_scheme, bytes(public))
        if problem is not None:
            raise ValidationError(problem)

    @staticmethod
    def _sign_content(label: bytes, content: bytes) -> bytes:
        full_label = _LABEL_PREFIX + label
        return encode_varint(len(full_label)) + full_label + encode_varint(len(content)) + content

    def sign_with_label(self, private: bytes, label: bytes, content: bytes) -> bytes:
        """``SignWithLabel`` (RFC 9420 §5.1.2)."""
        return self.sign(private, self._sign_content(label, content))

    def verify_with_label(
        self, public: bytes, label: bytes, content: bytes, signature: bytes
    ) -> bool:
        """``VerifyWithLabel`` (RFC 9420 §5.1.2)."""
        return self.verify(public, self._sign_content(label, content), signature)

    # -- public key encryption (RFC 9420 §5.1.3) ------------------------------

    def derive_hpke_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """``DeriveKeyPair`` of the suite's KEM: ``(private, public)``."""
        return self.hpke.derive_key_pair(ikm)

    def hpke_public_key(self, private: bytes) -> bytes:
        return self.hpke.public_key(private)

    def generate_hpke_key_pair(self, random: RandomSource) -> tuple[bytes, bytes]:
        return self.hpke.derive_key_pair(random(self.hpke.Nsk))

    @staticmethod
    def _encrypt_context(label: bytes, context: bytes) -> bytes:
        full_label = _LABEL_PREFIX + label
        return encode_varint(len(full_label)) + full_label + encode_varint(len(context)) + context

    def encrypt_with_label(
        self,
        public: bytes,
        label: bytes,
        context: bytes,
        plaintext: bytes,
        random: RandomSource,
    ) -> HPKECiphertext:
        """``EncryptWithLabel`` (RFC 9420 §5.1.3)."""
        info = self._encrypt_context(label, context)
        enc, ct = self.hpke.seal_base(public, info, b"", plaintext, random)
        return HPKECiphertext(enc, ct)

    def decrypt_with_label(
        self, private: bytes, label: bytes, context: bytes, kem_output: bytes, ciphertext: bytes
    ) -> bytes:
        """``DecryptWithLabel`` (RFC 9420 §5.1.3); :class:`DecryptionError` on failure."""
        info = self._encrypt_context(label, context)
        return self.hpke.open_base(kem_output, private, info, b"", ciphertext)


def _suite(
    suite_id: int,
    name: str,
    kem: int,
    kdf: int,
    aead: int,
    hash_name: str,
    scheme: int,
) -> CipherSuite:
    hash_len = hashlib.new(hash_name).digest_size
    key_len = {AeadId.AES_128_GCM: 16, AeadId.AES_256_GCM: 32, AeadId.CHACHA20_POLY1305: 32}[aead]
    return CipherSuite(
        suite_id=suite_id,
        name=name,
        kem_id=kem,
        kdf_id=kdf,
        aead_id=aead,
        hash_name=hash_name,
        signature_scheme=scheme,
        hash_len=hash_len,
        key_len=key_len,
        nonce_len=12,
        hpke=HPKE(kem, kdf, aead),
    )


#: RFC 9420 §17.1: the seven registered suites, by their uint16 id, and
#: below them the post-quantum suites of :data:`_SUITE_TABLE`.
CIPHER_SUITES: Final[dict[int, CipherSuite]] = {
    s.suite_id: s
    for s in (
        _suite(
            1,
            "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
            KemId.DHKEM_X25519_SHA256,
            KdfId.HKDF_SHA256,
            AeadId.AES_128_GCM,
            "sha256",
            SignatureScheme.ED25519,
        ),
        _suite(
            2,
            "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
            KemId.DHKEM_P256_SHA256,
            KdfId.HKDF_SHA256,
            AeadId.AES_128_GCM,
            "sha256",
            SignatureScheme.ECDSA_SECP256R1_SHA256,
        ),
        _suite(
            3,
            "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
            KemId.DHKEM_X25519_SHA256,
            KdfId.HKDF_SHA256,
            AeadId.CHACHA20_POLY1305,
            "sha256",
            SignatureScheme.ED25519,
        ),
        _suite(
            4,
            "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
            KemId.DHKEM_X448_SHA512,
            KdfId.HKDF_SHA512,
            AeadId.AES_256_GCM,
            "sha512",
            SignatureScheme.ED448,
        ),
        _suite(
            5,
            "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
            KemId.DHKEM_P521_SHA512,
            KdfId.HKDF_SHA512,
            AeadId.AES_256_GCM,
            "sha512",
            SignatureScheme.ECDSA_SECP521R1_SHA512,
        ),
        _suite(
            6,
            "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
            KemId.DHKEM_X448_SHA512,
            KdfId.HKDF_SHA512,
            AeadId.CHACHA20_POLY1305,
            "sha512",
            SignatureScheme.ED448,
        ),
        _suite(
            7,
            "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
            KemId.DHKEM_P384_SHA384,
            KdfId.HKDF_SHA384,
            AeadId.AES_256_GCM,
            "sha384",
            SignatureScheme.ECDSA_SECP384R1_SHA384,
        ),
    )
}

#: draft-ietf-mls-pq-ciphersuites-06 §3.1, in the private-use range until IANA
#: assigns values (0xF000 + n for the draft's TBDn; see the module docstring).
#: One line per suite: value -> (name, KEM, KDF, AEAD, hash, SignatureScheme).
_SUITE_TABLE: Final[dict[int, tuple[str, int, int, int, str, int]]] = {
    0xF001: ("MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519", 0x647A, 1, 1, "sha256", 0x0807),
    0xF006: ("MLS_128_MLKEM768_AES256GCM_SHA384_Ed25519", 0x0041, 2, 2, "sha384", 0x0807),
    0xF00A: ("MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65", 0x0041, 2, 2, "sha384", 0x0905),
}
CIPHER_SUITES.update((value, _suite(value, *row)) for value, row in _SUITE_TABLE.items())

#: The post-quantum suites above, by name, for callers that pick one.
MLS_128_MLKEM768X25519_AES128GCM_SHA256_ED25519: Final = 0xF001
MLS_128_MLKEM768_AES256GCM_SHA384_ED25519: Final = 0xF006
MLS_192_MLKEM768_AES256GCM_SHA384_MLDSA65: Final = 0xF00A
PQ_CIPHER_SUITES: Final = tuple(_SUITE_TABLE)


def get_cipher_suite(suite_id: int) -> CipherSuite:
    """The suite with this id; :class:`UsageError` if it is not supported."""
    try:
        return CIPHER_SUITES[suite_id]
    except KeyError:
        raise UsageError(f"unsupported cipher suite 0x{suite_id:04x}") from None
