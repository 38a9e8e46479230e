"""The epoch key schedule (RFC 9420 §8).

Three ways into an epoch:

* :func:`epoch_from_init_secret` -- members processing a Commit (and the
  committer): ``init_secret_[n-1]`` and ``commit_secret`` give the
  ``joiner_secret``, then everything else (RFC 9420 §8);
* :func:`epoch_from_joiner_secret` -- a new member joining from a Welcome,
  who learns the ``joiner_secret`` from its GroupSecrets (RFC 9420 §12.4.3.1);
* :func:`epoch_from_epoch_secret` -- the creator of a group, whose first
  epoch secret is fresh randomness (RFC 9420 §11).

The GroupContext is taken as its encoded bytes, so this module does not
depend on the wire structs. The outputs a member keeps for the life of an
epoch are one :class:`EpochSecrets` value, which encodes to bytes for
persistence; the ``epoch_secret`` itself is not kept (RFC 9420 §9.2).

Also here: the MLS-Exporter (RFC 9420 §8.5), the external key pair and
external initialization (RFC 9420 §8, §8.3), and the Welcome key and nonce
(RFC 9420 §12.4.3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ciphersuite import CipherSuite, RandomSource
from .codec import Reader, Struct, Writer
from .errors import UsageError

__all__ = [
    "EXTERNAL_INIT_LABEL",
    "EpochKeys",
    "EpochSecrets",
    "epoch_from_epoch_secret",
    "epoch_from_init_secret",
    "epoch_from_joiner_secret",
    "external_init",
    "external_init_secret",
    "external_key_pair",
    "joiner_secret",
    "mls_exporter",
    "welcome_key_nonce",
    "welcome_secret",
]

#: The HPKE export label of external initialization (RFC 9420 §8.3).
EXTERNAL_INIT_LABEL = b"MLS 1.0 external init secret"


def _check_len(suite: CipherSuite, name: str, value: bytes) -> None:
    if len(value) != suite.hash_len:
        raise UsageError(f"{name} must be {suite.hash_len} bytes, not {len(value)}")


@dataclass(frozen=True, slots=True)
class EpochSecrets(Struct):
    """The secrets derived from one ``epoch_secret`` (RFC 9420 §8, Table 4).

    ``init_secret`` is the input to the next epoch's key schedule. The
    encoding (each field as ``opaque<V>``, in declaration order) is private
    to this implementation and exists for persisting a group.
    """

    sender_data_secret: bytes
    encryption_secret: bytes
    exporter_secret: bytes
    external_secret: bytes
    confirmation_key: bytes
    membership_key: bytes
    resumption_psk: bytes
    epoch_authenticator: bytes
    init_secret: bytes

    @classmethod
    def derive(cls, suite: CipherSuite, epoch_secret: bytes) -> EpochSecrets:
        """``DeriveSecret(epoch_secret, <label>)`` for every label of RFC 9420 §8."""
        d = suite.derive_secret
        return cls(
            sender_data_secret=d(epoch_secret, b"sender data"),
            encryption_secret=d(epoch_secret, b"encryption"),
            exporter_secret=d(epoch_secret, b"exporter"),
            external_secret=d(epoch_secret, b"external"),
            confirmation_key=d(epoch_secret, b"confirm"),
            membership_key=d(epoch_secret, b"membership"),
            resumption_psk=d(epoch_secret, b"resumption"),
            epoch_authenticator=d(epoch_secret, b"authentication"),
            init_secret=d(epoch_secret, b"init"),
        )

    def exporter(self, suite: CipherSuite, label: bytes, context: bytes, length: int) -> bytes:
        """``MLS-Exporter(label, context, length)`` of this epoch (RFC 9420 §8.5)."""
        return mls_exporter(suite, self.exporter_secret, label, context, length)

    def external_key_pair(self, suite: CipherSuite) -> tuple[bytes, bytes]:
        """``(external_priv, external_pub)`` of this epoch (RFC 9420 §8)."""
        return external_key_pair(suite, self.external_secret)

    def encode(self, w: Writer) -> None:
        w.opaque(self.sender_data_secret)
        w.opaque(self.encryption_secret)
        w.opaque(self.exporter_secret)
        w.opaque(self.external_secret)
        w.opaque(self.confirmation_key)
        w.opaque(self.membership_key)
        w.opaque(self.resumption_psk)
        w.opaque(self.epoch_authenticator)
        w.opaque(self.init_secret)

    @classmethod
    def decode(cls, r: Reader) -> EpochSecrets:
        return cls(
            sender_data_secret=r.opaque(),
            encryption_secret=r.opaque(),
            exporter_secret=r.opaque(),
            external_secret=r.opaque(),
            confirmation_key=r.opaque(),
            membership_key=r.opaque(),
            resumption_psk=r.opaque(),
            epoch_authenticator=r.opaque(),
            init_secret=r.opaque(),
        )

    def __repr__(self) -> str:
        return "EpochSecrets(<redacted>)"


@dataclass(frozen=True, slots=True)
class EpochKeys:
    """A run of the key schedule: the epoch's secrets and the Welcome inputs.

    ``joiner_secret`` and ``welcome_secret`` are needed only while building
    or reading the Welcome of this epoch (RFC 9420 §12.4.3.1); drop them
    afterwards (RFC 9420 §9.2) and keep :attr:`secrets`.
    """

    joiner_secret: bytes
    welcome_secret: bytes
    secrets: EpochSecrets

    def __repr__(self) -> str:
        return "EpochKeys(<redacted>)"


def joiner_secret(
    suite: CipherSuite, init_secret: bytes, commit_secret: bytes | None, group_context: bytes
) -> bytes:
    """``ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext, Nh)``.

    RFC 9420 §8. ``commit_secret=None`` is the all-zero vector used by a
    Commit without a path (RFC 9420 §12.4).
    """
    _check_len(suite, "init_secret", init_secret)
    if commit_secret is None:
        commit_secret = bytes(suite.hash_len)
    prk = suite.extract(init_secret, commit_secret)
    return suite.expand_with_label(prk, b"joiner", group_context, suite.hash_len)


def _member_prk(suite: CipherSuite, joiner: bytes, psk_secret: bytes | None) -> bytes:
    """``KDF.Extract(joiner_secret, psk_secret or 0)`` (RFC 9420 §8)."""
    _check_len(suite, "joiner_secret", joiner)
    if psk_secret is None:
        psk_secret = bytes(suite.hash_len)
    return suite.extract(joiner, psk_secret)


def welcome_secret(suite: CipherSuite, joiner: bytes, psk_secret: bytes | None = None) -> bytes:
    """``DeriveSecret(Extract(joiner_secret, psk_secret), "welcome")`` (RFC 9420 §8).

    A new member needs it before it knows the GroupContext, to open the
    GroupInfo of a Welcome (RFC 9420 §12.4.3.1).
    """
    return suite.derive_secret(_member_prk(suite, joiner, psk_secret), b"welcome")


def welcome_key_nonce(suite: CipherSuite, welcome: bytes) -> tuple[bytes, bytes]:
    """``(welcome_key, welcome_nonce)`` from ``welcome_secret`` (RFC 9420 §12.4.3.1)."""
    key = suite.expand_with_label(welcome, b"key", b"", suite.key_len)
    nonce = suite.expand_with_label(welcome, b"nonce", b"", suite.nonce_len)
    return key, nonce


def epoch_from_joiner_secret(
    suite: CipherSuite, joiner: bytes, group_context: bytes, psk_secret: bytes | None = None
) -> EpochKeys:
    """The epoch's keys from its ``joiner_secret`` (RFC 9420 §8, §12.4.3.1).

    ``psk_secret=None`` means no PSKs: the all-zero vector (RFC 9420 §8.4).
    """
    prk = _member_prk(suite, joiner, psk_secret)
    welcome = suite.derive_secret(prk, b"welcome")
    epoch_secret = suite.expand_with_label(prk, b"epoch", group_context, suite.hash_len)
    return EpochKeys(joiner, welcome, EpochSecrets.derive(suite, epoch_secret))


def epoch_from_init_secret(
    suite: CipherSuite,
    init_secret: bytes,
    commit_secret: bytes | None,
    group_context: bytes,
    psk_secret: bytes | None = None,
) -> EpochKeys:
    """The epoch's keys from the previous ``init_secret`` (RFC 9420 §8).

    ``group_context`` is the encoded GroupContext of the *new* epoch.
    """
    joiner = joiner_secret(suite, init_secret, commit_secret, group_context)
    return epoch_from_joiner_secret(suite, joiner, group_context, psk_secret)


def epoch_from_epoch_secret(suite: CipherSuite, epoch_secret: bytes) -> EpochSecrets:
    """A new group's first epoch, whose ``epoch_secret`` is random (RFC 9420 §11)."""
    _check_len(suite, "epoch_secret", epoch_secret)
    return EpochSecrets.derive(suite, epoch_secret)


