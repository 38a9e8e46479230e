"""RFC 9180 HPKE (messenger.mls.hpke): the Appendix A vectors, and more.

``vectors/rfc9180/hpke-base-psk.json`` holds every ``mode_base`` and
``mode_psk`` entry of RFC 9180 Appendix A (X25519, P-256 and P-521 with each
AEAD the RFC gives, including export-only). The RFC has no vectors for X448 or
P-384; those get round-trip, export-agreement and tampering tests here, and
X448 is also checked against the mlswg ``crypto-basics.json`` vectors (suites
4 and 6) in ``test_crypto_basics.py``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke as native
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from messenger.mls import hpke
from messenger.mls.errors import DecryptionError, UsageError
from messenger.mls.hpke import HPKE, AeadId, Context, KdfId, KemId, Mode
from tests.mls.vectors import assert_eq, h

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "rfc9180" / "hpke-base-psk.json").read_text()
)

_KEM_NAMES = {0x10: "p256", 0x11: "p384", 0x12: "p521", 0x20: "x25519", 0x21: "x448"}
_KDF_NAMES = {1: "sha256", 2: "sha384", 3: "sha512"}
_AEAD_NAMES = {1: "aes128gcm", 2: "aes256gcm", 3: "chacha20poly1305", 0xFFFF: "exportonly"}


def _suite_id(kem: int, kdf: int, aead: int) -> str:
    return f"{_KEM_NAMES[kem]}-{_KDF_NAMES[kdf]}-{_AEAD_NAMES[aead]}"


def _vector_params() -> list[Any]:
    mode_names = {0: "base", 1: "psk"}
    return [
        pytest.param(
            v,
            id=f"{mode_names[v['mode']]}-{_suite_id(v['kem_id'], v['kdf_id'], v['aead_id'])}",
        )
        for v in VECTORS
    ]


def fixed(ikm: bytes) -> Callable[[int], bytes]:
    """A random source that returns ``ikm`` once, checking the length asked for."""
    calls = [ikm]

    def source(n: int) -> bytes:
        assert calls, "the random source was called more than once"
        out = calls.pop()
        assert n == len(out), f"asked for {n} random bytes, the vector's ikmE has {len(out)}"
        return out

    return source


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


# -- RFC 9180 Appendix A ------------------------------------------------------


def test_vector_file_covers_the_rfc() -> None:
    got = {(v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) for v in VECTORS}
    suites = {(0x20, 1, 1), (0x20, 1, 3), (0x10, 1, 1), (0x10, 3, 1), (0x10, 1, 3), (0x12, 3, 2)}
    suites.add((0x20, 1, 0xFFFF))
    assert got == {(mode, *s) for mode in (0, 1) for s in suites}


@pytest.mark.parametrize("v", _vector_params())
def test_rfc9180_vector(v: dict[str, Any]) -> None:
    suite = HPKE(v["kem_id"], v["kdf_id"], v["aead_id"])
    info = h(v["info"])
    psk, psk_id = h(v.get("psk")), h(v.get("psk_id"))

    # DeriveKeyPair (RFC 9180 §7.1.3) and SerializePublicKey.
    sk_e, pk_e = suite.derive_key_pair(h(v["ikmE"]))
    assert_eq("skEm", sk_e, h(v["skEm"]))
    assert_eq("pkEm", pk_e, h(v["pkEm"]))
    sk_r, pk_r = suite.derive_key_pair(h(v["ikmR"]))
    assert_eq("skRm", sk_r, h(v["skRm"]))
    assert_eq("pkRm", pk_r, h(v["pkRm"]))
    assert_eq("public_key(skRm)", suite.public_key(h(v["skRm"])), h(v["pkRm"]))

    # Encap / Decap (RFC 9180 §4.1).
    shared_secret, enc = suite.encap(pk_r, fixed(h(v["ikmE"])))
    assert_eq("enc", enc, h(v["enc"]))
    assert_eq("shared_secret (Encap)", shared_secret, h(v["shared_secret"]))
    assert_eq("shared_secret (Decap)", suite.decap(enc, sk_r), h(v["shared_secret"]))

    # KeySchedule (RFC 9180 §5.1).
    mode = v["mode"]
    assert_eq(
        "key_schedule_context",
        suite._key_schedule_context(mode, info, psk_id),
        h(v["key_schedule_context"]),
    )
    assert_eq("secret", suite._key_schedule_secret(shared_secret, psk), h(v["secret"]))

    if mode == Mode.BASE:
        enc_s, sender = suite.setup_base_s(pk_r, info, fixed(h(v["ikmE"])))
        receiver = suite.setup_base_r(h(v["enc"]), h(v["skRm"]), info)
    else:
        enc_s, sender = suite.setup_psk_s(pk_r, info, psk, psk_id, fixed(h(v["ikmE"])))
        receiver = suite.setup_psk_r(h(v["enc"]), h(v["skRm"]), info, psk, psk_id)
    assert_eq("enc (SetupS)", enc_s, h(v["enc"]))
    for role, ctx in (("sender", sender), ("recipient", receiver)):
        assert_eq(f"key ({role})", ctx.key, h(v["key"]))
        assert_eq(f"base_nonce ({role})", ctx.base_nonce, h(v["base_nonce"]))
        assert_eq(f"exporter_secret ({role})", ctx.exporter_secret, h(v["exporter_secret"]))

    # Encryptions with sequence numbers (RFC 9180 §5.2). Sequence numbers the
    # vectors skip are filled with messages of our own, opened in step.
    by_seq = {e["sequence_number"]: e for e in v["encryptions"]}
    last = max(by_seq, default=-1)
    for seq in range(last + 1):
        e = by_seq.get(seq)
        pt = h(e["pt"]) if e else b"filler %d" % seq
        aad = h(e["aad"]) if e else b""
        assert_eq(f"sender seq before message {seq}", sender.seq, seq)
        assert_eq(f"recipient seq before message {seq}", receiver.seq, seq)
        if e:
            assert_eq(f"nonce (sequence number {seq})", sender._nonce(), h(e["nonce"]))
        ct = sender.seal(aad, pt)
        if e:
            assert_eq(f"ct (sequence number {seq})", ct, h(e["ct"]))
        assert_eq(f"opened pt (sequence number {seq})", receiver.open(aad, ct), pt)

    # Export (RFC 9180 §5.3).
    for e in v["exports"]:
        ectx, length = h(e["exporter_context"]), e["L"]
        for role, ctx in (("sender", sender), ("recipient", receiver)):
            assert_eq(
                f"exported_value ({role}, exporter_context={e['exporter_context']!r})",
                ctx.export(ectx, length),
                h(e["exported_value"]),
            )

    # Single-shot SealBase / OpenBase (RFC 9180 §6.1) with the vector's ikmE.
    if mode == Mode.BASE and v["encryptions"]:
        first = by_seq[0]
        enc1, ct1 = suite.seal_base(
            pk_r, info, h(first["aad"]), h(first["pt"]), fixed(h(v["ikmE"]))
        )
        assert_eq("enc (SealBase)", enc1, h(v["enc"]))
        assert_eq("ct (SealBase)", ct1, h(first["ct"]))
        opened = suite.open_base(h(v["enc"]), h(v["skRm"]), info, h(first["aad"]), h(first["ct"]))
        assert_eq("pt (OpenBase)", opened, h(first["pt"]))
        # With an empty aad, OpenBase takes the native path where there is one.
        enc2, ct2 = suite.seal_base(pk_r, info, b"", h(first["pt"]), fixed(h(v["ikmE"])))
        own = suite.setup_base_r(enc2, sk_r, info).open(b"", ct2)
        assert_eq("pt (own OpenBase, empty aad)", own, h(first["pt"]))
        assert_eq(
            "pt (OpenBase, empty aad)", suite.open_base(enc2, sk_r, info, b"", ct2), h(first["pt"])
        )


@pytest.mark.parametrize("v", [p for p in _vector_params() if p.values[0]["mode"] == 0])
def test_rfc9180_vector_tampered(v: dict[str, Any]) -> None:
    suite = HPKE(v["kem_id"], v["kdf_id"], v["aead_id"])
    enc, sk, info = h(v["enc"]), h(v["skRm"]), h(v["info"])
    if not v["encryptions"]:
        with pytest.raises(UsageError):
            suite.setup_base_r(enc, sk, info).open(b"", bytes(32))
        return
    first = v["encryptions"][0]
    aad, ct = h(first["aad"]), h(first["ct"])
    bad = {
        "ct": (enc, sk, info, aad, ct[:-1] + bytes((ct[-1] ^ 1,))),
        "aad": (enc, sk, info, aad + b"!", ct),
        "info": (enc, sk, info + b"!", aad, ct),
        "enc": (enc[:-1] + bytes((enc[-1] ^ 1,)), sk, info, aad, ct),
        "truncated ct": (enc, sk, info, aad, ct[:10]),
        "short enc": (enc[:-1], sk, info, aad, ct),
        "long enc": (enc + b"\x00", sk, info, aad, ct),
        "empty enc": (b"", sk, info, aad, ct),
    }
    for what, args in bad.items():
        try:
            suite.open_base(*args)
        except DecryptionError:
            continue
        pytest.fail(f"open_base accepted a tampered {what}")


# -- the native path agrees with the RFC path ---------------------------------

NATIVE_SUITES = [
    (KemId.DHKEM_X25519_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM),
    (KemId.DHKEM_X25519_SHA256, KdfId.HKDF_SHA256, AeadId.CHACHA20_POLY1305),
    (KemId.DHKEM_P256_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM),
    (KemId.DHKEM_P384_SHA384, KdfId.HKDF_SHA384, AeadId.AES_256_GCM),
    (KemId.DHKEM_P521_SHA512, KdfId.HKDF_SHA512, AeadId.AES_256_GCM),
]
_NATIVE = {
    KemId.DHKEM_X25519_SHA256: native.KEM.X25519,
    KemId.DHKEM_P256_SHA256: native.KEM.P256,
    KemId.DHKEM_P384_SHA384: native.KEM.P384,
    KemId.DHKEM_P521_SHA512: native.KEM.P521,
}
_NATIVE_KDF = {1: native.KDF.HKDF_SHA256, 2: native.KDF.HKDF_SHA384, 3: native.KDF.HKDF_SHA512}
_NATIVE_AEAD = {
    1: native.AEAD.AES_128_GCM,
    2: native.AEAD.AES_256_GCM,
    3: native.AEAD.CHACHA20_POLY1305,
}


@pytest.mark.parametrize("ids", NATIVE_SUITES, ids=[_suite_id(*s) for s in NATIVE_SUITES])
def test_native_interop(ids: tuple[int, int, int]) -> None:
    """cryptography's own HPKE seals; the RFC path here opens, and back."""
    kem, kdf, aead = ids
    suite = HPKE(kem, kdf, aead)
    assert suite._native_suite is not None
    sk, pk = suite.derive_key_pair(b"\x42" * suite.Nsk)
    if kem == KemId.DHKEM_X25519_SHA256:
        sk_obj: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey = (
            x25519.X25519PrivateKey.from_private_bytes(sk)
        )
    else:
        curve = {0x10: ec.SECP256R1(), 0x11: ec.SECP384R1(), 0x12: ec.SECP521R1()}[kem]
        sk_obj = ec.derive_private_key(int.from_bytes(sk, "big"), curve)
    theirs = native.Suite(_NATIVE[kem], _NATIVE_KDF[kdf], _NATIVE_AEAD[aead])
    blob = theirs.encrypt(b"hello native", sk_obj.public_key(), b"info")
    enc, ct = blob[: suite.Nenc], blob[suite.Nenc :]
    assert_eq(
        "pt (own path opens native)",
        suite.setup_base_r(enc, sk, b"info").open(b"", ct),
        b"hello native",
    )
    assert_eq(
        "pt (open_base opens native)", suite.open_base(enc, sk, b"info", b"", ct), b"hello native"
    )
    enc2, ct2 = suite.seal_base(pk, b"info", b"", b"hello back", seeded(1))
    assert_eq("pt (native opens ours)", theirs.decrypt(enc2 + ct2, sk_obj, b"info"), b"hello back")


