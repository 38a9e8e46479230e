"""What the server reads of MLS messages: the framing header, nothing more.

The Delivery Service treats MLS messages as opaque (RFC 9750 §5) except for
the fields it needs to route and order them, which RFC 9420 §6 leaves in the
clear on purpose: ``group_id``, ``epoch`` and ``content_type`` of a
PublicMessage or PrivateMessage, and the sender type of a PublicMessage
(to recognise an external commit, RFC 9420 §12.4.3.2). It also checks that a
Welcome and a GroupInfo are what they say, and verifies the signatures of
uploaded KeyPackages (RFC 9420 §10.1) so that junk cannot be handed out.

Three checks guard group membership (docs/threat-model.md):

* :func:`key_package_ref` -- the ``KeyPackageRef`` of a KeyPackage handed
  out by a claim (RFC 9420 §5.2), which the server remembers as evidence;
* :func:`welcome_key_package_refs` -- the ``new_member`` KeyPackageRefs of a
  Welcome, in the clear (RFC 9420 §12.4.3.1), matched against that evidence;
* :func:`verify_external_commit` -- the signature of an external commit
  over ``FramedContentTBS`` with the GroupContext of the GroupInfo the server
  holds (RFC 9420 §6.1, §12.4.3.2), by the joiner's leaf in its UpdatePath.

This module is the one seam between the server and :mod:`messenger.mls`:
any failure to decode is the sender's fault and becomes
:attr:`~messenger.api.errors.ErrorCode.INVALID_MESSAGE`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from messenger.api.contact_token import CONTACT_TOKEN_BYTES, CONTACT_TOKEN_EXTENSION
from messenger.api.credential import decode_credential
from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.models import Credential as IssuedCredential
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.codec import decode_all
from messenger.mls.commit import Commit
from messenger.mls.content import ContentType, PrivateMessage, PublicMessage, SenderType
from messenger.mls.credentials import Credential, CredentialType
from messenger.mls.errors import MLSError
from messenger.mls.extensions import Extension, ExtensionType, find_extension
from messenger.mls.framing import verify_content_signature
from messenger.mls.key_package import KeyPackage
from messenger.mls.leaf_node import LeafNode, LeafNodeSource
from messenger.mls.messages import MLSMessage
from messenger.mls.nodes import decode_node_values
from messenger.mls.welcome import GroupInfo, Welcome

__all__ = [
    "FrameKind",
    "GroupMessageHeader",
    "IssuedCredential",
    "KeyPackageLeaf",
    "check_key_package",
    "check_welcome",
    "key_package_delivery",
    "key_package_ref",
    "parse_group_info",
    "parse_group_message",
    "verify_external_commit",
    "welcome_key_package_refs",
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


def welcome_key_package_refs(data: bytes) -> tuple[bytes, ...]:
    """The ``new_member`` KeyPackageRefs of an MLSMessage carrying a Welcome.

    RFC 9420 §12.4.3.1: each ``EncryptedGroupSecrets`` names, in the clear,
    the KeyPackage of the new member it is encrypted to.
    """
    body = _decode(data, "welcome").body
    if not isinstance(body, Welcome):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "welcome: expected a Welcome")
    return tuple(bytes(entry.new_member) for entry in body.secrets)


def check_welcome(data: bytes) -> None:
    """:class:`ApiError` unless ``data`` is an MLSMessage carrying a Welcome."""
    welcome_key_package_refs(data)


def parse_group_info(data: bytes) -> tuple[bytes, int]:
    """``(group_id, epoch)`` of an MLSMessage carrying a GroupInfo."""
    body = _decode(data, "group_info").body
    if not isinstance(body, GroupInfo):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "group_info: expected a GroupInfo")
    return body.group_context.group_id, body.group_context.epoch


def group_info_leaves(data: bytes) -> tuple[tuple[str | None, str | None], ...]:
    """``(account ID, delivery address)`` of each leaf in the ``ratchet_tree``
    extension of a stored GroupInfo (RFC 9420 §12.4.3.3), None where a leaf has
    no server credential or no address; no leaves if it carries no tree.

    Not verified here: the GroupInfo was stored by a member, which could list
    anyone in it; what it names is used only together with a key to the
    group's sealed state, which only members hold (:mod:`.state_keys`).
    """
    body = _decode(data, "group_info").body
    if not isinstance(body, GroupInfo):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "group_info: expected a GroupInfo")
    inline = find_extension(body.extensions, ExtensionType.RATCHET_TREE)
    if inline is None:
        return ()
    try:
        values = decode_all(inline.extension_data, decode_node_values)
    except MLSError:
        return ()
    leaves = []
    for value in values:
        if isinstance(value, LeafNode):
            issued = _issued_credential(value.credential)
            leaves.append(
                (None if issued is None else issued.account_id, _delivery(value.extensions))
            )
    return tuple(leaves)


@dataclass(frozen=True, slots=True)
class KeyPackageLeaf:
    """Who a verified KeyPackage claims to be: its leaf's key and credential.

    ``credential`` is the server credential carried in the leaf's
    ``BasicCredential`` identity (the ``MessengerCredential`` struct of
    :mod:`messenger.api.credential`), or None if the identity is not one.
    """

    signature_key: bytes
    credential: IssuedCredential | None
    delivery: str | None = None
    """The leaf's delivery address (``delivery_queue`` extension), if it has one;
    "" if the extension is not ASCII (no address at all)."""
    contact_token: bytes | None = None
    """The account's contact token (``contact_token`` extension, 0xF003), if the
    leaf carries one (docs/metadata.md §1); read by :func:`check_key_package` only."""


def _delivery(extensions: tuple[Extension, ...]) -> str | None:
    ext = find_extension(extensions, DELIVERY_QUEUE_EXTENSION)
    if ext is None:
        return None
    data = bytes(ext.extension_data)
    return data.decode("ascii") if data.isascii() else ""


def _contact_token(extensions: tuple[Extension, ...]) -> bytes | None:
    """The leaf's contact token (None: no ``contact_token`` extension);
    ``invalid_message`` unless it is exactly :data:`CONTACT_TOKEN_BYTES` long."""
    ext = find_extension(extensions, CONTACT_TOKEN_EXTENSION)
    if ext is None:
        return None
    token = bytes(ext.extension_data)
    if len(token) != CONTACT_TOKEN_BYTES:
        raise ApiError(
            ErrorCode.INVALID_MESSAGE,
            f"the leaf's contact token extension must hold {CONTACT_TOKEN_BYTES} bytes",
        )
    return token


def _issued_credential(credential: Credential) -> IssuedCredential | None:
    """The server credential in a leaf's ``BasicCredential``, or None (not verified)."""
    if credential.credential_type != CredentialType.BASIC:
        return None
    return decode_credential(credential.identity)


