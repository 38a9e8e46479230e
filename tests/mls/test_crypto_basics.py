"""The mlswg "Crypto Basics" vectors (vectors/crypto-basics.json), all 7 suites.

RFC 9420 §5.2 (RefHash), §8 (ExpandWithLabel, DeriveSecret), §9
(DeriveTreeSecret), §5.1.2 (SignWithLabel / VerifyWithLabel) and §5.1.3
(EncryptWithLabel / DecryptWithLabel). The verification steps are those of
``vectors/test-vectors.md``.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from messenger.mls.ciphersuite import CipherSuite, HPKECiphertext, get_cipher_suite
from messenger.mls.errors import DecryptionError
from tests.mls.vectors import assert_eq, h, load

CASES = [pytest.param(tc, id=f"suite-{tc['cipher_suite']}") for tc in load("crypto-basics")]


def _suite(tc: dict[str, Any]) -> CipherSuite:
    return get_cipher_suite(tc["cipher_suite"])


def test_every_suite_has_a_vector() -> None:
    assert sorted(tc["cipher_suite"] for tc in load("crypto-basics")) == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize("tc", CASES)
def test_ref_hash(tc: dict[str, Any]) -> None:
    v = tc["ref_hash"]
    got = _suite(tc).ref_hash(v["label"].encode(), h(v["value"]))
    assert_eq("ref_hash.out", got, h(v["out"]))


@pytest.mark.parametrize("tc", CASES)
def test_expand_with_label(tc: dict[str, Any]) -> None:
    v = tc["expand_with_label"]
    got = _suite(tc).expand_with_label(
        h(v["secret"]), v["label"].encode(), h(v["context"]), v["length"]
    )
    assert_eq("expand_with_label.out", got, h(v["out"]))


@pytest.mark.parametrize("tc", CASES)
def test_derive_secret(tc: dict[str, Any]) -> None:
    v = tc["derive_secret"]
    got = _suite(tc).derive_secret(h(v["secret"]), v["label"].encode())
    assert_eq("derive_secret.out", got, h(v["out"]))


@pytest.mark.parametrize("tc", CASES)
def test_derive_tree_secret(tc: dict[str, Any]) -> None:
    v = tc["derive_tree_secret"]
    got = _suite(tc).derive_tree_secret(
        h(v["secret"]), v["label"].encode(), v["generation"], v["length"]
    )
    assert_eq("derive_tree_secret.out", got, h(v["out"]))


@pytest.mark.parametrize("tc", CASES)
def test_sign_with_label(tc: dict[str, Any]) -> None:
    cs = _suite(tc)
    v = tc["sign_with_label"]
    priv, pub, label, content = h(v["priv"]), h(v["pub"]), v["label"].encode(), h(v["content"])
    assert_eq("sign_with_label.pub (from priv)", cs.signature_public_key(priv), pub)
    assert_eq(
        "VerifyWithLabel(pub, label, content, signature)",
        cs.verify_with_label(pub, label, content, h(v["signature"])),
        True,
    )
    own = cs.sign_with_label(priv, label, content)
    assert_eq(
        "VerifyWithLabel(pub, label, content, SignWithLabel(...))",
        cs.verify_with_label(pub, label, content, own),
        True,
    )
    assert_eq(
        "VerifyWithLabel with another label",
        cs.verify_with_label(pub, label + b"!", content, h(v["signature"])),
        False,
    )
    assert_eq(
        "VerifyWithLabel with other content",
        cs.verify_with_label(pub, label, content + b"!", h(v["signature"])),
        False,
    )


@pytest.mark.parametrize("tc", CASES)
def test_encrypt_with_label(tc: dict[str, Any]) -> None:
    cs = _suite(tc)
    v = tc["encrypt_with_label"]
    priv, pub, label, context = h(v["priv"]), h(v["pub"]), v["label"].encode(), h(v["context"])
    plaintext = h(v["plaintext"])
    assert_eq("encrypt_with_label.pub (from priv)", cs.hpke_public_key(priv), pub)
    got = cs.decrypt_with_label(priv, label, context, h(v["kem_output"]), h(v["ciphertext"]))
    assert_eq("DecryptWithLabel(priv, label, context, kem_output, ciphertext)", got, plaintext)

    ct = cs.encrypt_with_label(pub, label, context, plaintext, random.Random(1).randbytes)
    assert isinstance(ct, HPKECiphertext)
    assert_eq("len(kem_output candidate)", len(ct.kem_output), cs.hpke.Nenc)
    assert_eq(
        "DecryptWithLabel of our own EncryptWithLabel",
        cs.decrypt_with_label(priv, label, context, ct.kem_output, ct.ciphertext),
        plaintext,
    )
    for what, args in {
        "label": (priv, label + b"!", context, ct.kem_output, ct.ciphertext),
        "context": (priv, label, context + b"!", ct.kem_output, ct.ciphertext),
    }.items():
        with pytest.raises(DecryptionError):
            cs.decrypt_with_label(*args)
            pytest.fail(f"DecryptWithLabel accepted another {what}")
