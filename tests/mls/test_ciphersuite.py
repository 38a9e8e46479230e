"""messenger.mls.ciphersuite: keys, signatures, AEAD and HPKE failure modes.

RFC 9420 §5.1 (suites), §5.1.2 (signing), §5.1.3 (public key encryption);
the happy paths against the mlswg vectors are in ``test_crypto_basics.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from messenger.mls import ciphersuite
from messenger.mls.ciphersuite import (
    CIPHER_SUITES,
    PQ_CIPHER_SUITES,
    CipherSuite,
    HPKECiphertext,
    SignatureScheme,
    get_cipher_suite,
)
from messenger.mls.errors import DecryptionError, MLSError, UsageError
from tests.mls.vectors import assert_eq

SUITES = [pytest.param(cs, id=f"suite-{n}") for n, cs in sorted(CIPHER_SUITES.items())]


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


#: Schemes whose keys are byte strings of a fixed length, not SEC1 points.
_RAW_KEY_SCHEMES = (SignatureScheme.ED25519, SignatureScheme.ED448, SignatureScheme.MLDSA65)


def test_registry() -> None:
    assert sorted(CIPHER_SUITES) == [1, 2, 3, 4, 5, 6, 7, 0xF001, 0xF006, 0xF00A]
    assert PQ_CIPHER_SUITES == (0xF001, 0xF006, 0xF00A)
    assert get_cipher_suite(0xF001).name == "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519"
    assert get_cipher_suite(1).name == "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
    with pytest.raises(UsageError):
        get_cipher_suite(0x0A0A)
    with pytest.raises(UsageError):
        get_cipher_suite(0)


@pytest.mark.parametrize("cs", SUITES)
def test_sizes_match_hpke(cs: CipherSuite) -> None:
    assert_eq("hash_len vs HPKE Nh", cs.hash_len, cs.hpke.Nh)
    assert_eq("key_len vs HPKE Nk", cs.key_len, cs.hpke.Nk)
    assert_eq("nonce_len vs HPKE Nn", cs.nonce_len, cs.hpke.Nn)
    assert_eq("len(hash(b''))", len(cs.hash(b"")), cs.hash_len)


# -- signatures (RFC 9420 §5.1.2) ---------------------------------------------


@pytest.mark.parametrize("cs", SUITES)
def test_signature_keys_sign_and_verify(cs: CipherSuite) -> None:
    for seed in range(3):
        priv, pub = cs.generate_signature_key_pair(seeded(seed))
        assert_eq("signature_public_key(priv)", cs.signature_public_key(priv), pub)
        assert cs.is_valid_signature_public_key(pub)
        sig = cs.sign_with_label(priv, b"Label", b"content")
        assert_eq(
            "verify own signature", cs.verify_with_label(pub, b"Label", b"content", sig), True
        )
        assert_eq(
            "verify, other content", cs.verify_with_label(pub, b"Label", b"other", sig), False
        )
        assert_eq(
            "verify, other label", cs.verify_with_label(pub, b"Other", b"content", sig), False
        )
        _, other_pub = cs.generate_signature_key_pair(seeded(100 + seed))
        assert_eq(
            "verify, other key", cs.verify_with_label(other_pub, b"Label", b"content", sig), False
        )
    # Deterministic given the random source.
    assert_eq(
        "keys from the same seed",
        cs.generate_signature_key_pair(seeded(9)),
        cs.generate_signature_key_pair(seeded(9)),
    )


@pytest.mark.parametrize("cs", SUITES)
def test_verify_rejects_tampered_signatures(cs: CipherSuite) -> None:
    priv, pub = cs.generate_signature_key_pair(seeded(1))
    sig = cs.sign(priv, b"message")
    assert cs.verify(pub, b"message", sig)
    for i in range(len(sig)):
        tampered = sig[:i] + bytes((sig[i] ^ 0x01,)) + sig[i + 1 :]
        assert_eq(
            f"verify with signature byte {i} flipped", cs.verify(pub, b"message", tampered), False
        )
    for what, bad in {
        "empty signature": b"",
        "truncated signature": sig[:-1],
        "extended signature": sig + b"\x00",
        "zero signature": bytes(len(sig)),
        "garbage signature": b"\x30\x03\x02\x01\x00",
    }.items():
        assert_eq(f"verify with {what}", cs.verify(pub, b"message", bad), False)


@pytest.mark.parametrize("cs", SUITES)
def test_verify_rejects_garbage_keys(cs: CipherSuite) -> None:
    priv, pub = cs.generate_signature_key_pair(seeded(2))
    sig = cs.sign(priv, b"message")
    garbage = {
        "empty key": b"",
        "truncated key": pub[:-1],
        "extended key": pub + b"\x00",
        "zero key": bytes(len(pub)),
        "one byte": b"\x04",
        "random key": random.Random(3).randbytes(len(pub)),
    }
    if cs.signature_scheme not in _RAW_KEY_SCHEMES:
        half = (len(pub) - 1) // 2
        garbage["compressed point"] = bytes((2 + (pub[-1] & 1),)) + pub[1 : 1 + half]
        garbage["off-curve point"] = pub[:-1] + bytes((pub[-1] ^ 1,))
    for what, key in garbage.items():
        assert_eq(f"verify with {what}", cs.verify(key, b"message", sig), False)
        # An all-zero EdDSA key encodes a (small-order) point, so it parses.
        # So does any ML-DSA key of the right length (FIPS 204 has no key check).
        raw = cs.signature_scheme in _RAW_KEY_SCHEMES
        if what != "random key" and not (raw and what == "zero key"):
            assert_eq(
                f"is_valid_signature_public_key({what})",
                cs.is_valid_signature_public_key(key),
                False,
            )


@pytest.mark.parametrize("cs", SUITES)
def test_bad_signature_private_key(cs: CipherSuite) -> None:
    bad = [b"", b"\x01\x02"] if cs.signature_scheme in _RAW_KEY_SCHEMES else [bytes(32)]
    for priv in bad:
        with pytest.raises(UsageError):
            cs.sign(priv, b"message")


@pytest.mark.parametrize(
    "scheme",
    [
        SignatureScheme.ECDSA_SECP256R1_SHA256,
        SignatureScheme.ECDSA_SECP384R1_SHA384,
        SignatureScheme.ECDSA_SECP521R1_SHA512,
    ],
)
def test_curve_orders(scheme: int) -> None:
    """The group orders used for key generation are the curves' own."""
    curve, _, size = ciphersuite._ECDSA[scheme]
    order = ciphersuite._CURVE_ORDER[scheme]
    assert_eq("order bit length", order.bit_length(), curve.key_size)
    assert_eq("scalar size", size, (curve.key_size + 7) // 8)
    ec.derive_private_key(order - 1, curve)
    with pytest.raises(ValueError):
        ec.derive_private_key(order, curve)


# -- AEAD (RFC 9420 §5.1) ------------------------------------------------------


@pytest.mark.parametrize("cs", SUITES)
def test_aead(cs: CipherSuite) -> None:
    key, nonce = bytes(range(cs.key_len)), bytes(range(cs.nonce_len))
    ct = cs.aead_seal(key, nonce, b"aad", b"plaintext")
    assert_eq("len(ct)", len(ct), len(b"plaintext") + 16)
    assert_eq("aead_open", cs.aead_open(key, nonce, b"aad", ct), b"plaintext")
    bad = {
        "aad": (key, nonce, b"aaD", ct),
        "nonce": (key, bytes(cs.nonce_len), b"aad", ct),
        "key": (bytes(cs.key_len), nonce, b"aad", ct),
        "empty ct": (key, nonce, b"aad", b""),
        "short ct": (key, nonce, b"aad", ct[:15]),
        "long ct": (key, nonce, b"aad", ct + b"\x00"),
    }
    for i in range(len(ct)):
        bad[f"ct byte {i}"] = (key, nonce, b"aad", ct[:i] + bytes((ct[i] ^ 0x10,)) + ct[i + 1 :])
    for what, args in bad.items():
        with pytest.raises(DecryptionError):
            cs.aead_open(*args)
            pytest.fail(f"aead_open accepted a tampered {what}")


# -- public key encryption (RFC 9420 §5.1.3) -----------------------------------


@pytest.mark.parametrize("cs", SUITES)
def test_hpke_keys(cs: CipherSuite) -> None:
    priv, pub = cs.generate_hpke_key_pair(seeded(4))
    assert_eq("hpke_public_key(priv)", cs.hpke_public_key(priv), pub)
    assert_eq(
        "derive_hpke_key_pair(ikm)",
        cs.derive_hpke_key_pair(b"ikm"),
        cs.derive_hpke_key_pair(b"ikm"),
    )
    assert cs.derive_hpke_key_pair(b"ikm") != cs.derive_hpke_key_pair(b"ikm2")


@pytest.mark.parametrize("cs", SUITES)
def test_decrypt_with_label_garbage(cs: CipherSuite) -> None:
    priv, pub = cs.generate_hpke_key_pair(seeded(5))
    ct = cs.encrypt_with_label(pub, b"Label", b"ctx", b"secret", seeded(6))
    assert_eq(
        "round trip",
        cs.decrypt_with_label(priv, b"Label", b"ctx", ct.kem_output, ct.ciphertext),
        b"secret",
    )
    assert_eq("HPKECiphertext encoding", HPKECiphertext.from_bytes(ct.to_bytes()), ct)
    n = cs.hpke.Nenc
    garbage = {
        "empty kem_output": b"",
        "short kem_output": ct.kem_output[:-1],
        "long kem_output": ct.kem_output + b"\x00",
        "zero kem_output": bytes(n),
        "random kem_output": random.Random(7).randbytes(n),
        "flipped kem_output": ct.kem_output[:-1] + bytes((ct.kem_output[-1] ^ 2,)),
    }
    for what, kem_output in garbage.items():
        with pytest.raises(DecryptionError):
            cs.decrypt_with_label(priv, b"Label", b"ctx", kem_output, ct.ciphertext)
            pytest.fail(f"decrypt_with_label accepted a {what}")
    with pytest.raises(DecryptionError):
        cs.decrypt_with_label(priv, b"Label", b"ctx", ct.kem_output, ct.ciphertext[:-1])


@pytest.mark.parametrize("cs", SUITES)
def test_encrypt_with_label_to_a_bad_key(cs: CipherSuite) -> None:
    """An invalid recipient key is the caller's mistake: UsageError."""
    for key in (b"", b"\x04" * 3, bytes(cs.hpke.Npk + 1)):
        with pytest.raises(UsageError):
            cs.encrypt_with_label(key, b"Label", b"ctx", b"secret", seeded(1))


# -- fuzzing: only typed errors escape ------------------------------------------

_suite_ids = st.sampled_from(sorted(CIPHER_SUITES))


@given(
    suite_id=_suite_ids,
    enc=st.binary(max_size=140),
    ct=st.binary(max_size=64),
    info=st.binary(max_size=16),
    aad=st.binary(max_size=8),
)
def test_open_base_on_random_bytes(
    suite_id: int, enc: bytes, ct: bytes, info: bytes, aad: bytes
) -> None:
    cs = get_cipher_suite(suite_id)
    priv, _ = cs.derive_hpke_key_pair(b"fuzz")
    with pytest.raises(MLSError):
        cs.hpke.open_base(enc, priv, info, aad, ct)


@given(suite_id=_suite_ids, data=st.data())
def test_open_base_on_right_sized_random_enc(suite_id: int, data: st.DataObject) -> None:
    cs = get_cipher_suite(suite_id)
    priv, _ = cs.derive_hpke_key_pair(b"fuzz")
    enc = data.draw(st.binary(min_size=cs.hpke.Nenc, max_size=cs.hpke.Nenc), label="enc")
    if cs.hpke.Npk in (65, 97, 133):
        enc = data.draw(st.sampled_from([b"\x04", enc[:1]]), label="prefix") + enc[1:]
    ct = data.draw(st.binary(max_size=64), label="ct")
    with pytest.raises(DecryptionError):
        cs.hpke.open_base(enc, priv, b"", b"", ct)


@given(
    suite_id=_suite_ids,
    priv=st.binary(max_size=70),
    kem_output=st.binary(max_size=140),
    ct=st.binary(max_size=64),
    label=st.binary(max_size=8),
)
def test_decrypt_with_label_on_random_bytes(
    suite_id: int, priv: bytes, kem_output: bytes, ct: bytes, label: bytes
) -> None:
    cs = get_cipher_suite(suite_id)
    with pytest.raises(MLSError):
        cs.decrypt_with_label(priv, label, b"", kem_output, ct)


@given(suite_id=_suite_ids, pub=st.binary(max_size=140), sig=st.binary(max_size=140))
def test_verify_on_random_bytes(suite_id: int, pub: bytes, sig: bytes) -> None:
    assert get_cipher_suite(suite_id).verify(pub, b"message", sig) is False
