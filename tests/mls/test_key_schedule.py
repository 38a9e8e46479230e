"""RFC 9420 §8 key schedule (key-schedule.json), exporter, external init and
the Welcome key/nonce."""

from __future__ import annotations

import os
from typing import Any

import pytest

from messenger.mls import key_schedule as ks
from messenger.mls.ciphersuite import PQ_CIPHER_SUITES, get_cipher_suite
from messenger.mls.codec import Writer
from messenger.mls.errors import DecodeError, DecryptionError, UsageError
from tests.mls.vectors import assert_eq, cases, h

_SECRETS = (
    "sender_data_secret",
    "encryption_secret",
    "exporter_secret",
    "epoch_authenticator",
    "external_secret",
    "confirmation_key",
    "membership_key",
    "resumption_psk",
    "init_secret",
)


def group_context(
    suite_id: int, group_id: bytes, epoch: int, tree_hash: bytes, confirmed: bytes
) -> bytes:
    """``GroupContext`` (RFC 9420 §8.1) with empty extensions."""
    w = Writer()
    w.u16(1)  # mls10
    w.u16(suite_id)
    w.opaque(group_id)
    w.u64(epoch)
    w.opaque(tree_hash)
    w.opaque(confirmed)
    w.opaque(b"")  # extensions
    return w.getvalue()


@pytest.mark.parametrize("tc", cases("key-schedule"))
def test_key_schedule_vector(tc: dict[str, Any]) -> None:
    suite = get_cipher_suite(tc["cipher_suite"])
    group_id = h(tc["group_id"])
    init_secret = h(tc["initial_init_secret"])
    for n, ep in enumerate(tc["epochs"]):
        ctx = group_context(
            suite.suite_id, group_id, n, h(ep["tree_hash"]), h(ep["confirmed_transcript_hash"])
        )
        assert_eq(f"epoch {n}: group_context", ctx, h(ep["group_context"]))

        keys = ks.epoch_from_init_secret(
            suite, init_secret, h(ep["commit_secret"]), ctx, h(ep["psk_secret"])
        )
        assert_eq(f"epoch {n}: joiner_secret", keys.joiner_secret, h(ep["joiner_secret"]))
        assert_eq(f"epoch {n}: welcome_secret", keys.welcome_secret, h(ep["welcome_secret"]))
        for name in _SECRETS:
            assert_eq(f"epoch {n}: {name}", getattr(keys.secrets, name), h(ep[name]))

        # The Welcome path reaches the same epoch from the joiner secret.
        assert_eq(
            f"epoch {n}: welcome_secret (joiner path)",
            ks.welcome_secret(suite, keys.joiner_secret, h(ep["psk_secret"])),
            h(ep["welcome_secret"]),
        )
        joined = ks.epoch_from_joiner_secret(
            suite, h(ep["joiner_secret"]), ctx, h(ep["psk_secret"])
        )
        assert_eq(f"epoch {n}: secrets (joiner path)", joined, keys)

        _, external_pub = keys.secrets.external_key_pair(suite)
        assert_eq(f"epoch {n}: external_pub", external_pub, h(ep["external_pub"]))

        exp = ep["exporter"]
        # The label is a string (test-vectors.md), used as its UTF-8 bytes.
        assert_eq(
            f"epoch {n}: exporter.secret",
            keys.secrets.exporter(suite, exp["label"].encode(), h(exp["context"]), exp["length"]),
            h(exp["secret"]),
        )
        init_secret = keys.secrets.init_secret


def test_zero_defaults_match_explicit_zero() -> None:
    suite = get_cipher_suite(1)
    zero = bytes(32)
    ctx = group_context(1, b"g", 3, b"t", b"c")
    init = os.urandom(32)
    assert ks.epoch_from_init_secret(suite, init, None, ctx) == ks.epoch_from_init_secret(
        suite, init, zero, ctx, zero
    )