# -- the KEMs without RFC vectors: X448 and P-384 (and all others) ------------

ALL_SUITES = [
    (kem, kdf, aead)
    for kem in (0x10, 0x11, 0x12, 0x20, 0x21)
    for kdf in (1, 2, 3)
    for aead in (1, 2, 3, 0xFFFF)
    if (kdf, aead) in {(1, 1), (1, 3), (2, 2), (3, 2), (3, 3), (1, 0xFFFF), (3, 0xFFFF)}
]


@pytest.mark.parametrize("ids", ALL_SUITES, ids=[_suite_id(*s) for s in ALL_SUITES])
def test_round_trip_and_export(ids: tuple[int, int, int]) -> None:
    suite = HPKE(*ids)
    sk, pk = suite.derive_key_pair(b"recipient ikm" + bytes(suite.Nsk))
    assert_eq("len(sk)", len(sk), suite.Nsk)
    assert_eq("len(pk)", len(pk), suite.Npk)
    assert_eq("public_key(sk)", suite.public_key(sk), pk)
    assert suite.is_valid_public_key(pk)

    enc, sender = suite.setup_base_s(pk, b"info", seeded(7))
    assert_eq("len(enc)", len(enc), suite.Nenc)
    receiver = suite.setup_base_r(enc, sk, b"info")
    for role, ctx in (("sender", sender), ("recipient", receiver)):
        assert_eq(f"len(key) ({role})", len(ctx.key), suite.Nk)
        assert_eq(f"len(base_nonce) ({role})", len(ctx.base_nonce), suite.Nn)
        assert_eq(f"len(exporter_secret) ({role})", len(ctx.exporter_secret), suite.Nh)
    for ectx, length in ((b"", 32), (b"ctx", 1), (b"ctx", 255 * suite.Nh)):
        assert_eq(
            f"export({ectx!r}, {length})",
            sender.export(ectx, length),
            receiver.export(ectx, length),
        )
    assert sender.export(b"a", 32) != sender.export(b"b", 32)

    if ids[2] == AeadId.EXPORT_ONLY:
        with pytest.raises(UsageError):
            sender.seal(b"", b"pt")
        with pytest.raises(UsageError):
            suite.seal_base(pk, b"info", b"", b"pt", seeded(1))
        return

    for i in range(5):
        ct = sender.seal(b"aad %d" % i, b"message %d" % i)
        assert_eq(f"len(ct {i})", len(ct), len(b"message %d" % i) + 16)
        assert_eq(f"pt {i}", receiver.open(b"aad %d" % i, ct), b"message %d" % i)

    for aad in (b"", b"aad"):
        enc1, ct1 = suite.seal_base(pk, b"info", aad, b"single shot", seeded(3))
        assert_eq(
            f"open_base (aad={aad!r})", suite.open_base(enc1, sk, b"info", aad, ct1), b"single shot"
        )
        # Deterministic given the random source.
        assert_eq(
            "seal_base again",
            suite.seal_base(pk, b"info", aad, b"single shot", seeded(3)),
            (enc1, ct1),
        )
        assert suite.seal_base(pk, b"info", aad, b"single shot", seeded(4))[0] != enc1


