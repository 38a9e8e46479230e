"""Welcome messages and GroupInfo: the cryptography of joining (RFC 9420 §12.4.3).

The sender's half (RFC 9420 §12.4.2, "Creating a Commit", last steps):

* :func:`encrypt_group_info` -- the GroupInfo under ``welcome_key`` and
  ``welcome_nonce``, derived from the new epoch's ``welcome_secret``;
* :func:`seal_welcome` -- a :class:`~messenger.mls.welcome.Welcome` with one
  :class:`~messenger.mls.welcome.EncryptedGroupSecrets` per new member,
  ``EncryptWithLabel(init_key, "Welcome", encrypted_group_info,
  group_secrets)`` (RFC 9420 §12.4.3.1).

The joiner's half (RFC 9420 §12.4.3.1, first steps): :func:`open_group_secrets`
finds and decrypts this client's GroupSecrets, and :func:`open_group_info`
decrypts the GroupInfo once the PSKs are known. Verifying the GroupInfo, the
tree and the key schedule is the group's business
(:meth:`messenger.mls.group.Group.join_from_welcome`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from .ciphersuite import CipherSuite, RandomSource
from .codec import Reader
from .errors import DecodeError, ValidationError
from .key_package import KeyPackage
from .key_schedule import welcome_key_nonce, welcome_secret
from .psk import PreSharedKeyID
from .welcome import EncryptedGroupSecrets, GroupInfo, GroupSecrets, PathSecret, Welcome

__all__ = [
    "NewMember",
    "encrypt_group_info",
    "open_group_info",
    "open_group_secrets",
    "seal_welcome",
]

_WELCOME_LABEL: Final = b"Welcome"

#: A member to welcome: its KeyPackage and the path secret it gets, if any.
NewMember = tuple[KeyPackage, bytes | None]


def encrypt_group_info(
    suite: CipherSuite, joiner_secret: bytes, psk_secret: bytes | None, group_info: bytes
) -> bytes:
    """``encrypted_group_info`` of a Welcome (RFC 9420 §12.4.3.1).

    ``group_info`` is the encoded, signed GroupInfo; the AEAD has no
    associated data.
    """
    key, nonce = welcome_key_nonce(suite, welcome_secret(suite, joiner_secret, psk_secret))
    return suite.aead_seal(key, nonce, b"", group_info)


def seal_welcome(
    suite: CipherSuite,
    *,
    joiner_secret: bytes,
    encrypted_group_info: bytes,
    members: Sequence[NewMember],
    psks: Sequence[PreSharedKeyID],
    random: RandomSource,
) -> Welcome:
    """A Welcome for ``members`` (RFC 9420 §12.4.3.1).

    Each member's GroupSecrets holds the ``joiner_secret``, its path secret
    (the secret of the lowest common ancestor of its leaf and the
    committer's, if the Commit had a path) and the PSK ids of the Commit, in
    order; it is encrypted to the KeyPackage's ``init_key``.
    """
    secrets = []
    for key_package, path_secret in members:
        group_secrets = GroupSecrets(
            joiner_secret,
            None if path_secret is None else PathSecret(path_secret),
            tuple(psks),
        )
        ciphertext = suite.encrypt_with_label(
            key_package.init_key,
            _WELCOME_LABEL,
            encrypted_group_info,
            group_secrets.to_bytes(),
            random,
        )
        secrets.append(EncryptedGroupSecrets(key_package.ref(suite), ciphertext))
    return Welcome(suite.suite_id, tuple(secrets), encrypted_group_info)


def open_group_secrets(
    suite: CipherSuite, welcome: Welcome, key_package: KeyPackage, init_private_key: bytes
) -> GroupSecrets:
    """This client's GroupSecrets from ``welcome`` (RFC 9420 §12.4.3.1).

    :class:`ValidationError` if the Welcome is for another suite or has no
    entry for ``key_package``; :class:`DecryptionError` if the entry does not
    decrypt; :class:`DecodeError` if the plaintext is malformed.
    """
    if welcome.cipher_suite != suite.suite_id or key_package.cipher_suite != suite.suite_id:
        raise ValidationError("the Welcome is for another cipher suite (RFC 9420 §12.4.3.1)")
    entry = welcome.secrets_for(key_package.ref(suite))
    if entry is None:
        raise ValidationError("the Welcome has no GroupSecrets for this KeyPackage")
    ciphertext = entry.encrypted_group_secrets
    plaintext = suite.decrypt_with_label(
        init_private_key,
        _WELCOME_LABEL,
        welcome.encrypted_group_info,
        ciphertext.kem_output,
        ciphertext.ciphertext,
    )
    return GroupSecrets.from_bytes(plaintext)


def open_group_info(
    suite: CipherSuite, welcome: Welcome, joiner_secret: bytes, psk_secret: bytes | None
) -> GroupInfo:
    """The GroupInfo of ``welcome``, decrypted but not verified (RFC 9420 §12.4.3.1)."""
    if len(joiner_secret) != suite.hash_len:
        raise DecodeError(f"joiner_secret must be {suite.hash_len} bytes")
    key, nonce = welcome_key_nonce(suite, welcome_secret(suite, joiner_secret, psk_secret))
    plaintext = suite.aead_open(key, nonce, b"", welcome.encrypted_group_info)
    r = Reader(plaintext)
    group_info = GroupInfo.decode(r)
    r.finish()
    return group_info
