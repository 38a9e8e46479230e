"""Post-quantum HPKE KEMs (draft-ietf-hpke-pq) in messenger.mls.hpke / .pq_kem.

``vectors/hpke-pq/test-vectors.json`` holds the draft's vectors for the two
KEMs the MLS post-quantum suites use: ML-KEM-768 (0x0041) and MLKEM768-X25519
(0x647a). Every intermediate value they give is checked by name. One cannot
be reproduced: ``cryptography`` draws ML-KEM's encapsulation randomness itself
(no derandomised ``Encaps``), so ``enc`` from ``ikmE`` is checked only for the
X25519 part of the hybrid (the last 32 bytes of ``ikmE`` are its ephemeral
scalar); the ML-KEM part is checked through ``Decap`` giving the vector's
``shared_secret`` and everything after it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke as native
from cryptography.hazmat.primitives.asymmetric import x25519

from messenger.mls import pq_kem
from messenger.mls.errors import DecryptionError, UsageError
from messenger.mls.hpke import HPKE, AeadId, KdfId, KemId
from tests.mls.vectors import assert_eq, h

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "hpke-pq" / "test-vectors.json").read_text()
)
_NAMES = {0x41: "mlkem768", 0x647A: "mlkem768x25519"}
PQ_SUITES = [
    (KemId.ML_KEM_768, KdfId.HKDF_SHA256, AeadId.AES_128_GCM),
    (KemId.ML_KEM_768, KdfId.HKDF_SHA384, AeadId.AES_256_GCM),
    (KemId.MLKEM768_X25519, KdfId.HKDF_SHA256, AeadId.AES_128_GCM),
    (KemId.MLKEM768_X25519, KdfId.HKDF_SHA256, AeadId.CHACHA20_POLY1305),
]


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def _id(v: dict[str, Any]) -> str:
    return f"{_NAMES[int(v['kem_id'])]}-kdf{v['kdf_id']}-aead{v['aead_id']}"


def test_vector_file_covers_the_mls_kems() -> None:
    got = {(int(v["mode"]), int(v["kem_id"]), int(v["kdf_id"]), int(v["aead_id"])) for v in VECTORS}
    assert got == {(0, 0x41, 1, 1), (0, 0x647A, 1, 3)}


@pytest.mark.parametrize("v", VECTORS, ids=_id)
def test_hpke_pq_vector(v: dict[str, Any]) -> None:
    kem_id = int(v["kem_id"])
    suite = HPKE(kem_id, int(v["kdf_id"]), int(v["aead_id"]))
    info = h(v["info"])
    assert_eq("suite_id", suite._suite_id, h(v["suite_id"]))

    # DeriveKeyPair: SHAKE256.LabeledDerive, then the KEM's own key generation.
    sk_r, pk_r = suite.derive_key_pair(h(v["ikmR"]))
    assert_eq("skRm", sk_r, h(v["skRm"]))
    assert_eq("pkRm", pk_r, h(v["pkRm"]))
    assert_eq("public_key(skRm)", suite.public_key(h(v["skRm"])), h(v["pkRm"]))
    assert suite.is_valid_public_key(pk_r)
    assert_eq("len(enc)", len(h(v["enc"])), suite.Nenc)

    # Decap of the vector's enc.
    assert_eq("shared_secret (Decap)", suite.decap(h(v["enc"]), sk_r), h(v["shared_secret"]))

    # Encap: the X25519 part of enc is pinned by ikmE; the ML-KEM part is not.
    ikm_e = h(v["ikmE"])
    shared_secret, enc = suite.encap(pk_r, lambda n: ikm_e[-n:])
    assert_eq("len(enc) (Encap)", len(enc), suite.Nenc)
    assert_eq("shared_secret (Decap of own Encap)", suite.decap(enc, sk_r), shared_secret)
    if kem_id == KemId.MLKEM768_X25519:
        eph = x25519.X25519PrivateKey.from_private_bytes(ikm_e[32:])
        assert_eq("enc X25519 part (ikmE[32:])", enc[1088:], eph.public_key().public_bytes_raw())
        assert_eq("enc X25519 part (vector)", h(v["enc"])[1088:], enc[1088:])

    # KeySchedule from the vector's shared secret.
    receiver = suite.setup_base_r(h(v["enc"]), sk_r, info)
    assert_eq("key", receiver.key, h(v["key"]))
    assert_eq("base_nonce", receiver.base_nonce, h(v["base_nonce"]))
    assert_eq("exporter_secret", receiver.exporter_secret, h(v["exporter_secret"]))

    # The encryptions are sequence numbers 0, 1, 2, ...
    for seq, e in enumerate(v["encryptions"]):
        assert_eq(f"nonce (sequence number {seq})", receiver._nonce(), h(e["nonce"]))
        assert_eq(f"pt (sequence number {seq})", receiver.open(h(e["aad"]), h(e["ct"])), h(e["pt"]))
    for e in v["exports"]:
        assert_eq(
            f"exported_value (exporter_context={e['exporter_context']})",
            receiver.export(h(e["exporter_context"]), e["L"]),
            h(e["exported_value"]),
        )

    # Single-shot OpenBase of the first encryption (own path, aad present).
    first = v["encryptions"][0]
    assert_eq(
        "pt (OpenBase)",
        suite.open_base(h(v["enc"]), sk_r, info, h(first["aad"]), h(first["ct"])),
        h(first["pt"]),
    )


def test_labeled_derive_matches_the_vectors() -> None:
    for v in VECTORS:
        kem_id = int(v["kem_id"])
        n_sk = len(h(v["skRm"]))
        got = pq_kem.labeled_derive_shake256(
            b"KEM" + kem_id.to_bytes(2, "big"), h(v["ikmR"]), b"DeriveKeyPair", b"", n_sk
        )
        assert_eq(f"SHAKE256.LabeledDerive ({_id(v)})", got, h(v["skRm"]))


@pytest.mark.parametrize("ids", PQ_SUITES, ids=lambda s: f"{_NAMES[s[0]]}-{s[1]}-{s[2]}")
def test_round_trip_export_and_native_interop(ids: tuple[int, int, int]) -> None:
    suite = HPKE(*ids)
    sk, pk = suite.derive_key_pair(b"recipient ikm" + bytes(32))
    assert (len(sk), len(pk)) == (suite.Nsk, suite.Npk)
    enc, sender = suite.setup_base_s(pk, b"info", seeded(7))
    receiver = suite.setup_base_r(enc, sk, b"info")
    assert_eq("export", sender.export(b"ctx", 42), receiver.export(b"ctx", 42))
    ct = sender.seal(b"aad", b"hello")
    assert_eq("pt", receiver.open(b"aad", ct), b"hello")
    for aad in (b"", b"aad"):  # empty aad opens on the native path
        enc1, ct1 = suite.seal_base(pk, b"info", aad, b"single shot", seeded(3))
        assert_eq(
            f"open_base (aad={aad!r})", suite.open_base(enc1, sk, b"info", aad, ct1), b"single shot"
        )
    # cryptography's native HPKE opens ours and we open its output.
    kem = {KemId.ML_KEM_768: native.KEM.MLKEM768, KemId.MLKEM768_X25519: native.KEM.MLKEM768_X25519}
    kdf = {1: native.KDF.HKDF_SHA256, 2: native.KDF.HKDF_SHA384}
    aead = {
        1: native.AEAD.AES_128_GCM,
        2: native.AEAD.AES_256_GCM,
        3: native.AEAD.CHACHA20_POLY1305,
    }
    theirs = native.Suite(kem[ids[0]], kdf[ids[1]], aead[ids[2]])
    pq = pq_kem.MLKEM768 if ids[0] == KemId.ML_KEM_768 else pq_kem.MLKEM768_X25519
    key = pq.native_private_key(sk)
    enc2, ct2 = suite.seal_base(pk, b"info", b"", b"to native", seeded(1))
    assert_eq("pt (native opens ours)", theirs.decrypt(enc2 + ct2, key, b"info"), b"to native")
    blob = theirs.encrypt(b"from native", key.public_key(), b"info")
    enc3, ct3 = blob[: suite.Nenc], blob[suite.Nenc :]
    assert_eq(
        "pt (own path opens native)",
        suite.setup_base_r(enc3, sk, b"info").open(b"", ct3),
        b"from native",
    )


@pytest.mark.parametrize("kem_id", [KemId.ML_KEM_768, KemId.MLKEM768_X25519], ids=_NAMES.get)
def test_tampering_and_bad_keys(kem_id: int) -> None:
    suite = HPKE(kem_id, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)
    sk, pk = suite.derive_key_pair(b"\x01" * 32)
    other_sk, _ = suite.derive_key_pair(b"\x02" * 32)
    enc, ct = suite.seal_base(pk, b"info", b"", b"attack at dawn", seeded(5))
    flipped = bytes([enc[0] ^ 1]) + enc[1:]
    flipped_t = enc[:-1] + bytes([enc[-1] ^ 1])
    for name, (e, s) in {
        "wrong sk": (enc, other_sk),
        "flipped ML-KEM byte (implicit rejection)": (flipped, sk),
        "flipped last byte": (flipped_t, sk),
        "short enc": (enc[:-1], sk),
        "empty enc": (b"", sk),
    }.items():
        for aad in (b"", b"x"):
            with pytest.raises(DecryptionError):
                suite.open_base(e, s, b"info", aad, ct)
            del aad
        assert name
    # Keys of the wrong length, and a recipient key failing the FIPS 203 check.
    with pytest.raises(UsageError):
        suite.open_base(enc, sk + b"\x00", b"info", b"", ct)
    with pytest.raises(UsageError):
        suite.public_key(sk[:-1])
    bad_pk = b"\xff" * 1184 + pk[1184:]
    assert not suite.is_valid_public_key(bad_pk)
    assert not suite.is_valid_public_key(pk[:-1])
    with pytest.raises(UsageError):
        suite.seal_base(bad_pk, b"info", b"", b"pt", seeded(1))
    if kem_id == KemId.MLKEM768_X25519:
        small_order = pk[:1184] + bytes(32)
        assert not suite.is_valid_public_key(small_order)
        zero_enc = enc[:1088] + bytes(32)
        with pytest.raises(DecryptionError):
            suite.decap(zero_enc, sk)


def test_sizes() -> None:
    for ids, want in {
        (0x41, 1, 1): (64, 1184, 1088, 32),
        (0x647A, 1, 1): (32, 1216, 1120, 32),
    }.items():
        s = HPKE(*ids)
        assert_eq(f"sizes of {ids}", (s.Nsk, s.Npk, s.Nenc, s.Nsecret), want)