@pytest.mark.parametrize(
    "ids",
    [(0x21, 3, 2), (0x21, 3, 3), (0x11, 2, 2), (0x20, 1, 1), (0x10, 1, 1), (0x12, 3, 2)],
    ids=lambda s: _suite_id(*s),
)
def test_tampering(ids: tuple[int, int, int]) -> None:
    suite = HPKE(*ids)
    sk, pk = suite.derive_key_pair(b"\x01" * suite.Nsk)
    other_sk, _ = suite.derive_key_pair(b"\x02" * suite.Nsk)
    for aad in (b"", b"aad"):
        enc, ct = suite.seal_base(pk, b"info", aad, b"attack at dawn", seeded(5))
        bad: dict[str, tuple[bytes, bytes, bytes, bytes, bytes]] = {
            "wrong sk": (enc, other_sk, b"info", aad, ct),
            "wrong info": (enc, sk, b"infO", aad, ct),
            "wrong aad": (enc, sk, b"info", aad + b"!", ct),
            "empty ct": (enc, sk, b"info", aad, b""),
            "short ct": (enc, sk, b"info", aad, ct[:15]),
            "ct with extra byte": (enc, sk, b"info", aad, ct + b"\x00"),
            "short enc": (enc[:-1], sk, b"info", aad, ct),
            "empty enc": (b"", sk, b"info", aad, ct),
        }
        for i in range(len(ct)):
            bad[f"ct byte {i}"] = (
                enc,
                sk,
                b"info",
                aad,
                ct[:i] + bytes((ct[i] ^ 0x80,)) + ct[i + 1 :],
            )
        for i in range(len(enc)):
            bad[f"enc byte {i}"] = (
                enc[:i] + bytes((enc[i] ^ 0x01,)) + enc[i + 1 :],
                sk,
                b"info",
                aad,
                ct,
            )
        for what, args in bad.items():
            try:
                suite.open_base(*args)
            except DecryptionError:
                continue
            pytest.fail(f"open_base accepted {what} (aad={aad!r})")