def mls_exporter(
    suite: CipherSuite, exporter_secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """``MLS-Exporter(Label, Context, Length)`` (RFC 9420 §8.5)."""
    if not 0 <= length <= 0xFFFF:
        raise UsageError(f"exporter length {length} does not fit a uint16")
    secret = suite.derive_secret(exporter_secret, label)
    return suite.expand_with_label(secret, b"exported", suite.hash(context), length)


def external_key_pair(suite: CipherSuite, external_secret: bytes) -> tuple[bytes, bytes]:
    """``KEM.DeriveKeyPair(external_secret)``: ``(external_priv, external_pub)`` (RFC 9420 §8)."""
    return suite.derive_hpke_key_pair(external_secret)


def external_init(
    suite: CipherSuite, external_pub: bytes, random: RandomSource
) -> tuple[bytes, bytes]:
    """The joiner's side of external initialization (RFC 9420 §8.3).

    Returns ``(kem_output, init_secret)``: ``kem_output`` goes into the
    ExternalInit proposal, ``init_secret`` into :func:`epoch_from_init_secret`.
    """
    kem_output, context = suite.hpke.setup_base_s(external_pub, b"", random)
    return kem_output, context.export(EXTERNAL_INIT_LABEL, suite.hash_len)


def external_init_secret(suite: CipherSuite, external_priv: bytes, kem_output: bytes) -> bytes:
    """The group's side of external initialization (RFC 9420 §8.3).

    A malformed ``kem_output`` raises :class:`~messenger.mls.errors.DecryptionError`.
    """
    context = suite.hpke.setup_base_r(kem_output, external_priv, b"")
    return context.export(EXTERNAL_INIT_LABEL, suite.hash_len)
