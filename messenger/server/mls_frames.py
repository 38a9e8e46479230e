"""What the server reads of MLS messages: the framing header, nothing more.

The Delivery Service treats MLS messages as opaque (RFC 9750 §5) except for
the fields it needs to route and order them, which RFC 9420 §6 leaves in the
clear on purpose: ``group_id``, ``epoch`` and ``content_type`` of a
PublicMessage or PrivateMessage, and the sender type of a PublicMessage
(to recognise an external commit, RFC 9420 §12.4.3.2). It also checks that a
Welcome and a GroupInfo are what they say, and verifies the signatures of
uploaded KeyPackages (RFC 9420 §10.1) so that junk cannot be handed out.

This module is the one seam between the server and :mod:`messenger.mls`:
any failure to decode is the sender's fault and becomes
:attr:`~messenger.api.errors.ErrorCode.INVALID_MESSAGE`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from messenger.api.errors import ApiError, ErrorCode
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.codec import Reader
from messenger.mls.content import ContentType, PrivateMessage, PublicMessage, SenderType
from messenger.mls.credentials import Credential, CredentialType
from messenger.mls.errors import DecodeError
from messenger.mls.key_package import KeyPackage
from messenger.mls.leaf_node import LeafNodeSource
from messenger.mls.messages import MLSMessage
from messenger.mls.welcome import GroupInfo, Welcome

__all__ = [
    "FrameKind",
    "GroupMessageHeader",
    "IssuedCredential",
    "KeyPackageLeaf",
    "check_key_package",
    "check_welcome",
    "parse_group_info",
    "parse_group_message",
]


class FrameKind(enum.Enum):
    """The content type of a group message (RFC 9420 §6)."""

    APPLICATION = "application"
    PROPOSAL = "proposal"
    COMMIT = "commit"


_KINDS = {
    ContentType.APPLICATION: FrameKind.APPLICATION,
    ContentType.PROPOSAL: FrameKind.PROPOSAL,
    ContentType.COMMIT: FrameKind.COMMIT,
}


@dataclass(frozen=True, slots=True)
class GroupMessageHeader:
    """The clear header of a PublicMessage or PrivateMessage."""

    group_id: bytes
    epoch: int
    kind: FrameKind
    external_commit: bool


def _decode(data: bytes, what: str) -> MLSMessage:
    try:
        return MLSMessage.from_bytes(data)
    except Exception:  # hostile input: any failure to decode is the sender's
        raise ApiError(ErrorCode.INVALID_MESSAGE, f"{what} is not a valid MLSMessage") from None


def parse_group_message(data: bytes) -> GroupMessageHeader:
    """The header of a group message; :class:`ApiError` if it is not one."""
    body = _decode(data, "message").body
    if isinstance(body, PrivateMessage):
        return GroupMessageHeader(body.group_id, body.epoch, _KINDS[body.content_type], False)
    if isinstance(body, PublicMessage):
        content = body.content
        external = content.sender.sender_type == SenderType.NEW_MEMBER_COMMIT
        return GroupMessageHeader(
            content.group_id, content.epoch, _KINDS[content.content_type], external
        )
    raise ApiError(
        ErrorCode.WRONG_MESSAGE_TYPE,
        "expected a PublicMessage or PrivateMessage",
    )


def check_welcome(data: bytes) -> None:
    """:class:`ApiError` unless ``data`` is an MLSMessage carrying a Welcome."""
    if not isinstance(_decode(data, "welcome").body, Welcome):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "welcome: expected a Welcome")


def parse_group_info(data: bytes) -> tuple[bytes, int]:
    """``(group_id, epoch)`` of an MLSMessage carrying a GroupInfo."""
    body = _decode(data, "group_info").body
    if not isinstance(body, GroupInfo):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "group_info: expected a GroupInfo")
    return body.group_context.group_id, body.group_context.epoch


@dataclass(frozen=True, slots=True)
class KeyPackageLeaf:
    """Who a verified KeyPackage claims to be: its leaf's key and credential.

    ``credential`` is the server credential carried in the leaf's
    ``BasicCredential`` identity (the ``MessengerCredential`` struct of
    :mod:`messenger.client.identity`), or None if the identity is not one.
    """

    signature_key: bytes
    credential: IssuedCredential | None


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """The fields of a server credential (:func:`messenger.api.signing.credential_tbs`)."""

    account_id: str
    client_id: str
    signature_key: bytes
    issued_at: int
    signature: bytes


_CREDENTIAL_VERSION = 1


def _issued_credential(credential: Credential) -> IssuedCredential | None:
    if credential.credential_type != CredentialType.BASIC:
        return None
    try:
        r = Reader(bytes(credential.identity))
        if r.u8() != _CREDENTIAL_VERSION:
            return None
        account_id = r.opaque().decode("ascii")
        client_id = r.opaque().decode("ascii")
        signature_key = r.opaque()
        issued_at = r.u64()
        signature = r.opaque()
        r.finish()
    except (DecodeError, UnicodeDecodeError):
        return None
    return IssuedCredential(account_id, client_id, signature_key, issued_at, signature)


def check_key_package(data: bytes) -> KeyPackageLeaf:
    """The leaf of ``data``; :class:`ApiError` unless it is a KeyPackage whose signatures verify.

    RFC 9420 §10.1: a supported cipher suite, a leaf node of source
    ``key_package`` whose signature verifies, and the KeyPackage signature
    by the leaf's signature key. Whether the leaf belongs to the uploader is
    for the caller to check.
    """
    body = _decode(data, "key package").body
    if not isinstance(body, KeyPackage):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "expected a KeyPackage")
    try:
        suite = get_cipher_suite(body.cipher_suite)
        leaf = body.leaf_node
        ok = (
            leaf.leaf_node_source == LeafNodeSource.KEY_PACKAGE
            and leaf.verify_signature(suite)
            and body.verify_signature(suite)
        )
    except Exception:  # unsupported suite, malformed keys: the uploader's fault
        ok = False
    if not ok:
        raise ApiError(ErrorCode.INVALID_MESSAGE, "the KeyPackage does not verify")
    return KeyPackageLeaf(bytes(leaf.signature_key), _issued_credential(leaf.credential))