def test_open_failure_does_not_advance_seq() -> None:
    suite = HPKE(KemId.DHKEM_X448_SHA512, KdfId.HKDF_SHA512, AeadId.AES_256_GCM)
    sk, pk = suite.derive_key_pair(bytes(56))
    enc, sender = suite.setup_base_s(pk, b"", seeded(1))
    receiver = suite.setup_base_r(enc, sk, b"")
    ct0 = sender.seal(b"", b"zero")
    with pytest.raises(DecryptionError):
        receiver.open(b"", ct0[:-1] + b"\x00")
    assert_eq("recipient seq after a failed open", receiver.seq, 0)
    assert_eq("pt 0", receiver.open(b"", ct0), b"zero")
    ct1 = sender.seal(b"", b"one")
    with pytest.raises(DecryptionError):
        receiver.open(b"", ct0)  # a replay uses the wrong nonce
    assert_eq("pt 1", receiver.open(b"", ct1), b"one")


def test_context_roles_and_limits() -> None:
    suite = HPKE(KemId.DHKEM_X25519_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)
    sk, pk = suite.derive_key_pair(bytes(32))
    enc, sender = suite.setup_base_s(pk, b"", seeded(1))
    receiver = suite.setup_base_r(enc, sk, b"")
    assert isinstance(sender, Context)
    with pytest.raises(UsageError, match="recipient context"):
        receiver.seal(b"", b"x")
    with pytest.raises(UsageError, match="sender context"):
        sender.open(b"", sender.seal(b"", b"x"))
    with pytest.raises(UsageError):
        sender.export(b"", 255 * suite.Nh + 1)
    with pytest.raises(UsageError):
        sender.export(b"", -1)
    # RFC 9180 §5.2: MessageLimitReachedError once seq would overflow Nn bytes.
    sender._seq = (1 << 96) - 2
    sender.seal(b"", b"last")
    with pytest.raises(UsageError, match="message limit"):
        sender.seal(b"", b"one too many")


