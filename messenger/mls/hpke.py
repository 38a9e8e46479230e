"""Hybrid Public Key Encryption for MLS (RFC 9180), sans-I/O.

What is here, by RFC 9180 section:

* §4 -- ``LabeledExtract`` / ``LabeledExpand`` over HKDF (§7.2).
* §4.1 -- DHKEM: ``Encap`` / ``Decap`` with ``ExtractAndExpand``, for
  DHKEM(P-256, HKDF-SHA256), DHKEM(P-384, HKDF-SHA384),
  DHKEM(P-521, HKDF-SHA512), DHKEM(X25519, HKDF-SHA256) and
  DHKEM(X448, HKDF-SHA512).
* §5.1 -- ``KeySchedule`` for ``mode_base`` and ``mode_psk`` (the two
  authenticated modes are not needed by MLS and are not provided).
* §5.2 -- the encryption :class:`Context` with its sequence number, and §5.3
  the secret export interface.
* §6.1 -- single-shot ``SealBase`` / ``OpenBase``.
* §7.1.1 -- key (de)serialisation: raw bytes for X25519/X448, SEC1
  uncompressed points and fixed-length big-endian scalars for the NIST
  curves; §7.1.3 ``DeriveKeyPair`` including the rejection loop for the NIST
  curves; §7.1.4 validation of public keys (X25519/X448 points of small
  order are refused) and the all-zero check of the X25519/X448 shared secret.
* draft-ietf-hpke-pq -- the KEMs ML-KEM-768 (0x0041) and MLKEM768-X25519
  (0x647a), in :mod:`.pq_kem`, behind the same KEM interface (``Encap``,
  ``Decap``, ``DeriveKeyPair``), so the key schedule, ``Export`` and the
  setup functions here work for them unchanged.

Randomness is never read here: the sender's ephemeral key is
``DeriveKeyPair(random(Nsk))``, where ``random`` is the caller's source
(architecture guide, convention 1), so test vectors can pin ``ikmE``.

``cryptography``'s native HPKE (``cryptography.hazmat.primitives.hpke``) is
used for single-shot ``OpenBase`` with an empty ``aad`` (the only form MLS
uses) on the KEMs it supports, because it is faster; its encryption side
draws its ephemeral key from OpenSSL's generator, so sealing always goes
through the code here.

Errors: anything wrong with what a peer sent -- a malformed or invalid
``enc``, an all-zero shared secret, a ciphertext that does not authenticate --
raises :class:`~messenger.mls.errors.DecryptionError`. A bad key passed by the
caller -- an invalid recipient public key given to ``seal``/``setup_*_s``,
an invalid private key given to ``open``/``setup_*_r`` -- raises
:class:`~messenger.mls.errors.UsageError`, as do API misuse (wrong PSK inputs,
sealing on a receiver context, exhausted sequence numbers, over-long exports).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as _native
from cryptography.hazmat.primitives.asymmetric import ec, x448, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .errors import DecryptionError, UsageError
from .hkdf import expand, extract
from .pq_kem import MLKEM768, MLKEM768_X25519, PqKem

__all__ = [
    "HPKE",
    "AeadId",
    "Context",
    "KdfId",
    "KemId",
    "Mode",
]


class KemId:
    """KEM identifiers (RFC 9180 §7.1, table 2)."""

    DHKEM_P256_SHA256: Final = 0x0010
    DHKEM_P384_SHA384: Final = 0x0011
    DHKEM_P521_SHA512: Final = 0x0012
    DHKEM_X25519_SHA256: Final = 0x0020
    DHKEM_X448_SHA512: Final = 0x0021
    #: draft-ietf-hpke-pq §3 and §4 (see :mod:`.pq_kem`).
    ML_KEM_768: Final = 0x0041
    MLKEM768_X25519: Final = 0x647A


class KdfId:
    """KDF identifiers (RFC 9180 §7.2, table 3)."""

    HKDF_SHA256: Final = 0x0001
    HKDF_SHA384: Final = 0x0002
    HKDF_SHA512: Final = 0x0003


class AeadId:
    """AEAD identifiers (RFC 9180 §7.3, table 5)."""

    AES_128_GCM: Final = 0x0001
    AES_256_GCM: Final = 0x0002
    CHACHA20_POLY1305: Final = 0x0003
    EXPORT_ONLY: Final = 0xFFFF


class Mode:
    """HPKE modes (RFC 9180 §5, table 1); only base and psk are implemented."""

    BASE: Final = 0x00
    PSK: Final = 0x01


_VERSION_LABEL: Final = b"HPKE-v1"
#: ``info`` values at least this long have their hash remembered (see HPKE).
_INFO_HASH_CACHE_MIN: Final = 4096
_ROLE_SENDER: Final = 0
_ROLE_RECIPIENT: Final = 1

_AeadCipher = AESGCM | ChaCha20Poly1305
_PrivateKey = x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey
_PublicKey = x25519.X25519PublicKey | x448.X448PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class _KemParams:
    """The constants of one DHKEM (RFC 9180 §7.1, table 2)."""

    kem_id: int
    hash_name: str
    n_secret: int
    n_enc: int
    n_pk: int
    n_sk: int
    #: For the NIST curves: the curve, its order and the DeriveKeyPair bitmask.
    curve: ec.EllipticCurve | None = None
    order: int = 0
    bitmask: int = 0
    native_kem: _native.KEM | None = None
    #: For the post-quantum KEMs of draft-ietf-hpke-pq: their implementation.
    pq: PqKem | None = None


_KEMS: Final[dict[int, _KemParams]] = {
    KemId.DHKEM_P256_SHA256: _KemParams(
        KemId.DHKEM_P256_SHA256,
        "sha256",
        32,
        65,
        65,
        32,
        ec.SECP256R1(),
        0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        0xFF,
        _native.KEM.P256,
    ),
    KemId.DHKEM_P384_SHA384: _KemParams(
        KemId.DHKEM_P384_SHA384,
        "sha384",
        48,
        97,
        97,
        48,
        ec.SECP384R1(),
        int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
            "581A0DB248B0A77AECEC196ACCC52973",
            16,
        ),
        0xFF,
        _native.KEM.P384,
    ),
    KemId.DHKEM_P521_SHA512: _KemParams(
        KemId.DHKEM_P521_SHA512,
        "sha512",
        64,
        133,
        133,
        66,
        ec.SECP521R1(),
        int(
            "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
            "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
            16,
        ),
        0x01,
        _native.KEM.P521,
    ),
    KemId.DHKEM_X25519_SHA256: _KemParams(
        KemId.DHKEM_X25519_SHA256, "sha256", 32, 32, 32, 32, native_kem=_native.KEM.X25519
    ),
    KemId.DHKEM_X448_SHA512: _KemParams(KemId.DHKEM_X448_SHA512, "sha512", 64, 56, 56, 56),
    **{
        pq.kem_id: _KemParams(
            pq.kem_id, "", pq.n_secret, pq.n_enc, pq.n_pk, pq.n_sk, native_kem=pq.native_kem, pq=pq
        )
        for pq in (MLKEM768, MLKEM768_X25519)
    },
}

#: KDF id -> (hash name, Nh) (RFC 9180 §7.2, table 3).
_KDFS: Final[dict[int, tuple[str, int]]] = {
    KdfId.HKDF_SHA256: ("sha256", 32),
    KdfId.HKDF_SHA384: ("sha384", 48),
    KdfId.HKDF_SHA512: ("sha512", 64),
}

#: AEAD id -> (Nk, Nn) (RFC 9180 §7.3, table 5).
_AEADS: Final[dict[int, tuple[int, int]]] = {
    AeadId.AES_128_GCM: (16, 12),
    AeadId.AES_256_GCM: (32, 12),
    AeadId.CHACHA20_POLY1305: (32, 12),
    AeadId.EXPORT_ONLY: (0, 0),
}

_NATIVE_KDF: Final = {
    KdfId.HKDF_SHA256: _native.KDF.HKDF_SHA256,
    KdfId.HKDF_SHA384: _native.KDF.HKDF_SHA384,
    KdfId.HKDF_SHA512: _native.KDF.HKDF_SHA512,
}
_NATIVE_AEAD: Final = {
    AeadId.AES_128_GCM: _native.AEAD.AES_128_GCM,
    AeadId.AES_256_GCM: _native.AEAD.AES_256_GCM,
    AeadId.CHACHA20_POLY1305: _native.AEAD.CHACHA20_POLY1305,
}


# -- the labelled variants of HKDF (RFC 9180 §4, §7.2), over .hkdf ---------------


def _labeled_extract(
    hash_name: str, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes
) -> bytes:
    """``LabeledExtract(salt, label, ikm)`` (RFC 9180 §4)."""
    return extract(hash_name, salt, _VERSION_LABEL + suite_id + label + ikm)


def _labeled_expand(
    hash_name: str,
    hash_len: int,
    suite_id: bytes,
    prk: bytes,
    label: bytes,
    info: bytes,
    length: int,
) -> bytes:
    """``LabeledExpand(prk, label, info, L)`` (RFC 9180 §4)."""
    if length > 0xFFFF:
        raise UsageError("LabeledExpand length does not fit in two bytes")
    labeled_info = length.to_bytes(2, "big") + _VERSION_LABEL + suite_id + label + info
    return expand(hash_name, hash_len, prk, labeled_info, length)


# -- key (de)serialisation (RFC 9180 §7.1.1, §7.1.4) ---------------------------


def _private_key(kem: _KemParams, private: bytes) -> _PrivateKey:
    """``DeserializePrivateKey``; :class:`UsageError` if ``private`` is not a key."""
    if len(private) != kem.n_sk:
        raise UsageError(f"HPKE private key must be {kem.n_sk} bytes, got {len(private)}")
    try:
        if kem.kem_id == KemId.DHKEM_X25519_SHA256:
            return x25519.X25519PrivateKey.from_private_bytes(private)
        if kem.kem_id == KemId.DHKEM_X448_SHA512:
            return x448.X448PrivateKey.from_private_bytes(private)
        assert kem.curve is not None  # the table gives NIST KEMs a curve
        scalar = int.from_bytes(private, "big")
        if not 0 < scalar < kem.order:
            raise UsageError("HPKE private key scalar is out of range")
        return ec.derive_private_key(scalar, kem.curve)
    except ValueError as exc:
        raise UsageError(f"invalid HPKE private key: {exc}") from None


#: RFC 7748 §5: the field primes of Curve25519 and Curve448.
_P25519: Final = (1 << 255) - 19
_P448: Final = (1 << 448) - (1 << 224) - 1

#: The u-coordinates, reduced mod p, of the points of small order on each
#: curve and its twist: 0, 1 and p - 1 (orders 2 and 4), and for Curve25519
#: the two points of order 8. The private keys of RFC 7748 §5 are multiples
#: of the cofactor, so with any of them the shared secret is all zero, which
#: RFC 9180 §7.1.4 (via RFC 7748 §6) makes the recipient reject.
_SMALL_ORDER_U: Final[dict[int, frozenset[int]]] = {
    KemId.DHKEM_X25519_SHA256: frozenset(
        {
            0,
            1,
            _P25519 - 1,
            325606250916557431795983626356110631294008115727848805560023387167927233504,
            39382357235489614581723060781553021112529911719440698176882885853963445705823,
        }
    ),
    KemId.DHKEM_X448_SHA512: frozenset({0, 1, _P448 - 1}),
}


def _has_small_order(kem_id: int, public: bytes) -> bool:
    """Whether an X25519/X448 public key is a point of small order (RFC 7748 §5, §6).

    Decoded as RFC 7748 §5 decodes u-coordinates: little-endian, the top
    bit masked for X25519, reduced mod p (non-canonical values are accepted).
    """
    u = int.from_bytes(public, "little")
    if kem_id == KemId.DHKEM_X25519_SHA256:
        u = (u & ((1 << 255) - 1)) % _P25519
    else:
        u %= _P448
    return u in _SMALL_ORDER_U[kem_id]


def _parse_public_key(kem_id: int, public: bytes) -> _PublicKey | None:
    """``DeserializePublicKey`` with validation (RFC 9180 §7.1.4), or ``None``.

    X25519 and X448 keys of small order are refused here: every shared
    secret with them is all zero, which RFC 9180 §7.1.4 rejects.
    """
    kem = _KEMS[kem_id]
    if len(public) != kem.n_pk:
        return None
    if kem.curve is None and _has_small_order(kem_id, public):
        return None
    try:
        if kem_id == KemId.DHKEM_X25519_SHA256:
            return x25519.X25519PublicKey.from_public_bytes(public)
        if kem_id == KemId.DHKEM_X448_SHA512:
            return x448.X448PublicKey.from_public_bytes(public)
        assert kem.curve is not None  # the table gives NIST KEMs a curve
        if public[0] != 0x04:
            return None  # RFC 9180 §7.1.1: uncompressed points only
        # from_encoded_point checks that the point is on the curve.
        return ec.EllipticCurvePublicKey.from_encoded_point(kem.curve, public)
    except ValueError:
        return None


#: Recipient keys (leaf and init keys) are sealed to again and again, so
#: their parsed form is cached; one-shot ``enc`` values are not.
_recipient_key = lru_cache(maxsize=1024)(_parse_public_key)


def _serialize_public(key: _PublicKey) -> bytes:
    """``SerializePublicKey`` (RFC 9180 §7.1.1)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return key.public_bytes_raw()


