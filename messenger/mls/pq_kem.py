"""Post-quantum HPKE KEMs (draft-ietf-hpke-pq), sans-I/O.

Two KEMs, the ones the MLS post-quantum suites need
(draft-ietf-mls-pq-ciphersuites-06, table 2):

* ``0x0041`` ML-KEM-768 (draft-ietf-hpke-pq §3, FIPS 203). The private key is
  the 64-byte seed ``d || z``; ``DeriveKeyPair(ikm)`` is
  ``SHAKE256.LabeledDerive(ikm, "DeriveKeyPair", "", 64)``; ``Encap`` and
  ``Decap`` are ``ML-KEM.Encaps`` / ``ML-KEM.Decaps``.
* ``0x647a`` MLKEM768-X25519 (draft-ietf-hpke-pq §4, with the QSF combiner of
  draft-irtf-cfrg-concrete-hybrid-kems, the same construction as X-Wing).
  The private key is a 32-byte seed ``s``; ``SHAKE256(s, 96)`` gives the
  ML-KEM seed (64 bytes) then the X25519 scalar (32 bytes). Keys and
  ciphertexts are the ML-KEM part followed by the X25519 part
  (``Npk = 1184 + 32``, ``Nenc = 1088 + 32``), and the shared secret is
  ``SHA3-256(ss_MLKEM || ss_X25519 || ct_X25519 || pk_X25519 || "\\.//^\\")``.

``SHAKE256.LabeledDerive`` is the single-stage labelled derivation of
draft-ietf-hpke-hpke §4: ``SHAKE256(ikm || "HPKE-v1" || suite_id ||
uint16(len(label)) || label || uint16(L) || context, L)`` with
``suite_id = "KEM" || uint16(kem_id)``.

Randomness: ``cryptography`` draws ML-KEM's encapsulation randomness ``m``
from OpenSSL and offers no derandomised ``Encaps``, so the ML-KEM part of
``enc`` cannot be pinned by a test. The X25519 ephemeral scalar of the hybrid
is taken from the caller's ``random`` (the last 32 of the 64 bytes the draft's
vectors call ``ikmE``), as the DHKEMs do.

Validation: an encapsulation key that fails the FIPS 203 modulus check, or
whose X25519 part is a point of small order, is not a valid public key. An
X25519 part of ``enc`` that gives an all-zero secret makes ``Decap`` fail
(``cryptography`` refuses that output; X-Wing itself would not check).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from cryptography.hazmat.primitives import hpke as _native
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from .errors import DecryptionError, UsageError

__all__ = [
    "MLKEM768",
    "MLKEM768_X25519",
    "PqKem",
    "labeled_derive_shake256",
]

_VERSION_LABEL: Final = b"HPKE-v1"
#: draft-irtf-cfrg-concrete-hybrid-kems: the QSF label of MLKEM768-X25519 (X-Wing's).
_XWING_LABEL: Final = b"\\.//^\\"
_MLKEM768_NPK: Final = 1184
_MLKEM768_NENC: Final = 1088
_X25519_LEN: Final = 32
#: RFC 7748 §5: the points of small order on Curve25519 and its twist, as
#: reduced u-coordinates (the same set as in .hpke).
_P25519: Final = (1 << 255) - 19
_SMALL_ORDER_U: Final = frozenset(
    {
        0,
        1,
        _P25519 - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    }
)

RandomSource = Callable[[int], bytes]
NativePrivateKey = mlkem.MLKEM768PrivateKey | _native.MLKEM768X25519PrivateKey


def labeled_derive_shake256(
    suite_id: bytes, ikm: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """``SHAKE256.LabeledDerive(ikm, label, context, L)`` (draft-ietf-hpke-hpke §4)."""
    labeled_ikm = (
        ikm
        + _VERSION_LABEL
        + suite_id
        + len(label).to_bytes(2, "big")
        + label
        + length.to_bytes(2, "big")
        + context
    )
    return hashlib.shake_256(labeled_ikm).digest(length)


def _small_order_x25519(public: bytes) -> bool:
    u = (int.from_bytes(public, "little") & ((1 << 255) - 1)) % _P25519
    return u in _SMALL_ORDER_U


@lru_cache(maxsize=1024)
def _mlkem_public(public: bytes) -> mlkem.MLKEM768PublicKey | None:
    """An ML-KEM-768 encapsulation key, or ``None`` if it fails the FIPS 203 checks."""
    if len(public) != _MLKEM768_NPK:
        return None
    try:
        return mlkem.MLKEM768PublicKey.from_public_bytes(public)
    except ValueError:
        return None


@lru_cache(maxsize=256)
def _mlkem_private(seed: bytes) -> mlkem.MLKEM768PrivateKey:
    try:
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    except ValueError as exc:
        raise UsageError(f"invalid ML-KEM-768 private key: {exc}") from None


@lru_cache(maxsize=256)
def _hybrid_private(
    seed: bytes,
) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey, bytes]:
    """The ML-KEM key, the X25519 key and the X25519 public key of a hybrid seed."""
    expanded = hashlib.shake_256(seed).digest(64 + _X25519_LEN)
    pq = _mlkem_private(expanded[:64])
    t = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
    return pq, t, t.public_key().public_bytes_raw()


class PqKem:
    """One KEM of draft-ietf-hpke-pq, with the HPKE KEM interface on bytes."""

    __slots__ = ("hybrid", "kem_id", "n_enc", "n_pk", "n_secret", "n_sk", "native_kem", "suite_id")

    def __init__(self, kem_id: int, *, hybrid: bool, native_kem: _native.KEM) -> None:
        self.kem_id = kem_id
        self.hybrid = hybrid
        self.native_kem = native_kem
        self.suite_id = b"KEM" + kem_id.to_bytes(2, "big")
        self.n_secret = 32
        extra = _X25519_LEN if hybrid else 0
        self.n_enc = _MLKEM768_NENC + extra
        self.n_pk = _MLKEM768_NPK + extra
        self.n_sk = 32 if hybrid else 64

    def _check_private(self, private: bytes) -> None:
        if len(private) != self.n_sk:
            raise UsageError(f"HPKE private key must be {self.n_sk} bytes, got {len(private)}")

    def derive_key_pair(self, ikm: bytes) -> tuple[bytes, bytes]:
        """``DeriveKeyPair(ikm)`` (draft-ietf-hpke-pq §3, §4): ``(private, public)``."""
        sk = labeled_derive_shake256(self.suite_id, bytes(ikm), b"DeriveKeyPair", b"", self.n_sk)
        return sk, self.public_key(sk)

    def public_key(self, private: bytes) -> bytes:
        private = bytes(private)
        self._check_private(private)
        if self.hybrid:
            pq, _, t_pub = _hybrid_private(private)
            return pq.public_key().public_bytes_raw() + t_pub
        return _mlkem_private(private).public_key().public_bytes_raw()

    def is_valid_public_key(self, public: bytes) -> bool:
        public = bytes(public)
        if len(public) != self.n_pk:
            return False
        if self.hybrid and _small_order_x25519(public[_MLKEM768_NPK:]):
            return False
        return _mlkem_public(public[:_MLKEM768_NPK]) is not None

    def encap(self, public: bytes, random: RandomSource) -> tuple[bytes, bytes]:
        """``Encap(pkR)``: ``(shared_secret, enc)``; :class:`UsageError` for a bad key."""
        public = bytes(public)
        if not self.is_valid_public_key(public):
            raise UsageError("invalid HPKE recipient public key")
        pq_pub = _mlkem_public(public[:_MLKEM768_NPK])
        assert pq_pub is not None  # checked just above
        ss_pq, ct_pq = pq_pub.encapsulate()
        if not self.hybrid:
            return ss_pq, ct_pq
        eph = random(_X25519_LEN)
        if len(eph) != _X25519_LEN:
            raise UsageError("the random source returned the wrong number of bytes")
        t_pub = public[_MLKEM768_NPK:]
        sk_e = x25519.X25519PrivateKey.from_private_bytes(eph)
        ct_t = sk_e.public_key().public_bytes_raw()
        try:
            ss_t = sk_e.exchange(x25519.X25519PublicKey.from_public_bytes(t_pub))
        except ValueError:
            raise UsageError("HPKE recipient public key gives an invalid shared secret") from None
        return self._combine(ss_pq, ss_t, ct_t, t_pub), ct_pq + ct_t

    @staticmethod
    def _combine(ss_pq: bytes, ss_t: bytes, ct_t: bytes, pk_t: bytes) -> bytes:
        """The QSF combiner of MLKEM768-X25519 (draft-irtf-cfrg-concrete-hybrid-kems)."""
        return hashlib.sha3_256(ss_pq + ss_t + ct_t + pk_t + _XWING_LABEL).digest()

    def decap(self, enc: bytes, private: bytes) -> bytes:
        """``Decap(enc, skR)``: :class:`DecryptionError` for a malformed ``enc``."""
        enc, private = bytes(enc), bytes(private)
        self._check_private(private)
        if len(enc) != self.n_enc:
            raise DecryptionError("invalid HPKE encapsulated key")
        if not self.hybrid:
            try:
                return _mlkem_private(private).decapsulate(enc)
            except ValueError:
                raise DecryptionError("invalid HPKE encapsulated key") from None
        pq, t, t_pub = _hybrid_private(private)
        ct_pq, ct_t = enc[:_MLKEM768_NENC], enc[_MLKEM768_NENC:]
        try:
            ss_pq = pq.decapsulate(ct_pq)
            ss_t = t.exchange(x25519.X25519PublicKey.from_public_bytes(ct_t))
        except ValueError:
            raise DecryptionError("HPKE encapsulated key gives an invalid shared secret") from None
        return self._combine(ss_pq, ss_t, ct_t, t_pub)

    def native_private_key(self, private: bytes) -> NativePrivateKey:
        """The key object ``cryptography``'s native HPKE takes for ``private``."""
        private = bytes(private)
        self._check_private(private)
        if not self.hybrid:
            return _mlkem_private(private)
        pq, t, _ = _hybrid_private(private)
        return _native.MLKEM768X25519PrivateKey(pq, t)


MLKEM768: Final = PqKem(0x0041, hybrid=False, native_kem=_native.KEM.MLKEM768)
MLKEM768_X25519: Final = PqKem(0x647A, hybrid=True, native_kem=_native.KEM.MLKEM768_X25519)