def test_psk_inputs_are_checked() -> None:
    suite = HPKE(KemId.DHKEM_X25519_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)
    sk, pk = suite.derive_key_pair(bytes(32))
    with pytest.raises(UsageError):
        suite.setup_psk_s(pk, b"", b"psk", b"", seeded(1))
    with pytest.raises(UsageError):
        suite.setup_psk_s(pk, b"", b"", b"id", seeded(1))
    with pytest.raises(UsageError):
        suite.setup_psk_s(pk, b"", b"", b"", seeded(1))
    with pytest.raises(UsageError):
        suite.key_schedule(0, Mode.BASE, bytes(32), b"", b"psk", b"id")
    with pytest.raises(UsageError):
        suite.key_schedule(0, 2, bytes(32), b"", b"", b"")  # mode_auth is not provided
    enc, sender = suite.setup_psk_s(pk, b"", b"psk", b"id", seeded(1))
    with pytest.raises(DecryptionError):
        suite.setup_psk_r(enc, sk, b"", b"wrong psk", b"id").open(b"", sender.seal(b"", b"x"))


# -- keys: validation, all-zero DH, DeriveKeyPair ------------------------------

# Small-order X25519/X448 points give an all-zero shared secret (RFC 7748 §6).
X25519_LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    ((1 << 255) - 19 - 1).to_bytes(32, "little"),
    ((1 << 255) - 19).to_bytes(32, "little"),
    ((1 << 255) - 19 + 1).to_bytes(32, "little"),
]
X448_LOW_ORDER = [
    bytes(56),
    (1).to_bytes(56, "little"),
    ((1 << 448) - (1 << 224) - 2).to_bytes(56, "little"),
]


@pytest.mark.parametrize("aead", [AeadId.AES_128_GCM, AeadId.CHACHA20_POLY1305])
def test_x25519_all_zero_shared_secret(aead: int) -> None:
    suite = HPKE(KemId.DHKEM_X25519_SHA256, KdfId.HKDF_SHA256, aead)
    sk, _ = suite.derive_key_pair(b"\x07" * 32)
    for point in X25519_LOW_ORDER:
        with pytest.raises(DecryptionError):
            suite.decap(point, sk)
        for aad in (b"", b"aad"):  # native and own paths
            with pytest.raises(DecryptionError):
                suite.open_base(point, sk, b"", aad, bytes(32))
        with pytest.raises(UsageError):
            suite.seal_base(point, b"", b"", b"pt", seeded(1))