def _dh(private: _PrivateKey, public: _PublicKey) -> bytes | None:
    """``DH(skX, pkY)``, or ``None`` if the shared secret is invalid.

    For X25519/X448 an all-zero output (a small-order peer key) is rejected
    (RFC 9180 §7.1.4); for the NIST curves the output is the x-coordinate.
    """
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey):
            if not isinstance(public, ec.EllipticCurvePublicKey):
                return None
            return private.exchange(ec.ECDH(), public)
        if isinstance(private, x25519.X25519PrivateKey):
            if not isinstance(public, x25519.X25519PublicKey):
                return None
            dh = private.exchange(public)
        else:
            if not isinstance(public, x448.X448PublicKey):
                return None
            dh = private.exchange(public)
    except ValueError:
        return None  # OpenSSL refuses the all-zero X25519/X448 output itself
    if not any(dh):
        return None
    return dh


# -- the encryption context (RFC 9180 §5.2, §5.3) ------------------------------


class Context:
    """An HPKE encryption context (RFC 9180 §5.2).

    A sender context (from ``setup_*_s``) only seals; a recipient context
    (from ``setup_*_r``) only opens. Both export (RFC 9180 §5.3).
    """

    __slots__ = (
        "_aead",
        "_base_nonce",
        "_exporter_secret",
        "_hash_len",
        "_hash_name",
        "_key",
        "_max_seq",
        "_role",
        "_seq",
        "_suite_id",
    )

    def __init__(
        self,
        *,
        role: int,
        aead_id: int,
        key: bytes,
        base_nonce: bytes,
        exporter_secret: bytes,
        suite_id: bytes,
        hash_name: str,
        hash_len: int,
    ) -> None:
        self._role = role
        self._key = key
        self._base_nonce = base_nonce
        self._exporter_secret = exporter_secret
        self._suite_id = suite_id
        self._hash_name = hash_name
        self._hash_len = hash_len
        self._seq = 0
        self._max_seq = (1 << (8 * len(base_nonce))) - 1
        self._aead: _AeadCipher | None
        if aead_id == AeadId.EXPORT_ONLY:
            self._aead = None
        elif aead_id == AeadId.CHACHA20_POLY1305:
            self._aead = ChaCha20Poly1305(key)
        else:
            self._aead = AESGCM(key)

    @property
    def key(self) -> bytes:
        """The AEAD key (empty for the export-only AEAD)."""
        return self._key

    @property
    def base_nonce(self) -> bytes:
        """The base nonce (empty for the export-only AEAD)."""
        return self._base_nonce

    @property
    def exporter_secret(self) -> bytes:
        return self._exporter_secret

    @property
    def seq(self) -> int:
        """The sequence number of the next message to seal or open."""
        return self._seq

    def _nonce(self) -> bytes:
        """``ComputeNonce(seq)`` (RFC 9180 §5.2)."""
        nonce = int.from_bytes(self._base_nonce, "big") ^ self._seq
        return nonce.to_bytes(len(self._base_nonce), "big")

    def _cipher(self, role: int, what: str) -> _AeadCipher:
        if self._aead is None:
            raise UsageError(f"cannot {what} with the export-only AEAD")
        if self._role != role:
            raise UsageError(
                f"cannot {what} with a {'recipient' if role == 0 else 'sender'} context"
            )
        if self._seq >= self._max_seq:
            # RFC 9180 §5.2: MessageLimitReachedError.
            raise UsageError("HPKE message limit reached")
        return self._aead

    def seal(self, aad: bytes, pt: bytes) -> bytes:
        """``ContextS.Seal(aad, pt)`` (RFC 9180 §5.2)."""
        cipher = self._cipher(_ROLE_SENDER, "seal")
        ct = cipher.encrypt(self._nonce(), pt, aad)
        self._seq += 1
        return ct

    def open(self, aad: bytes, ct: bytes) -> bytes:
        """``ContextR.Open(aad, ct)``; :class:`DecryptionError` if it does not open.

        The sequence number only advances on success (RFC 9180 §5.2).
        """
        cipher = self._cipher(_ROLE_RECIPIENT, "open")
        try:
            pt = cipher.decrypt(self._nonce(), ct, aad)
        except InvalidTag:
            raise DecryptionError("HPKE ciphertext did not authenticate") from None
        self._seq += 1
        return pt

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """``Context.Export(exporter_context, L)`` (RFC 9180 §5.3)."""
        if length < 0:
            raise UsageError("export length must not be negative")
        return _labeled_expand(
            self._hash_name,
            self._hash_len,
            self._suite_id,
            self._exporter_secret,
            b"sec",
            exporter_context,
            length,
        )