def check_key_package(data: bytes) -> KeyPackageLeaf:
    """The leaf of ``data``; :class:`ApiError` unless it is a KeyPackage whose signatures verify.

    RFC 9420 §10.1: a supported cipher suite, a leaf node of source
    ``key_package`` whose signature verifies, and the KeyPackage signature
    by the leaf's signature key. Whether the leaf belongs to the uploader is
    for the caller to check. The leaf's contact token, if it carries one, must
    be :data:`CONTACT_TOKEN_BYTES` long (``invalid_message``).
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
    return KeyPackageLeaf(
        bytes(leaf.signature_key),
        _issued_credential(leaf.credential),
        _delivery(leaf.extensions),
        _contact_token(leaf.extensions),
    )


def key_package_delivery(data: bytes) -> str | None:
    """The delivery address in the leaf of a stored KeyPackage (see
    :attr:`KeyPackageLeaf.delivery`); ``data`` was accepted by :func:`check_key_package`."""
    body = _decode(data, "key package").body
    if not isinstance(body, KeyPackage):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "expected a KeyPackage")
    return _delivery(body.leaf_node.extensions)


def key_package_ref(data: bytes) -> bytes:
    """``MakeKeyPackageRef`` of a stored KeyPackage (RFC 9420 §5.2).

    ``data`` is an MLSMessage carrying a KeyPackage that
    :func:`check_key_package` accepted; the ref is the hash, with the
    KeyPackage's own cipher suite, that a Welcome to it names.
    """
    body = _decode(data, "key package").body
    if not isinstance(body, KeyPackage):
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "expected a KeyPackage")
    try:
        return body.ref(get_cipher_suite(body.cipher_suite))
    except MLSError:
        raise ApiError(ErrorCode.INVALID_MESSAGE, "the KeyPackage does not verify") from None


def verify_external_commit(data: bytes, group_info: bytes) -> KeyPackageLeaf:
    """The joiner's leaf of a verified external commit; :class:`ApiError` otherwise.

    ``data`` must be a PublicMessage from a ``new_member_commit`` sender
    carrying a Commit with an UpdatePath (RFC 9420 §12.4.3.2), for the group
    and epoch of ``group_info`` (the GroupInfo the server holds for the
    current epoch), and its signature must verify over ``FramedContentTBS``
    -- which for this sender type covers the GroupContext (RFC 9420 §6.1) --
    with the signature key of the UpdatePath's leaf (``leaf_node_source =
    commit``). Whose leaf that is, is for the caller to check.
    """
    body = _decode(data, "commit").body
    if not (
        isinstance(body, PublicMessage)
        and body.content.sender.sender_type == SenderType.NEW_MEMBER_COMMIT
        and isinstance(body.content.content, Commit)
    ):
        raise ApiError(ErrorCode.INVALID_MESSAGE, "not an external commit")
    path = body.content.content.path
    if path is None or path.leaf_node.leaf_node_source != LeafNodeSource.COMMIT:
        raise ApiError(
            ErrorCode.INVALID_MESSAGE,
            "an external commit must carry the joiner's leaf in its path (RFC 9420 §12.4.3.2)",
        )
    info = _decode(group_info, "group_info").body
    if not isinstance(info, GroupInfo):  # pragma: no cover - checked when stored
        raise ApiError(ErrorCode.WRONG_MESSAGE_TYPE, "group_info: expected a GroupInfo")
    context = info.group_context
    if (context.group_id, context.epoch) != (body.content.group_id, body.content.epoch):
        raise ApiError(
            ErrorCode.INVALID_MESSAGE, "the external commit is not for the stored GroupInfo"
        )
    leaf = path.leaf_node
    try:
        verify_content_signature(
            get_cipher_suite(context.cipher_suite),
            body.authenticated_content(),
            leaf.signature_key,
            context.to_bytes(),
        )
    except Exception:  # unsupported suite, malformed key, bad signature: the sender's fault
        raise ApiError(
            ErrorCode.INVALID_MESSAGE, "the external commit's signature does not verify"
        ) from None
    return KeyPackageLeaf(
        bytes(leaf.signature_key), _issued_credential(leaf.credential), _delivery(leaf.extensions)
    )