def test_x448_all_zero_shared_secret() -> None:
    suite = HPKE(KemId.DHKEM_X448_SHA512, KdfId.HKDF_SHA512, AeadId.AES_256_GCM)
    sk, _ = suite.derive_key_pair(b"\x07" * 56)
    for point in X448_LOW_ORDER:
        with pytest.raises(DecryptionError):
            suite.decap(point, sk)
        with pytest.raises(DecryptionError):
            suite.open_base(point, sk, b"", b"", bytes(32))
        with pytest.raises(UsageError):
            suite.seal_base(point, b"", b"", b"pt", seeded(1))


@pytest.mark.parametrize("kem", [0x10, 0x11, 0x12], ids=_KEM_NAMES.get)
def test_nist_public_key_validation(kem: int) -> None:
    kdf = {0x10: 1, 0x11: 2, 0x12: 3}[kem]
    suite = HPKE(kem, kdf, AeadId.AES_256_GCM)
    sk, pk = suite.derive_key_pair(b"\x09" * suite.Nsk)
    size = (suite.Npk - 1) // 2
    x, y = pk[1 : 1 + size], pk[1 + size :]
    off_curve = b"\x04" + x + (int.from_bytes(y, "big") ^ 1).to_bytes(size, "big")
    compressed = bytes((2 + (y[-1] & 1),)) + x
    invalid = {
        "off-curve point": off_curve,
        "compressed point": compressed,
        "compressed point, padded": compressed + bytes(size),
        "point at infinity": b"\x00",
        "all zero": bytes(suite.Npk),
        "hybrid point": bytes((6 + (y[-1] & 1),)) + x + y,
        "truncated": pk[:-1],
    }
    for what, point in invalid.items():
        assert not suite.is_valid_public_key(point), what
        with pytest.raises(UsageError):
            suite.seal_base(point, b"", b"", b"pt", seeded(1))
            pytest.fail(f"seal_base accepted an {what}")
        for aad in (b"", b"aad"):
            with pytest.raises(DecryptionError):
                suite.open_base(point, sk, b"", aad, bytes(32))
                pytest.fail(f"open_base accepted an {what} as enc")


@pytest.mark.parametrize("kem", [0x10, 0x11, 0x12], ids=_KEM_NAMES.get)
def test_nist_hybrid_enc_is_rejected(kem: int) -> None:
    """A hybrid (0x06/0x07) encoding of a valid ephemeral key is not a
    SerializePublicKey output (RFC 9180 §7.1.1), even with a matching tag."""
    kdf = {0x10: 1, 0x11: 2, 0x12: 3}[kem]
    suite = HPKE(kem, kdf, AeadId.AES_256_GCM)
    sk, pk = suite.derive_key_pair(b"\x0b" * suite.Nsk)
    _, sk_e = suite._derive_private(b"\x0c" * suite.Nsk)
    pk_e = sk_e.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    hybrid = bytes((6 + (pk_e[-1] & 1),)) + pk_e[1:]
    pk_obj = hpke._parse_public_key(kem, pk)
    assert pk_obj is not None
    dh = hpke._dh(sk_e, pk_obj)
    assert dh is not None
    for aad in (b"", b"aad"):
        shared_secret = suite._extract_and_expand(dh, hybrid + pk)
        ct = suite.key_schedule(0, Mode.BASE, shared_secret, b"info").seal(aad, b"pt")
        with pytest.raises(DecryptionError):
            suite.open_base(hybrid, sk, b"info", aad, ct)
        # The same with the proper encoding opens.
        shared_secret = suite._extract_and_expand(dh, pk_e + pk)
        ct = suite.key_schedule(0, Mode.BASE, shared_secret, b"info").seal(aad, b"pt")
        assert_eq(f"pt (aad={aad!r})", suite.open_base(pk_e, sk, b"info", aad, ct), b"pt")


@pytest.mark.parametrize("kem", [0x10, 0x11, 0x12, 0x20, 0x21], ids=_KEM_NAMES.get)
def test_bad_private_keys(kem: int) -> None:
    suite = HPKE(kem, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)
    _, pk = suite.derive_key_pair(b"\x03" * suite.Nsk)
    enc, ct = suite.seal_base(pk, b"", b"", b"pt", seeded(1))
    bad = [b"", bytes(suite.Nsk - 1), bytes(suite.Nsk + 1)]
    if kem in (0x10, 0x11, 0x12):
        bad += [bytes(suite.Nsk), b"\xff" * suite.Nsk]  # zero, and at least the order
    for sk in bad:
        with pytest.raises(UsageError):
            suite.public_key(sk)
        with pytest.raises(UsageError):
            suite.open_base(enc, sk, b"", b"", ct)


