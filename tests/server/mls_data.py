"""Real MLS wire structs for the server tests, built with messenger.mls.

The server reads only framing headers, so group messages here carry an
encrypted body (AES-GCM under a key the server never sees): the privacy
test can then assert that no plaintext reaches the database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from messenger.api import models as m
from messenger.api.contact_token import CONTACT_TOKEN_EXTENSION
from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION
from messenger.mls.ciphersuite import HPKECiphertext, get_cipher_suite
from messenger.mls.codec import Writer
from messenger.mls.commit import Commit
from messenger.mls.content import (
    ContentType,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PublicMessage,
    Sender,
)
from messenger.mls.credentials import Credential
from messenger.mls.extensions import Extension
from messenger.mls.group import Group
from messenger.mls.group_context import GroupContext
from messenger.mls.key_package import KeyPackageTBS
from messenger.mls.key_package_bundle import default_capabilities, generate_key_package
from messenger.mls.leaf_node import Capabilities, LeafNodeSource, LeafNodeTBS, Lifetime
from messenger.mls.messages import MLSMessage
from messenger.mls.welcome import EncryptedGroupSecrets, GroupInfo, Welcome

SUITE_ID = 1  # MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

#: The key that "the group" shares; the server never gets it.
GROUP_KEY = AESGCM.generate_key(bit_length=128)


def encrypt(plaintext: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(GROUP_KEY).encrypt(nonce, plaintext, None)


def decrypt(ciphertext: bytes) -> bytes:
    return AESGCM(GROUP_KEY).decrypt(ciphertext[:12], ciphertext[12:], None)


def private_message(
    group_id: bytes,
    epoch: int,
    plaintext: bytes = b"hello",
    content_type: ContentType = ContentType.APPLICATION,
) -> bytes:
    """A PrivateMessage whose ciphertext is ``plaintext`` encrypted."""
    msg = PrivateMessage(
        group_id=group_id,
        epoch=epoch,
        content_type=content_type,
        authenticated_data=b"",
        encrypted_sender_data=os.urandom(32),
        ciphertext=encrypt(plaintext),
    )
    return MLSMessage(msg).to_bytes()


def commit(group_id: bytes, epoch: int, tag: bytes = b"commit") -> bytes:
    """An (encrypted) commit for ``epoch``."""
    return private_message(group_id, epoch, tag, ContentType.COMMIT)


def application(group_id: bytes, epoch: int, plaintext: bytes) -> bytes:
    return private_message(group_id, epoch, plaintext, ContentType.APPLICATION)


def public_proposal(group_id: bytes, epoch: int) -> bytes:
    """A PublicMessage that is not a commit (a Remove proposal would do; use app data)."""
    content = FramedContent(group_id, epoch, Sender.member(0), b"", os.urandom(16))
    auth = FramedContentAuthData(os.urandom(64), None)
    return MLSMessage(PublicMessage(content, auth, os.urandom(32))).to_bytes()


def welcome(refs: Sequence[bytes] = ()) -> bytes:
    """A Welcome to the KeyPackages ``refs`` (KeyPackageRefs), or to a random one."""
    secrets = tuple(
        EncryptedGroupSecrets(ref, HPKECiphertext(os.urandom(32), os.urandom(48)))
        for ref in (refs or [os.urandom(32)])
    )
    return MLSMessage(Welcome(SUITE_ID, secrets, os.urandom(64))).to_bytes()


def key_package_ref(key_package: bytes) -> bytes:
    """``MakeKeyPackageRef`` of an MLSMessage(KeyPackage) (RFC 9420 §5.2)."""
    kp = MLSMessage.from_bytes(key_package).key_package
    return kp.ref(get_cipher_suite(kp.cipher_suite))


def group_info(group_id: bytes, epoch: int) -> bytes:
    context = GroupContext(SUITE_ID, group_id, epoch, os.urandom(32), os.urandom(32))
    return MLSMessage(GroupInfo(context, (), os.urandom(32), 0, os.urandom(64))).to_bytes()


def credential_identity(credential: m.Credential) -> bytes:
    """The ``BasicCredential`` identity carrying a server credential (as clients build it)."""
    if credential.account_key is not None:
        from messenger.api.credential import encode_credential

        return encode_credential(credential)  # version 2 (docs/devices.md)
    w = Writer()
    w.u8(1)
    w.opaque(credential.account_id.encode("ascii"))
    w.opaque(credential.client_id.encode("ascii"))
    w.opaque(credential.signature_key)
    w.u64(credential.issued_at)
    w.opaque(credential.signature)
    return w.getvalue()


def key_package(
    identity: bytes = b"someone",
    *,
    corrupt: bool = False,
    signature_key: Ed25519PrivateKey | None = None,
    suite_id: int = SUITE_ID,
    delivery: str | None = None,
    contact_token: bytes | None = None,
) -> bytes:
    """A real, signed KeyPackage (or one with a broken signature).

    With ``signature_key`` the leaf carries that key (else a fresh one);
    ``suite_id``: its cipher suite (one signing with Ed25519); ``delivery``:
    the leaf's delivery address (``delivery_queue`` extension), if any;
    ``contact_token``: the data of its ``contact_token`` extension, if any.
    """
    extensions: list[Extension] = []
    if delivery is not None:
        extensions.append(Extension(DELIVERY_QUEUE_EXTENSION, delivery.encode()))
    if contact_token is not None:
        extensions.append(Extension(CONTACT_TOKEN_EXTENSION, contact_token))
    suite = get_cipher_suite(suite_id)
    if signature_key is None:
        sig_priv, sig_pub = suite.generate_signature_key_pair(os.urandom)
    else:
        sig_priv = signature_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        sig_pub = signature_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    _, init_pub = suite.generate_hpke_key_pair(os.urandom)
    _, enc_pub = suite.generate_hpke_key_pair(os.urandom)
    leaf = LeafNodeTBS(
        encryption_key=enc_pub,
        signature_key=sig_pub,
        credential=Credential.basic(identity),
        capabilities=Capabilities(
            versions=(1,),
            cipher_suites=(suite_id,),
            credentials=(1,),
            extensions=tuple(e.extension_type for e in extensions),
        ),
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=Lifetime(0, 2**63),
        extensions=tuple(extensions),
    ).sign(suite, sig_priv)
    kp = KeyPackageTBS(cipher_suite=suite_id, init_key=init_pub, leaf_node=leaf).sign(
        suite, sig_priv
    )
    data = MLSMessage(kp).to_bytes()
    if corrupt:
        data = data[:-1] + bytes([data[-1] ^ 1])
    return data


def external_commit(group_id: bytes, epoch: int) -> bytes:
    """A PublicMessage commit from a new member (an external join, RFC 9420 §12.4.3.2)."""
    content = FramedContent(group_id, epoch, Sender.new_member_commit(), b"", Commit())
    auth = FramedContentAuthData(os.urandom(64), os.urandom(32))
    return MLSMessage(PublicMessage(content, auth, None)).to_bytes()


def b64(data: bytes) -> str:
    from messenger.api.fields import b64encode

    return b64encode(data)


# -- real MLS groups of registered clients --------------------------------------------


def private_key_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def mls_credential(credential: m.Credential) -> Credential:
    """The MLS credential of a registered client: its server credential, as clients build it."""
    return Credential.basic(credential_identity(credential))


def mls_group(credential: m.Credential, key: Ed25519PrivateKey, group_id: bytes) -> Group:
    """A real MLS group (RFC 9420 §11) created by the client with ``credential`` and ``key``."""
    suite = get_cipher_suite(SUITE_ID)
    bundle = generate_key_package(
        suite, mls_credential(credential), private_key_bytes(key), os.urandom, now=int(time.time())
    )
    return Group.create(bundle, os.urandom, group_id=group_id)


def mls_external_commit(
    group_info: bytes,
    credential: m.Credential,
    key: Ed25519PrivateKey,
    *,
    resync: int | None = None,
    delivery: str | None = None,
) -> tuple[Group, bytes]:
    """A real external commit (RFC 9420 §12.4.3.2) from ``group_info``, signed with ``key``.

    The joiner's leaf carries ``credential``; ``resync`` is the joiner's old
    leaf, removed by the same commit (a member rejoining). Returns the
    joiner's group and the MLSMessage carrying the commit.
    """
    group, result = Group.join_external(
        group_info,
        credential=mls_credential(credential),
        signature_private_key=private_key_bytes(key),
        random=os.urandom,
        resync=resync,
        capabilities=(
            None
            if delivery is None
            else default_capabilities(get_cipher_suite(SUITE_ID), (DELIVERY_QUEUE_EXTENSION,))
        ),
        leaf_extensions=(
            () if delivery is None else (Extension(DELIVERY_QUEUE_EXTENSION, delivery.encode()),)
        ),
    )
    return group, result.message
