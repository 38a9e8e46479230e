"""Signing and protecting messages: PublicMessage and PrivateMessage (RFC 9420 §6).

Two layers, as in the figure of RFC 9420 §6:

* **Sign / verify** (RFC 9420 §6.1): :func:`sign_framed_content` and
  :func:`authenticate` make the ``FramedContentAuthData`` signature,
  ``SignWithLabel(., "FramedContentTBS", FramedContentTBS)``;
  :func:`verify_content_signature` checks it with the sender's signature key.
* **Protect / unprotect** (RFC 9420 §6.2, §6.3): a :class:`FramingContext`
  holds one epoch's framing keys and turns an ``AuthenticatedContent`` into a
  ``PublicMessage`` (membership tag) or a ``PrivateMessage`` (secret-tree
  encryption, sender data encryption, padding) and back.

Unprotecting is the trust boundary of convention 3: a decoded PublicMessage
or PrivateMessage is unverified; :meth:`FramingContext.unprotect_public` and
:meth:`FramingContext.unprotect_private` check group, epoch, membership tag
or AEAD, padding and sender, and return the ``AuthenticatedContent``. Its
signature is checked by the caller, who knows the sender's key, with
:func:`verify_content_signature` -- or, for PrivateMessages, by
``unprotect_private`` itself when given ``signature_key_of``, which then
checks it before the ratchet key is consumed.

Errors: wrong group -> :class:`ValidationError`, wrong epoch ->
:class:`EpochError`, bad membership tag or signature ->
:class:`AuthenticationError`, AEAD failure, replayed or out-of-window
generation -> :class:`DecryptionError` (the secret tree's
``GenerationError`` subclasses), malformed plaintext -> :class:`DecodeError`.
A failed unprotect leaves the secret tree as it was.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from .ciphersuite import CipherSuite, HmacKey, RandomSource, kdf_label_prefix
from .codec import Reader, encode_varint
from .commit import Commit
from .content import (
    AuthenticatedContent,
    Content,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PublicMessage,
    Sender,
    SenderType,
    WireFormat,
)
from .errors import AuthenticationError, DecodeError, EpochError, UsageError, ValidationError
from .group_context import GroupContext, ProtocolVersion
from .proposals import Proposal, ProposalType
from .secret_tree import RatchetType, SecretTree, ratchet_type_for

__all__ = [
    "DEFAULT_PADDING_BLOCK",
    "FramingContext",
    "GroupContextInput",
    "authenticate",
    "framed_content_tbs_bytes",
    "sign_framed_content",
    "verify_content_signature",
]

#: PrivateMessage plaintexts are padded to a multiple of this many bytes
#: (RFC 9420 §6.3.1, §15.1) unless a :class:`FramingContext` says otherwise.
DEFAULT_PADDING_BLOCK: Final = 32

_TBS_LABEL: Final = b"FramedContentTBS"
_VERSION: Final = ProtocolVersion.MLS10.to_bytes(2, "big")
_REUSE_GUARD_LEN: Final = 4
_SENDER_DATA_LEN: Final = 4 + 4 + _REUSE_GUARD_LEN
_PRIVATE_WIRE_FORMAT: Final = WireFormat.PRIVATE_MESSAGE.to_bytes(2, "big")
_MEMBER: Final = SenderType.MEMBER.to_bytes(1, "big")
_APPLICATION: Final = ContentType.APPLICATION.to_bytes(1, "big")

#: Where a GroupContext can come from: the struct, its encoding (cached by a
#: :class:`FramingContext`), or nothing for senders that do not sign it.
GroupContextInput = GroupContext | bytes | None


# -- signatures (RFC 9420 §6.1) -------------------------------------------------


def _tbs_bytes(
    wire_format: WireFormat, sender: Sender, content_bytes: bytes, group_context: GroupContextInput
) -> bytes:
    """The encoded ``FramedContentTBS`` (RFC 9420 §6.1), from encoded parts."""
    head = _VERSION + wire_format.to_bytes(2, "big") + content_bytes
    if not sender.signs_with_group_context:
        return head
    if group_context is None:
        raise UsageError("a member or new_member_commit signature covers the GroupContext")
    if isinstance(group_context, GroupContext):
        return head + group_context.to_bytes()
    return head + group_context


def framed_content_tbs_bytes(
    wire_format: WireFormat, content: FramedContent, group_context: GroupContextInput
) -> bytes:
    """The encoded ``FramedContentTBS`` for ``content`` (RFC 9420 §6.1).

    ``group_context`` is used only for ``member`` and ``new_member_commit``
    senders, and :class:`UsageError` if such a sender has none.
    """
    return _tbs_bytes(wire_format, content.sender, content.to_bytes(), group_context)


def sign_framed_content(
    suite: CipherSuite,
    signature_private_key: bytes,
    wire_format: WireFormat,
    content: FramedContent,
    group_context: GroupContextInput,
) -> bytes:
    """``SignWithLabel(sig_priv, "FramedContentTBS", FramedContentTBS)`` (RFC 9420 §6.1).

    Just the signature: a committer needs it before it can compute the
    confirmation tag (RFC 9420 §8.2), then builds the ``AuthenticatedContent``.
    """
    tbs = framed_content_tbs_bytes(wire_format, content, group_context)
    return suite.sign_with_label(signature_private_key, _TBS_LABEL, tbs)


def authenticate(
    suite: CipherSuite,
    signature_private_key: bytes,
    wire_format: WireFormat,
    content: FramedContent,
    group_context: GroupContextInput,
    confirmation_tag: bytes | None = None,
) -> AuthenticatedContent:
    """Sign ``content`` into an ``AuthenticatedContent`` (RFC 9420 §6.1).

    ``confirmation_tag`` must be given exactly for a commit (RFC 9420 §6.1);
    see :mod:`messenger.mls.transcript` for how a committer computes it.
    """
    signature = sign_framed_content(
        suite, signature_private_key, wire_format, content, group_context
    )
    return AuthenticatedContent(
        wire_format, content, FramedContentAuthData(signature, confirmation_tag)
    )


def verify_content_signature(
    suite: CipherSuite,
    authenticated_content: AuthenticatedContent,
    sender_signature_key: bytes,
    group_context: GroupContextInput,
) -> None:
    """``VerifyWithLabel`` of a message signature (RFC 9420 §6.1).

    ``sender_signature_key`` is the key the sender type calls for (RFC 9420
    §6.1): the member's leaf, ``external_senders``, the Commit's path leaf or
    the Add's KeyPackage leaf. :class:`AuthenticationError` if it does not
    verify.
    """
    content = authenticated_content.content
    tbs = _tbs_bytes(
        authenticated_content.wire_format, content.sender, content.to_bytes(), group_context
    )
    if not suite.verify_with_label(
        sender_signature_key, _TBS_LABEL, tbs, authenticated_content.auth.signature
    ):
        raise AuthenticationError("FramedContent signature does not verify")


# -- protection (RFC 9420 §6.2, §6.3) ---------------------------------------------


def _xor_reuse_guard(nonce: bytes, reuse_guard: bytes) -> bytes:
    """RFC 9420 §6.3.1: the reuse guard XORed into the first four nonce bytes."""
    head = int.from_bytes(nonce[:4], "big") ^ int.from_bytes(reuse_guard, "big")
    return head.to_bytes(4, "big") + nonce[4:]


def _check_external_content(content: FramedContent) -> None:
    """RFC 9420 §6.1: what each non-member sender type may send."""
    sender_type = content.sender.sender_type
    body = content.content
    if sender_type == SenderType.EXTERNAL:
        if not isinstance(body, Proposal):
            raise ValidationError("an external sender may only send proposals")
    elif sender_type == SenderType.NEW_MEMBER_PROPOSAL:
        if not isinstance(body, Proposal) or body.proposal_type != ProposalType.ADD:
            raise ValidationError("a new_member_proposal sender may only send an Add")
    elif sender_type == SenderType.NEW_MEMBER_COMMIT and content.content_type != (
        ContentType.COMMIT
    ):
        raise ValidationError("a new_member_commit sender may only send a commit")


def _decode_private_content(
    plaintext: bytes, content_type: ContentType
) -> tuple[Content, int, FramedContentAuthData]:
    """Decode a ``PrivateMessageContent`` (RFC 9420 §6.3.1).

    The same as ``PrivateMessageContent.from_bytes``, but also returns where
    the content's encoding ends, so that the signature input can be built
    from the plaintext without encoding the content again.
    """
    r = Reader(plaintext)
    body: Content
    if content_type == ContentType.APPLICATION:
        body = r.opaque()
    elif content_type == ContentType.PROPOSAL:
        body = Proposal.decode(r)
    else:
        body = Commit.decode(r)
    content_end = r.position
    auth = FramedContentAuthData.decode(r, content_type)
    padding = r.read(r.remaining())
    # RFC 9420 §6.3.1: "A receiver MUST verify that there are no non-zero
    # bytes in the padding field".
    if padding.count(0) != len(padding):
        raise DecodeError("non-zero padding in PrivateMessageContent")
    return body, content_end, auth


class _SenderDataKdf:
    """``sender_data_key`` and ``sender_data_nonce`` (RFC 9420 §6.3.2), fast.

    ``ExpandWithLabel(sender_data_secret, "key" | "nonce", sample, Nk | Nn)``
    where both lengths are at most ``KDF.Nh``, so HKDF-Expand is a single
    HMAC over ``KDFLabel || 0x01`` (RFC 5869 §2.3). The HMAC key is fixed
    for the epoch: one :class:`~messenger.mls.ciphersuite.HmacKey` serves
    every message. The message-protection vectors pin the result to
    ``ExpandWithLabel``.
    """

    __slots__ = ("_hash_len", "_key_len", "_key_prefix", "_mac", "_nonce_len", "_nonce_prefix")

    def __init__(self, suite: CipherSuite, sender_data_secret: bytes) -> None:
        if suite.key_len > suite.hash_len or suite.nonce_len > suite.hash_len:
            raise UsageError("AEAD key or nonce longer than the hash is not supported")
        self._mac = HmacKey(suite, sender_data_secret).mac
        self._hash_len = suite.hash_len
        self._key_len = suite.key_len
        self._nonce_len = suite.nonce_len
        self._key_prefix = kdf_label_prefix(b"key", suite.key_len)
        self._nonce_prefix = kdf_label_prefix(b"nonce", suite.nonce_len)

    def key_nonce(self, ciphertext: bytes) -> tuple[bytes, bytes]:
        # RFC 9420 §6.3.2: the first KDF.Nh bytes, or all of a shorter ciphertext.
        sample = ciphertext[: self._hash_len]
        tail = encode_varint(len(sample)) + sample + b"\x01"
        key = self._mac(self._key_prefix + tail)[: self._key_len]
        nonce = self._mac(self._nonce_prefix + tail)[: self._nonce_len]
        return key, nonce


@dataclass(frozen=True, slots=True, eq=False)
class FramingContext:
    """One epoch's keys for protecting and unprotecting messages (RFC 9420 §6).

    ``secret_tree`` is the epoch's :class:`SecretTree` and is mutated by
    :meth:`protect_private` and :meth:`unprotect_private`. Other fields are
    fixed for the epoch. ``padding_block``: PrivateMessage plaintexts are
    padded with zero bytes to a multiple of it (0 or 1: no padding).
    """

    suite: CipherSuite
    group_context: GroupContext
    membership_key: bytes
    sender_data_secret: bytes
    secret_tree: SecretTree
    padding_block: int = DEFAULT_PADDING_BLOCK
    #: The encoded GroupContext, for signatures and membership tags.
    group_context_bytes: bytes = field(init=False, repr=False)
    #: ``group_id<V> || epoch``, the common head of every AAD (RFC 9420 §6.3).
    _aad_head: bytes = field(init=False, repr=False)
    _sender_data_kdf: _SenderDataKdf = field(init=False, repr=False)

    def __post_init__(self) -> None:
        suite = self.suite
        if self.group_context.cipher_suite != suite.suite_id:
            raise UsageError("the GroupContext is for another cipher suite")
        if self.secret_tree.suite.suite_id != suite.suite_id:
            raise UsageError("the secret tree is for another cipher suite")
        for name in ("membership_key", "sender_data_secret"):
            if len(getattr(self, name)) != suite.hash_len:
                raise UsageError(f"{name} must be {suite.hash_len} bytes")
        if self.padding_block < 0:
            raise UsageError("padding_block must not be negative")
        gc = self.group_context
        object.__setattr__(self, "group_context_bytes", gc.to_bytes())
        head = encode_varint(len(gc.group_id)) + gc.group_id + gc.epoch.to_bytes(8, "big")
        object.__setattr__(self, "_aad_head", head)
        object.__setattr__(self, "_sender_data_kdf", _SenderDataKdf(suite, self.sender_data_secret))

    @property
    def group_id(self) -> bytes:
        return self.group_context.group_id

    @property
    def epoch(self) -> int:
        return self.group_context.epoch

    # -- checks -------------------------------------------------------------------

    def _check_incoming(self, group_id: bytes, epoch: int) -> None:
        if group_id != self.group_context.group_id:
            raise ValidationError("message is for another group")
        if epoch != self.group_context.epoch:
            raise EpochError(
                f"message is for epoch {epoch}, this context is epoch {self.group_context.epoch}"
            )

    def _check_outgoing(self, content: AuthenticatedContent, wire_format: WireFormat) -> None:
        if content.wire_format != wire_format:
            raise UsageError(f"content was signed for {content.wire_format.name.lower()}")
        framed = content.content
        if framed.group_id != self.group_context.group_id or framed.epoch != self.epoch:
            raise UsageError("content is for another group or epoch")

    # -- signatures -----------------------------------------------------------------

    def sign(
        self,
        signature_private_key: bytes,
        wire_format: WireFormat,
        content: FramedContent,
        confirmation_tag: bytes | None = None,
    ) -> AuthenticatedContent:
        """:func:`authenticate` with this epoch's GroupContext."""
        return authenticate(
            self.suite,
            signature_private_key,
            wire_format,
            content,
            self.group_context_bytes,
            confirmation_tag,
        )

    def verify_signature(self, content: AuthenticatedContent, sender_signature_key: bytes) -> None:
        """:func:`verify_content_signature` with this epoch's GroupContext."""
        verify_content_signature(
            self.suite, content, sender_signature_key, self.group_context_bytes
        )

    # -- PublicMessage (RFC 9420 §6.2) --------------------------------------------

    def _membership_tag(self, content: FramedContent, auth: FramedContentAuthData) -> bytes:
        """``MAC(membership_key, AuthenticatedContentTBM)`` (RFC 9420 §6.2)."""
        tbs = _tbs_bytes(
            WireFormat.PUBLIC_MESSAGE, content.sender, content.to_bytes(), self.group_context_bytes
        )
        return self.suite.mac(self.membership_key, tbs + auth.to_bytes())

    def protect_public(self, content: AuthenticatedContent) -> PublicMessage:
        """Wrap signed content in a PublicMessage (RFC 9420 §6.2).

        Member senders get a ``membership_tag``. Application data cannot be
        sent this way (RFC 9420 §6: applications MUST use PrivateMessage):
        :class:`UsageError`.
        """
        self._check_outgoing(content, WireFormat.PUBLIC_MESSAGE)
        framed = content.content
        if framed.content_type == ContentType.APPLICATION:
            raise UsageError("application messages MUST be sent as PrivateMessage")
        if framed.sender.sender_type != SenderType.MEMBER:
            return PublicMessage(framed, content.auth)
        return PublicMessage(framed, content.auth, self._membership_tag(framed, content.auth))

    def unprotect_public(self, message: PublicMessage) -> AuthenticatedContent:
        """Check a PublicMessage and return its content (RFC 9420 §6.2).

        Checks the group and epoch, that it is not application data, what
        non-member senders may send (RFC 9420 §6.1) and, for members, the
        membership tag in constant time. The signature is not checked: the
        caller looks up the sender's key (which also shows that a member's
        leaf is not blank) and calls :func:`verify_content_signature`.
        """
        framed = message.content
        self._check_incoming(framed.group_id, framed.epoch)
        if framed.content_type == ContentType.APPLICATION:
            raise ValidationError("application data MUST NOT be sent as a PublicMessage")
        if framed.sender.sender_type == SenderType.MEMBER:
            tag = message.membership_tag
            if tag is None:  # excluded by PublicMessage itself; kept for clarity
                raise ValidationError("a member's PublicMessage needs a membership_tag")
            expected = self._membership_tag(framed, message.auth)
            if not hmac.compare_digest(expected, tag):
                raise AuthenticationError("membership_tag does not verify")
        else:
            _check_external_content(framed)
        return AuthenticatedContent(WireFormat.PUBLIC_MESSAGE, framed, message.auth)

    # -- PrivateMessage (RFC 9420 §6.3) -------------------------------------------

    def protect_private(
        self, content: AuthenticatedContent, random: RandomSource
    ) -> PrivateMessage:
        """Encrypt signed content from a member into a PrivateMessage (RFC 9420 §6.3).

        Takes the next generation of the sender's handshake or application
        ratchet, XORs a fresh 4-byte reuse guard from ``random`` into the
        nonce (RFC 9420 §6.3.1), pads the plaintext with zero bytes to a
        multiple of ``padding_block``, and encrypts the SenderData with a key
        and nonce from ``sender_data_secret`` and a ciphertext sample
        (RFC 9420 §6.3.2).
        """
        self._check_outgoing(content, WireFormat.PRIVATE_MESSAGE)
        framed = content.content
        sender = framed.sender
        if sender.sender_type != SenderType.MEMBER:
            # RFC 9420 §6.3.2: SenderData is built only from a member sender.
            raise UsageError("only members can send a PrivateMessage")
        reuse_guard = random(_REUSE_GUARD_LEN)
        if len(reuse_guard) != _REUSE_GUARD_LEN:
            raise UsageError("the random source returned the wrong number of bytes")

        # RFC 9420 §6.3.1: PrivateMessageContent = content || auth || padding.
        body = framed.content
        if isinstance(body, bytes):
            content_type = ContentType.APPLICATION
            plaintext = encode_varint(len(body)) + body
        else:
            content_type = framed.content_type
            plaintext = body.to_bytes()
        plaintext += content.auth.to_bytes()
        block = self.padding_block
        if block > 1:
            plaintext += bytes(-len(plaintext) % block)

        suite = self.suite
        key = self.secret_tree.next_key(sender.index, ratchet_type_for(content_type))
        head = self._aad_head + content_type.to_bytes(1, "big")
        aad = head + encode_varint(len(framed.authenticated_data)) + framed.authenticated_data
        ciphertext = suite.aead_seal(
            key.key, _xor_reuse_guard(key.nonce, reuse_guard), aad, plaintext
        )

        # RFC 9420 §6.3.2: SenderData under a key sampled from the ciphertext.
        # SenderData: uint32 leaf_index, uint32 generation, opaque reuse_guard[4].
        sender_data = (
            sender.index.to_bytes(4, "big") + key.generation.to_bytes(4, "big") + reuse_guard
        )
        sd_key, sd_nonce = self._sender_data_kdf.key_nonce(ciphertext)
        encrypted_sender_data = suite.aead_seal(sd_key, sd_nonce, head, sender_data)
        return PrivateMessage(
            framed.group_id,
            framed.epoch,
            content_type,
            framed.authenticated_data,
            encrypted_sender_data,
            ciphertext,
        )

    def seal_application(
        self,
        leaf_index: int,
        signature_private_key: bytes,
        data: bytes,
        authenticated_data: bytes,
        random: RandomSource,
    ) -> bytes:
        """This member's application message as an encoded ``MLSMessage`` (RFC 9420 §6).

        The same bytes as ``MLSMessage(protect_private(sign(signature_private_key,
        PRIVATE_MESSAGE, FramedContent(group_id, epoch, Sender.member(leaf_index),
        authenticated_data, data)), random)).to_bytes()``, built straight from
        the parts: an application message is the one message sent over and over.
        """
        suite = self.suite
        vl_authenticated_data = encode_varint(len(authenticated_data)) + authenticated_data
        vl_data = encode_varint(len(data)) + data
        # FramedContentTBS (RFC 9420 §6.1): version, wire_format, then the
        # FramedContent -- group_id<V>, epoch, sender (member, leaf_index),
        # authenticated_data<V>, content_type, application_data<V> -- and
        # the GroupContext.
        tbs = b"".join(
            (
                _VERSION,
                _PRIVATE_WIRE_FORMAT,
                self._aad_head,
                _MEMBER,
                leaf_index.to_bytes(4, "big"),
                vl_authenticated_data,
                _APPLICATION,
                vl_data,
                self.group_context_bytes,
            )
        )
        signature = suite.sign_with_label(signature_private_key, _TBS_LABEL, tbs)
        reuse_guard = random(_REUSE_GUARD_LEN)
        if len(reuse_guard) != _REUSE_GUARD_LEN:
            raise UsageError("the random source returned the wrong number of bytes")
        # RFC 9420 §6.3.1: PrivateMessageContent = content || auth || padding.
        plaintext = vl_data + encode_varint(len(signature)) + signature
        block = self.padding_block
        if block > 1:
            plaintext += bytes(-len(plaintext) % block)
        key = self.secret_tree.next_key(leaf_index, RatchetType.APPLICATION)
        head = self._aad_head + _APPLICATION
        ciphertext = suite.aead_seal(
            key.key,
            _xor_reuse_guard(key.nonce, reuse_guard),
            head + vl_authenticated_data,
            plaintext,
        )
        # RFC 9420 §6.3.2: SenderData under a key sampled from the ciphertext.
        sender_data = (
            leaf_index.to_bytes(4, "big") + key.generation.to_bytes(4, "big") + reuse_guard
        )
        sd_key, sd_nonce = self._sender_data_kdf.key_nonce(ciphertext)
        encrypted_sender_data = suite.aead_seal(sd_key, sd_nonce, head, sender_data)
        # MLSMessage (RFC 9420 §6): version, wire_format, then the
        # PrivateMessage: group_id<V>, epoch, content_type, authenticated_data<V>,
        # encrypted_sender_data<V>, ciphertext<V>.
        return b"".join(
            (
                _VERSION,
                _PRIVATE_WIRE_FORMAT,
                head,
                vl_authenticated_data,
                encode_varint(len(encrypted_sender_data)),
                encrypted_sender_data,
                encode_varint(len(ciphertext)),
                ciphertext,
            )
        )

    def _open_sender_data(
        self, message: PrivateMessage, is_member: Callable[[int], bool]
    ) -> tuple[int, int, bytes, bytes, bytes]:
        """RFC 9420 §6.3.2: the sender of a PrivateMessage, from its SenderData.

        ``(leaf, generation, reuse_guard, head, vl_authenticated_data)``:
        ``head`` is ``group_id<V> || epoch || content_type``, and the content
        AAD is ``head || vl_authenticated_data``.
        """
        self._check_incoming(message.group_id, message.epoch)
        head = self._aad_head + message.content_type.to_bytes(1, "big")
        sd_key, sd_nonce = self._sender_data_kdf.key_nonce(message.ciphertext)
        sender_data = self.suite.aead_open(sd_key, sd_nonce, head, message.encrypted_sender_data)
        # SenderData: uint32 leaf_index, uint32 generation, opaque reuse_guard[4].
        if len(sender_data) != _SENDER_DATA_LEN:
            raise DecodeError(f"SenderData is {len(sender_data)} bytes, not {_SENDER_DATA_LEN}")
        leaf = int.from_bytes(sender_data[:4], "big")
        if leaf >= self.secret_tree.n_leaves or not is_member(leaf):
            raise ValidationError(f"sender leaf {leaf} is not a member of the group")
        authenticated_data = message.authenticated_data
        return (
            leaf,
            int.from_bytes(sender_data[4:8], "big"),
            sender_data[8:],
            head,
            encode_varint(len(authenticated_data)) + authenticated_data,
        )

    def _signed_content(
        self, leaf: int, head: bytes, vl_authenticated_data: bytes, content: bytes
    ) -> bytes:
        """FramedContentTBS (RFC 9420 §6.1) of a member's PrivateMessage.

        From the parts at hand: the FramedContent is the AAD's fields in
        their own order, then the content's encoding, which begins the
        plaintext; then the GroupContext.
        """
        return b"".join(
            (
                _VERSION,
                _PRIVATE_WIRE_FORMAT,
                self._aad_head,
                _MEMBER,
                leaf.to_bytes(4, "big"),
                vl_authenticated_data,
                head[-1:],
                content,
                self.group_context_bytes,
            )
        )

    def unprotect_private(
        self,
        message: PrivateMessage,
        *,
        is_member: Callable[[int], bool],
        signature_key_of: Callable[[int], bytes] | None = None,
    ) -> AuthenticatedContent:
        """Decrypt a PrivateMessage and return its content (RFC 9420 §6.3).

        ``is_member(leaf_index)`` says whether a leaf holds a member in this
        epoch (RFC 9420 §6.3.2: the sender's leaf MUST be non-blank).

        The ratchet key is consumed only once the content decrypts and
        decodes -- and, if ``signature_key_of(leaf_index)`` is given, once
        the signature verifies with the key it returns -- so a forged,
        replayed or corrupted message leaves the secret tree unchanged.
        Without ``signature_key_of`` the caller checks the signature with
        :meth:`verify_signature`.
        """
        leaf, generation, reuse_guard, head, vl_authenticated_data = self._open_sender_data(
            message, is_member
        )
        suite = self.suite
        content_type = message.content_type
        ciphertext = message.ciphertext
        aad = head + vl_authenticated_data

        def open_content(key: bytes, nonce: bytes) -> AuthenticatedContent:
            plaintext = suite.aead_open(key, _xor_reuse_guard(nonce, reuse_guard), aad, ciphertext)
            body, content_end, auth = _decode_private_content(plaintext, content_type)
            if signature_key_of is not None:
                tbs = self._signed_content(
                    leaf, head, vl_authenticated_data, plaintext[:content_end]
                )
                if not suite.verify_with_label(
                    signature_key_of(leaf), _TBS_LABEL, tbs, auth.signature
                ):
                    raise AuthenticationError("FramedContent signature does not verify")
            framed = FramedContent(
                message.group_id,
                message.epoch,
                Sender.member(leaf),
                message.authenticated_data,
                body,
            )
            return AuthenticatedContent(WireFormat.PRIVATE_MESSAGE, framed, auth)

        return self.secret_tree.open(leaf, ratchet_type_for(content_type), generation, open_content)

    def open_application(
        self,
        message: PrivateMessage,
        *,
        is_member: Callable[[int], bool],
        signature_key_of: Callable[[int], bytes],
    ) -> tuple[int, bytes]:
        """:meth:`unprotect_private` for an application message: ``(sender leaf, data)``.

        The same checks -- sender data, membership, AEAD, padding, the
        signature before the ratchet key is consumed -- without building the
        AuthenticatedContent: receiving application messages is the hot path.
        """
        if message.content_type != ContentType.APPLICATION:
            raise UsageError("open_application takes application messages only")
        leaf, generation, reuse_guard, head, vl_authenticated_data = self._open_sender_data(
            message, is_member
        )
        suite = self.suite
        ciphertext = message.ciphertext
        aad = head + vl_authenticated_data

        def open_data(key: bytes, nonce: bytes) -> bytes:
            plaintext = suite.aead_open(key, _xor_reuse_guard(nonce, reuse_guard), aad, ciphertext)
            # PrivateMessageContent (RFC 9420 §6.3.1): application_data<V>,
            # signature<V> (no confirmation tag), zero padding.
            r = Reader(plaintext)
            data = r.opaque()
            content_end = r.position
            signature = r.opaque()
            padding = plaintext[r.position :]
            if padding.count(0) != len(padding):
                raise DecodeError("non-zero padding in PrivateMessageContent")
            tbs = self._signed_content(leaf, head, vl_authenticated_data, plaintext[:content_end])
            if not suite.verify_with_label(signature_key_of(leaf), _TBS_LABEL, tbs, signature):
                raise AuthenticationError("FramedContent signature does not verify")
            return data

        return leaf, self.secret_tree.open(leaf, RatchetType.APPLICATION, generation, open_data)