# -- the HPKE instance (RFC 9180 §4.1, §5.1, §6.1, §7.1.3) ----------------------


class HPKE:
    """One HPKE cipher suite ``(kem_id, kdf_id, aead_id)`` (RFC 9180 §5.1)."""

    __slots__ = (
        "Nenc",
        "Nh",
        "Nk",
        "Nn",
        "Npk",
        "Nsecret",
        "Nsk",
        "_info_hash",
        "_kdf_hash",
        "_kem",
        "_kem_suite_id",
        "_native_suite",
        "_suite_id",
        "aead_id",
        "kdf_id",
        "kem_id",
    )

    def __init__(self, kem_id: int, kdf_id: int, aead_id: int) -> None:
        try:
            kem = _KEMS[kem_id]
            kdf_hash, nh = _KDFS[kdf_id]
            nk, nn = _AEADS[aead_id]
        except KeyError:
            raise UsageError(
                f"unsupported HPKE suite kem=0x{kem_id:04x} kdf=0x{kdf_id:04x} aead=0x{aead_id:04x}"
            ) from None
        self.kem_id = kem_id
        self.kdf_id = kdf_id
        self.aead_id = aead_id
        self._kem = kem
        self._kdf_hash = kdf_hash
        self.Nsk = kem.n_sk
        self.Npk = kem.n_pk
        self.Nenc = kem.n_enc
        self.Nsecret = kem.n_secret
        self.Nh = nh
        self.Nk = nk
        self.Nn = nn
        self._kem_suite_id = b"KEM" + kem_id.to_bytes(2, "big")
        self._suite_id = (
            b"HPKE"
            + kem_id.to_bytes(2, "big")
            + kdf_id.to_bytes(2, "big")
            + aead_id.to_bytes(2, "big")
        )
        #: The last long ``info`` and its ``info_hash``: a Welcome encrypts the
        #: GroupSecrets of every new member with the same, possibly large,
        #: ``info`` (RFC 9420 §12.4.3.1), so it is hashed once.
        self._info_hash: tuple[bytes, bytes] | None = None
        self._native_suite: _native.Suite | None = None
        if kem.native_kem is not None and aead_id in _NATIVE_AEAD:
            self._native_suite = _native.Suite(
                kem.native_kem, _NATIVE_KDF[kdf_id], _NATIVE_AEAD[aead_id]
            )

    def __repr__(self) -> str:
        return f"HPKE(kem=0x{self.kem_id:04x}, kdf=0x{self.kdf_id:04x}, aead=0x{self.aead_id:04x})"

    # -- the KEM (RFC 9180 §4.1, §7.1) -----------------------------------------

    def _kem_extract(self, salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return _labeled_extract(self._kem.hash_name, self._kem_suite_id, salt, label, ikm)

    def _kem_expand(self, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
        return _labeled_expand(
            self._kem.hash_name, self._kem.n_secret, self._kem_suite_id, prk, label, info, length
        )

    def _derive_private(self, ikm: bytes) -> tuple[bytes, _PrivateKey]:
        """``DeriveKeyPair(ikm)`` (RFC 9180 §7.1.3): the serialised and parsed private key."""
        kem = self._kem
        dkp_prk = self._kem_extract(b"", b"dkp_prk", ikm)
        if kem.curve is None:
            sk = self._kem_expand(dkp_prk, b"sk", b"", kem.n_sk)
            return sk, _private_key(kem, sk)
        for counter in range(256):
            candidate = bytearray(
                self._kem_expand(dkp_prk, b"candidate", bytes((counter,)), kem.n_sk)
            )
            candidate[0] &= kem.bitmask
            scalar = int.from_bytes(candidate, "big")
            if 0 < scalar < kem.order:
                sk = bytes(candidate)
                return sk, _private_key(kem, sk)
        # RFC 9180 §7.1.3: DeriveKeyPairError; the chance is below 2^-2000.
        raise UsageError("DeriveKeyPair found no valid scalar")

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """``DeriveKeyPair(ikm)`` (RFC 9180 §7.1.3): ``(private, public)`` as bytes."""
        if self._kem.pq is not None:
            return self._kem.pq.derive_key_pair(ikm)
        sk, key = self._derive_private(bytes(ikm))
        return sk, _serialize_public(key.public_key())

    def public_key(self, private: bytes) -> bytes:
        """The serialised public key of a serialised private key."""
        if self._kem.pq is not None:
            return self._kem.pq.public_key(private)
        return _serialize_public(_private_key(self._kem, bytes(private)).public_key())

    def is_valid_public_key(self, public: bytes) -> bool:
        """Whether ``public`` deserialises to a valid key (RFC 9180 §7.1.4).

        For X25519 and X448 every string of ``Npk`` bytes is a u-coordinate
        (RFC 7748 §5), so this is a length check and the small-order check,
        without parsing: a joiner checks thousands of keys. For the NIST
        curves the point is parsed (and cached: it is sealed to again).
        """
        public = bytes(public)
        if self._kem.pq is not None:
            return self._kem.pq.is_valid_public_key(public)
        if self._kem.curve is None:
            return len(public) == self.Npk and not _has_small_order(self.kem_id, public)
        return _recipient_key(self.kem_id, public) is not None

    def _extract_and_expand(self, dh: bytes, kem_context: bytes) -> bytes:
        eae_prk = self._kem_extract(b"", b"eae_prk", dh)
        return self._kem_expand(eae_prk, b"shared_secret", kem_context, self._kem.n_secret)

    def encap(self, pk: bytes, random: Callable[[int], bytes]) -> tuple[bytes, bytes]:
        """``Encap(pkR)`` (RFC 9180 §4.1): ``(shared_secret, enc)``.

        The ephemeral key is ``DeriveKeyPair(random(Nsk))``. An invalid
        recipient key raises :class:`UsageError`.
        """
        if self._kem.pq is not None:
            return self._kem.pq.encap(pk, random)
        pk = bytes(pk)
        pk_r = _recipient_key(self.kem_id, pk)
        if pk_r is None:
            raise UsageError("invalid HPKE recipient public key")
        ikm_e = random(self.Nsk)
        if len(ikm_e) != self.Nsk:
            raise UsageError("the random source returned the wrong number of bytes")
        _, sk_e = self._derive_private(ikm_e)
        enc = _serialize_public(sk_e.public_key())
        dh = _dh(sk_e, pk_r)
        if dh is None:
            raise UsageError("HPKE recipient public key gives an invalid shared secret")
        return self._extract_and_expand(dh, enc + pk), enc

    def decap(self, enc: bytes, sk: bytes) -> bytes:
        """``Decap(enc, skR)`` (RFC 9180 §4.1): the shared secret.

        A malformed ``enc`` or an invalid shared secret raises
        :class:`DecryptionError`; an invalid ``sk`` raises :class:`UsageError`.
        """
        if self._kem.pq is not None:
            return self._kem.pq.decap(enc, sk)
        pk_e = _parse_public_key(self.kem_id, bytes(enc))
        if pk_e is None:
            raise DecryptionError("invalid HPKE encapsulated key")
        sk_r = _private_key(self._kem, bytes(sk))
        dh = _dh(sk_r, pk_e)
        if dh is None:
            raise DecryptionError("HPKE encapsulated key gives an invalid shared secret")
        return self._extract_and_expand(dh, bytes(enc) + _serialize_public(sk_r.public_key()))

    # -- the key schedule (RFC 9180 §5.1) --------------------------------------

    def _key_schedule_context(self, mode: int, info: bytes, psk_id: bytes) -> bytes:
        """``key_schedule_context`` of ``KeySchedule`` (RFC 9180 §5.1)."""
        h, sid = self._kdf_hash, self._suite_id
        psk_id_hash = _labeled_extract(h, sid, b"", b"psk_id_hash", psk_id)
        cached = self._info_hash
        if cached is not None and cached[0] == info:
            info_hash = cached[1]
        else:
            info_hash = _labeled_extract(h, sid, b"", b"info_hash", info)
            if len(info) >= _INFO_HASH_CACHE_MIN:
                self._info_hash = (bytes(info), info_hash)
        return bytes((mode,)) + psk_id_hash + info_hash

    def _key_schedule_secret(self, shared_secret: bytes, psk: bytes) -> bytes:
        """``secret`` of ``KeySchedule`` (RFC 9180 §5.1)."""
        return _labeled_extract(self._kdf_hash, self._suite_id, shared_secret, b"secret", psk)

    def key_schedule(
        self,
        role: int,
        mode: int,
        shared_secret: bytes,
        info: bytes,
        psk: bytes = b"",
        psk_id: bytes = b"",
    ) -> Context:
        """``KeySchedule<ROLE>(mode, shared_secret, info, psk, psk_id)``.

        ``role`` is 0 for the sender and 1 for the recipient.
        """
        # VerifyPSKInputs (RFC 9180 §5.1).
        if bool(psk) != bool(psk_id):
            raise UsageError("inconsistent PSK inputs")
        if mode == Mode.BASE and psk:
            raise UsageError("PSK input provided when not needed")
        if mode == Mode.PSK and not psk:
            raise UsageError("missing required PSK input")
        if mode not in (Mode.BASE, Mode.PSK):
            raise UsageError(f"unsupported HPKE mode {mode}")

        h, nh, sid = self._kdf_hash, self.Nh, self._suite_id
        ks_context = self._key_schedule_context(mode, info, psk_id)
        secret = self._key_schedule_secret(shared_secret, psk)
        key = base_nonce = b""
        if self.aead_id != AeadId.EXPORT_ONLY:
            key = _labeled_expand(h, nh, sid, secret, b"key", ks_context, self.Nk)
            base_nonce = _labeled_expand(h, nh, sid, secret, b"base_nonce", ks_context, self.Nn)
        exporter_secret = _labeled_expand(h, nh, sid, secret, b"exp", ks_context, nh)
        return Context(
            role=role,
            aead_id=self.aead_id,
            key=key,
            base_nonce=base_nonce,
            exporter_secret=exporter_secret,
            suite_id=sid,
            hash_name=h,
            hash_len=nh,
        )

    # -- setup and single-shot APIs (RFC 9180 §5.1.1, §5.1.2, §6.1) ------------

    def setup_base_s(
        self, pk: bytes, info: bytes, random: Callable[[int], bytes]
    ) -> tuple[bytes, Context]:
        """``SetupBaseS(pkR, info)``: ``(enc, sender context)``."""
        shared_secret, enc = self.encap(pk, random)
        return enc, self.key_schedule(_ROLE_SENDER, Mode.BASE, shared_secret, info)

    def setup_base_r(self, enc: bytes, sk: bytes, info: bytes) -> Context:
        """``SetupBaseR(enc, skR, info)``: the recipient context."""
        shared_secret = self.decap(enc, sk)
        return self.key_schedule(_ROLE_RECIPIENT, Mode.BASE, shared_secret, info)

    def setup_psk_s(
        self,
        pk: bytes,
        info: bytes,
        psk: bytes,
        psk_id: bytes,
        random: Callable[[int], bytes],
    ) -> tuple[bytes, Context]:
        """``SetupPSKS(pkR, info, psk, psk_id)``: ``(enc, sender context)``."""
        shared_secret, enc = self.encap(pk, random)
        return enc, self.key_schedule(_ROLE_SENDER, Mode.PSK, shared_secret, info, psk, psk_id)

    def setup_psk_r(self, enc: bytes, sk: bytes, info: bytes, psk: bytes, psk_id: bytes) -> Context:
        """``SetupPSKR(enc, skR, info, psk, psk_id)``: the recipient context."""
        shared_secret = self.decap(enc, sk)
        return self.key_schedule(_ROLE_RECIPIENT, Mode.PSK, shared_secret, info, psk, psk_id)

    def seal_base(
        self,
        pk: bytes,
        info: bytes,
        aad: bytes,
        pt: bytes,
        random: Callable[[int], bytes],
    ) -> tuple[bytes, bytes]:
        """``SealBase(pkR, info, aad, pt)`` (RFC 9180 §6.1): ``(enc, ct)``.

        The ephemeral key is ``DeriveKeyPair(random(Nsk))``, so a fixed
        ``random`` reproduces the RFC 9180 test vectors (their ``ikmE``).
        """
        enc, ctx = self.setup_base_s(pk, info, random)
        return enc, ctx.seal(aad, pt)

    def open_base(self, enc: bytes, sk: bytes, info: bytes, aad: bytes, ct: bytes) -> bytes:
        """``OpenBase(enc, skR, info, aad, ct)`` (RFC 9180 §6.1).

        Raises :class:`DecryptionError` if ``enc`` or ``ct`` is bad in any way,
        :class:`UsageError` if ``sk`` is not a valid private key.
        """
        enc, sk, ct = bytes(enc), bytes(sk), bytes(ct)
        if self._native_suite is not None and not aad:
            # Same result as the code below, only faster (RFC 9180 §6.1).
            # Only the SerializePublicKey form is accepted (RFC 9180 §7.1.1);
            # an invalid point, or one that gives an all-zero secret, makes
            # the native code fail as a bad tag does.
            if len(enc) != self.Nenc or (self._kem.curve is not None and enc[0] != 0x04):
                raise DecryptionError("invalid HPKE encapsulated key")
            pq = self._kem.pq
            key = pq.native_private_key(sk) if pq is not None else _private_key(self._kem, sk)
            assert not isinstance(key, x448.X448PrivateKey)  # no native X448
            try:
                return self._native_suite.decrypt(enc + ct, key, bytes(info))
            except (InvalidTag, ValueError):
                raise DecryptionError("HPKE ciphertext did not open") from None
        return self.setup_base_r(enc, sk, info).open(aad, ct)