def test_group_context_binds_epoch() -> None:
    suite = get_cipher_suite(1)
    init, commit = os.urandom(32), os.urandom(32)
    a = ks.epoch_from_init_secret(suite, init, commit, group_context(1, b"g", 1, b"", b""))
    b = ks.epoch_from_init_secret(suite, init, commit, group_context(1, b"g", 2, b"", b""))
    assert a.joiner_secret != b.joiner_secret
    assert a.secrets.encryption_secret != b.secrets.encryption_secret


def test_epoch_from_epoch_secret() -> None:
    suite = get_cipher_suite(2)
    epoch_secret = os.urandom(32)
    secrets = ks.epoch_from_epoch_secret(suite, epoch_secret)
    assert secrets.confirmation_key == suite.derive_secret(epoch_secret, b"confirm")
    assert secrets.init_secret == suite.derive_secret(epoch_secret, b"init")
    with pytest.raises(UsageError):
        ks.epoch_from_epoch_secret(suite, bytes(16))


def test_epoch_secrets_round_trip_and_redacted_repr() -> None:
    suite = get_cipher_suite(5)
    secrets = ks.epoch_from_epoch_secret(suite, os.urandom(64))
    data = secrets.to_bytes()
    assert ks.EpochSecrets.from_bytes(data) == secrets
    with pytest.raises(DecodeError):
        ks.EpochSecrets.from_bytes(data[:-1])
    with pytest.raises(DecodeError):
        ks.EpochSecrets.from_bytes(data + b"\x00")
    assert secrets.init_secret.hex() not in repr(secrets)
    assert "redacted" in repr(ks.EpochKeys(b"", b"", secrets))


@pytest.mark.parametrize("suite_id", [1, 2, 3, 5, 7, *PQ_CIPHER_SUITES])
def test_welcome_key_nonce_lengths(suite_id: int) -> None:
    suite = get_cipher_suite(suite_id)
    welcome = ks.welcome_secret(suite, os.urandom(suite.hash_len))
    key, nonce = ks.welcome_key_nonce(suite, welcome)
    assert len(key) == suite.key_len
    assert len(nonce) == suite.nonce_len
    assert key == suite.expand_with_label(welcome, b"key", b"", suite.key_len)
    assert nonce == suite.expand_with_label(welcome, b"nonce", b"", suite.nonce_len)


@pytest.mark.parametrize("suite_id", [1, 2, 5, 7, *PQ_CIPHER_SUITES])
def test_external_init_round_trip(suite_id: int) -> None:
    suite = get_cipher_suite(suite_id)
    secrets = ks.epoch_from_epoch_secret(suite, os.urandom(suite.hash_len))
    priv, pub = secrets.external_key_pair(suite)
    kem_output, init_secret = ks.external_init(suite, pub, os.urandom)
    assert len(init_secret) == suite.hash_len
    assert ks.external_init_secret(suite, priv, kem_output) == init_secret
    other_priv, _ = suite.derive_hpke_key_pair(os.urandom(suite.hash_len))
    assert ks.external_init_secret(suite, other_priv, kem_output) != init_secret


def test_external_init_rejects_garbage_kem_output() -> None:
    suite = get_cipher_suite(2)
    priv, _ = ks.external_key_pair(suite, os.urandom(32))
    with pytest.raises(DecryptionError):
        ks.external_init_secret(suite, priv, b"\x04" + bytes(64))


def test_exporter_bounds_and_wrong_lengths() -> None:
    suite = get_cipher_suite(1)
    with pytest.raises(UsageError):
        ks.mls_exporter(suite, bytes(32), b"l", b"", 1 << 16)
    assert len(ks.mls_exporter(suite, bytes(32), b"l", b"", 0)) == 0
    with pytest.raises(UsageError):
        ks.joiner_secret(suite, bytes(31), None, b"")
    with pytest.raises(UsageError):
        ks.epoch_from_joiner_secret(suite, bytes(33), b"")