def test_unsupported_suite_and_bad_random() -> None:
    with pytest.raises(UsageError):
        HPKE(0x0030, 1, 1)
    with pytest.raises(UsageError):
        HPKE(0x0020, 9, 1)
    with pytest.raises(UsageError):
        HPKE(0x0020, 1, 9)
    suite = HPKE(KemId.DHKEM_X25519_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)
    _, pk = suite.derive_key_pair(bytes(32))
    with pytest.raises(UsageError):
        suite.seal_base(pk, b"", b"", b"pt", lambda n: bytes(n - 1))


@pytest.mark.parametrize("kem", [0x10, 0x11, 0x12], ids=_KEM_NAMES.get)
def test_curve_orders(kem: int) -> None:
    """The orders used by DeriveKeyPair are the curves' own."""
    params = hpke._KEMS[kem]
    assert params.curve is not None
    assert_eq("order bit length", params.order.bit_length(), params.curve.key_size)
    ec.derive_private_key(params.order - 1, params.curve)
    with pytest.raises(ValueError):
        ec.derive_private_key(params.order, params.curve)


def test_p521_derive_key_pair_masks_the_top_byte() -> None:
    suite = HPKE(KemId.DHKEM_P521_SHA512, KdfId.HKDF_SHA512, AeadId.AES_256_GCM)
    for i in range(20):
        sk, _ = suite.derive_key_pair(bytes((i,)) * 66)
        assert sk[0] <= 1, f"skRm[0] = {sk[0]:#x} for ikm {i}"


def test_derive_key_pair_rejection_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 9180 §7.1.3: a candidate not below the order is skipped."""
    kem = KemId.DHKEM_P256_SHA256
    suite = HPKE(kem, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)

    def candidates(ikm: bytes) -> list[bytes]:
        prk = suite._kem_extract(b"", b"dkp_prk", ikm)
        return [suite._kem_expand(prk, b"candidate", bytes((c,)), 32) for c in range(2)]

    # An ikm whose candidate 1 is below its candidate 0 (about half of them).
    ikm = next(
        i for i in (b"rejection %d" % n for n in range(100)) if candidates(i)[1] < candidates(i)[0]
    )
    cand = candidates(ikm)
    assert_eq("skRm (counter 0 accepted)", suite.derive_key_pair(ikm)[0], cand[0])

    # With the order lowered to candidate 0, candidate 0 is rejected and
    # candidate 1 is taken.
    params = hpke._KEMS[kem]
    order = int.from_bytes(cand[0], "big")
    monkeypatch.setitem(hpke._KEMS, kem, dataclasses.replace(params, order=order))
    patched = HPKE(kem, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)
    assert_eq("skRm (counter 0 rejected)", patched._derive_private(ikm)[0], cand[1])
    # An order of 1 rejects every candidate: DeriveKeyPairError.
    monkeypatch.setitem(hpke._KEMS, kem, dataclasses.replace(params, order=1))
    with pytest.raises(UsageError, match="DeriveKeyPair"):
        HPKE(kem, KdfId.HKDF_SHA256, AeadId.AES_128_GCM).derive_key_pair(ikm)


def test_ids_and_sizes() -> None:
    expected = {
        (0x10, 1, 1): (32, 65, 65, 32, 16, 12, 32),
        (0x11, 2, 2): (48, 97, 97, 48, 32, 12, 48),
        (0x12, 3, 2): (66, 133, 133, 64, 32, 12, 64),
        (0x20, 1, 3): (32, 32, 32, 32, 32, 12, 32),
        (0x21, 3, 2): (56, 56, 56, 64, 32, 12, 64),
        (0x20, 1, 0xFFFF): (32, 32, 32, 32, 0, 0, 32),
    }
    for ids, want in expected.items():
        s = HPKE(*ids)
        assert_eq(
            f"sizes of {_suite_id(*ids)}", (s.Nsk, s.Npk, s.Nenc, s.Nsecret, s.Nk, s.Nn, s.Nh), want
        )
    assert sorted(hpke.__all__) == ["AeadId", "Context", "HPKE", "KdfId", "KemId", "Mode"]
