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
decrypts the GroupInfo once the PSKs are known.

The joins themselves, which :class:`~messenger.mls.group.Group` wraps:

* :func:`join_welcome` -- the first epoch of a member from a Welcome: its
  PSKs, the GroupInfo and the tree verified, the key schedule and the
  confirmation tag checked, and a resumed group's rules (RFC 9420
  §12.4.3.1, §11.2, §11.3);
* :func:`join_by_external_commit` -- the first epoch of a member joining by
  an external Commit, and the Commit (RFC 9420 §12.4.3.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from .ciphersuite import CIPHER_SUITES, CipherSuite, RandomSource
from .codec import Reader, decode_all
from .commit import Commit
from .content import (
    ConfirmedTranscriptHashInput,
    FramedContent,
    FramedContentAuthData,
    PublicMessage,
    Sender,
    WireFormat,
)
from .credentials import Credential
from .epoch import LAST_EPOCH, advance_epoch, epoch_state
from .errors import AuthenticationError, DecodeError, UsageError, ValidationError
from .events import CommitResult, Member, StagedCommit
from .extensions import (
    Extension,
    ExtensionType,
    ExternalPub,
    RequiredCapabilities,
    check_unique_extensions,
    find_extension,
)
from .framing import sign_framed_content
from .group_context import ProtocolVersion
from .group_state import EpochState, GroupConfig
from .key_package import KeyPackage
from .key_package_bundle import KeyPackageBundle, default_capabilities
from .key_schedule import (
    epoch_from_joiner_secret,
    external_init,
    welcome_key_nonce,
    welcome_secret,
)
from .leaf_node import Capabilities, LeafNode
from .messages import MLSMessage
from .nodes import ParentNode, RatchetTree, decode_node_values
from .proposal_rules import (
    ProposalEntry,
    RuleContext,
    SuccessorValidator,
    apply_proposals,
    check_extension_support,
)
from .proposals import ExternalInit, PreSharedKey, Proposal, ProposalOrRef, Remove
from .psk import PreSharedKeyID, PSKType, ResumptionPSKUsage, describe_psk, psk_secret
from .ratchet_tree import (
    CredentialValidator,
    LeafNodePolicy,
    PublicTree,
    SignatureBatchVerifier,
)
from .transcript import (
    confirmed_transcript_hash,
    interim_transcript_hash,
    verify_confirmation_tag,
)
from .treekem import PrivateTree, create_update_path
from .welcome import EncryptedGroupSecrets, GroupInfo, GroupSecrets, PathSecret, Welcome

if TYPE_CHECKING:
    from .group import Group

__all__ = [
    "ExternalPskLookup",
    "NewMember",
    "encrypt_group_info",
    "join_by_external_commit",
    "join_welcome",
    "open_group_info",
    "open_group_secrets",
    "seal_welcome",
]

_WELCOME_LABEL: Final = b"Welcome"

#: PSKLabel numbers the PSKs of an epoch with uint16 ``index`` and ``count``
#: (RFC 9420 §8.4).
_MAX_PSKS: Final = 0xFFFF

#: The application's external PSKs (RFC 9420 §8.4): ``psk_id -> psk`` or
#: ``None`` if unknown. A ``Mapping`` works too.
ExternalPskLookup = Callable[[bytes], bytes | None]

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


# -- joining (RFC 9420 §12.4.3) -------------------------------------------------------


def join_welcome(
    welcome: bytes,
    bundle: KeyPackageBundle,
    *,
    ratchet_tree: bytes | RatchetTree | None,
    previous: Group | None,
    now: int | None,
    config: GroupConfig,
    identity: CredentialValidator,
    successor: SuccessorValidator,
    lookup: ExternalPskLookup,
    verify_signatures: SignatureBatchVerifier,
) -> EpochState:
    """The first epoch of a member joining from ``welcome`` (RFC 9420 §12.4.3.1).

    See :meth:`messenger.mls.group.Group.join_from_welcome`.
    """
    suite = bundle.suite
    kp = bundle.key_package
    message = MLSMessage.from_bytes(bytes(welcome)).welcome
    group_secrets = open_group_secrets(suite, message, kp, bundle.init_private_key)
    psk_values, resumption = _welcome_psks(suite, group_secrets.psks, lookup, previous)
    secret = psk_secret(suite, psk_values) if psk_values else None
    group_info = open_group_info(suite, message, group_secrets.joiner_secret, secret)
    context = group_info.group_context
    if context.cipher_suite != suite.suite_id or context.version != kp.version:
        raise ValidationError("the GroupInfo's suite or version is not the KeyPackage's")
    tree = _joined_tree(
        suite,
        group_info,
        ratchet_tree,
        identity=identity,
        now=now,
        max_lifetime=config.max_lifetime,
        verify_signatures=verify_signatures,
    )
    my_leaf = tree.find_leaf(kp.leaf_node)
    if my_leaf is None:
        raise ValidationError("the tree has no leaf for this KeyPackage (RFC 9420 §12.4.3.1)")
    # RFC 9420 §13.4: the joiner supports every GroupContext extension.
    check_extension_support(kp.leaf_node, context.extensions)
    if my_leaf == group_info.signer:
        raise ValidationError("the GroupInfo is signed by the joiner's own leaf")
    path_secret = group_secrets.path_secret
    private = PrivateTree.join(
        tree,
        my_leaf,
        bundle.encryption_private_key,
        committer=group_info.signer,
        path_secret=None if path_secret is None else path_secret.path_secret,
    )
    context_bytes = context.to_bytes()
    keys = epoch_from_joiner_secret(suite, group_secrets.joiner_secret, context_bytes, secret)
    verify_confirmation_tag(
        suite,
        keys.secrets.confirmation_key,
        context.confirmed_transcript_hash,
        group_info.confirmation_tag,
    )
    if resumption is not None:
        assert previous is not None
        _check_resumption(resumption, group_info, tree, previous, successor)
    return epoch_state(
        suite,
        config,
        context=context,
        tree=tree,
        private=private,
        secrets=keys.secrets,
        confirmation_tag=group_info.confirmation_tag,
        signature_private_key=bundle.signature_private_key,
    )


def _welcome_psks(
    suite: CipherSuite,
    ids: Sequence[PreSharedKeyID],
    lookup: ExternalPskLookup,
    previous: Group | None,
) -> tuple[list[tuple[PreSharedKeyID, bytes]], PreSharedKeyID | None]:
    """The PSK values of a Welcome's GroupSecrets (RFC 9420 §12.4.3.1)."""
    if len(ids) > _MAX_PSKS:
        raise ValidationError(f"a Welcome with {len(ids)} PSKs; PSKLabel counts to 65535 (§8.4)")
    values: list[tuple[PreSharedKeyID, bytes]] = []
    resumption: PreSharedKeyID | None = None
    for psk_id in ids:
        value: bytes | None = None
        if psk_id.psktype == PSKType.EXTERNAL:
            value = lookup(psk_id.psk_id)
        else:
            if psk_id.usage in (ResumptionPSKUsage.REINIT, ResumptionPSKUsage.BRANCH):
                if resumption is not None:
                    raise ValidationError(
                        "a Welcome with two reinit or branch PSKs (RFC 9420 §12.4.3.1)"
                    )
                resumption = psk_id
            if previous is not None and previous.group_id == psk_id.psk_group_id:
                value = previous.resumption_psk(psk_id.psk_epoch)
        if value is None:
            raise ValidationError(f"the Welcome needs a PSK not available: {describe_psk(psk_id)}")
        values.append((psk_id, value))
    return values, resumption


def _check_resumption(
    psk_id: PreSharedKeyID,
    group_info: GroupInfo,
    tree: PublicTree,
    previous: Group,
    successor: SuccessorValidator,
) -> None:
    """RFC 9420 §12.4.3.1: a Welcome resuming ``previous`` by reinit or branch."""
    context = group_info.group_context
    if context.epoch != 1:
        raise ValidationError("a reinitialised or branched group starts at epoch 1")
    new_members = [leaf.credential for _, leaf in tree.members()]
    old_members = [m.credential for m in previous.members()]
    if psk_id.usage == ResumptionPSKUsage.REINIT:
        reinit = previous.pending_reinit
        if reinit is None or psk_id.psk_epoch != previous.epoch:
            raise ValidationError("the previous group's last Commit was not this ReInit")
        if (
            context.group_id != reinit.group_id
            or context.version != reinit.version
            or context.cipher_suite != reinit.cipher_suite
            or context.extensions != reinit.extensions
        ):
            raise ValidationError("the new group does not match the ReInit (§11.2)")
        for old in old_members:
            if not any(successor(old, new) for new in new_members):
                raise ValidationError("a member of the old group is missing (RFC 9420 §11.2)")
    else:
        old_context = previous.group_context
        if (
            context.version != old_context.version
            or context.cipher_suite != old_context.cipher_suite
        ):
            raise ValidationError("a branch keeps the version and cipher suite (§11.3)")
        for new in new_members:
            if not any(successor(old, new) for old in old_members):
                raise ValidationError("a branch member is not in the old group (§11.3)")


def _joined_tree(
    suite: CipherSuite,
    group_info: GroupInfo,
    ratchet_tree: bytes | RatchetTree | None,
    *,
    identity: CredentialValidator,
    now: int | None,
    max_lifetime: int | None,
    verify_signatures: SignatureBatchVerifier,
) -> PublicTree:
    """The validated tree of a group being joined, and the GroupInfo checked
    against it (RFC 9420 §12.4.3.1, §12.4.3.3)."""
    check_unique_extensions(group_info.extensions)
    # Straight from the bytes to the node values: the same decoding as
    # RatchetTree.from_bytes, without a Node wrapper per node.
    inline = find_extension(group_info.extensions, ExtensionType.RATCHET_TREE)
    values: Sequence[LeafNode | ParentNode | None]
    if inline is not None:
        values = decode_all(inline.extension_data, decode_node_values)
    elif ratchet_tree is None:
        # The sender left the tree out (RFC 9420 §12.4.3.3) and none was
        # obtained otherwise: the joiner cannot go on with what it got.
        raise ValidationError(
            "the GroupInfo has no ratchet_tree extension and no tree was given (§12.4.3.3)"
        )
    elif isinstance(ratchet_tree, RatchetTree):
        values = ratchet_tree.values
    else:
        values = decode_all(ratchet_tree, decode_node_values)
    context = group_info.group_context
    check_unique_extensions(context.extensions)
    tree = PublicTree.from_nodes(suite, values)
    signer = tree.leaf(group_info.signer)
    if signer is None:
        raise ValidationError("the GroupInfo signer's leaf is blank (RFC 9420 §12.4.3.1)")
    try:
        suite.check_signature_public_key(signer.signature_key)  # RFC 9420 §5.1.1
    except ValidationError as exc:
        raise ValidationError(f"the GroupInfo signer {group_info.signer}: {exc}") from None
    if not group_info.verify_signature(suite, signer.signature_key):
        raise AuthenticationError("the GroupInfo signature does not verify (§12.4.3)")
    tree.validate(
        group_id=context.group_id,
        tree_hash=context.tree_hash,
        policy=LeafNodePolicy.for_group(
            context.extensions, identity, now=now, max_lifetime=max_lifetime
        ),
        verify_signatures=verify_signatures,
    )
    return tree


def join_by_external_commit(
    group_info: bytes,
    *,
    credential: Credential,
    signature_private_key: bytes,
    random: RandomSource,
    ratchet_tree: bytes | RatchetTree | None,
    capabilities: Capabilities | None,
    leaf_extensions: Sequence[Extension],
    resync: int | None,
    psks: Sequence[bytes],
    authenticated_data: bytes,
    now: int | None,
    config: GroupConfig,
    identity: CredentialValidator,
    successor: SuccessorValidator,
    lookup: ExternalPskLookup,
    verify_signatures: SignatureBatchVerifier,
) -> tuple[EpochState, CommitResult]:
    """The first epoch of a member joining by an external Commit, and the Commit
    (RFC 9420 §12.4.3.2); ``result.staged`` is already in the epoch.

    See :meth:`messenger.mls.group.Group.join_external`.
    """
    info = MLSMessage.from_bytes(bytes(group_info)).group_info
    context = info.group_context
    suite = CIPHER_SUITES.get(context.cipher_suite)
    if suite is None:
        raise ValidationError(
            f"the GroupInfo's cipher suite 0x{context.cipher_suite:04x} is not supported "
            "(RFC 9420 §12.4.3.2)"
        )
    if context.version != ProtocolVersion.MLS10:
        raise ValidationError(f"the GroupInfo's version {context.version} is not mls10 (§6)")
    if context.epoch == LAST_EPOCH:
        raise ValidationError("the group is at its last epoch: a Commit cannot follow (§8.1)")
    tree = _joined_tree(
        suite,
        info,
        ratchet_tree,
        identity=identity,
        now=now,
        max_lifetime=config.max_lifetime,
        verify_signatures=verify_signatures,
    )
    external_pub = ExternalPub.find_in(info.extensions)
    if external_pub is None:
        raise ValidationError("the GroupInfo has no external_pub (RFC 9420 §12.4.3.2)")
    if not suite.hpke.is_valid_public_key(external_pub.external_pub):
        # RFC 9420 §12.4.3.2, RFC 9180 §7.1.4: the joiner encrypts to it.
        raise ValidationError("the GroupInfo's external_pub is not a valid HPKE public key")
    kem_output, init_secret = external_init(suite, external_pub.external_pub, random)
    sender = Sender.new_member_commit()
    entries = [ProposalEntry(Proposal(ExternalInit(kem_output)), sender)]
    if resync is not None:
        if tree.leaf(resync) is None:
            raise UsageError(f"leaf {resync} is blank: nothing to resync")
        entries.append(ProposalEntry(Proposal(Remove(resync)), sender))
    psk_ids = [PreSharedKeyID.external(p, random(suite.hash_len)) for p in psks]
    entries.extend(ProposalEntry(Proposal(PreSharedKey(p)), sender) for p in psk_ids)
    rules = RuleContext(suite, context, tree, identity, successor, now, config.max_lifetime)
    applied = apply_proposals(rules, entries, committer=None, external=True)
    new_tree = applied.tree
    leaf_index = new_tree.reserve_free_leaf()
    if capabilities is None:
        required = RequiredCapabilities.find_in(context.extensions)
        capabilities = default_capabilities(
            suite,
            [
                *(e.extension_type for e in (*context.extensions, *leaf_extensions)),
                *(() if required is None else required.extension_types),
            ],
        )
    provisional = replace(context, epoch=context.epoch + 1, tree_hash=b"")
    created = create_update_path(
        new_tree,
        leaf_index,
        group_context=provisional,
        signature_private_key=signature_private_key,
        random=random,
        credential=credential,
        capabilities=capabilities,
        extensions=leaf_extensions,
    )
    values = [(p, _require_external(lookup, p)) for p in psk_ids]
    secret = psk_secret(suite, values) if values else None
    commit = Commit(tuple(ProposalOrRef.by_value(e.proposal) for e in entries), created.update_path)
    content = FramedContent(
        context.group_id, context.epoch, sender, bytes(authenticated_data), commit
    )
    wire_format = WireFormat.PUBLIC_MESSAGE
    signature = sign_framed_content(
        suite, signature_private_key, wire_format, content, context.to_bytes()
    )
    interim = interim_transcript_hash(
        suite, context.confirmed_transcript_hash, info.confirmation_tag
    )
    confirmed = confirmed_transcript_hash(
        suite, interim, ConfirmedTranscriptHashInput(wire_format, content, signature)
    )
    state, _ = advance_epoch(
        suite,
        config,
        created.group_context,
        confirmed,
        init_secret=init_secret,
        commit_secret=created.commit_secret,
        psk_secret=secret,
        tree=created.tree,
        private=created.private,
        signature_private_key=signature_private_key,
    )
    new_context = state.context
    tag = state.confirmation_tag
    message = MLSMessage(PublicMessage(content, FramedContentAuthData(signature, tag)))
    me = Member.from_leaf(leaf_index, created.update_path.leaf_node)
    previous: dict[int, LeafNode | None] = {leaf_index: None}
    previous.update((i, leaf) for i, leaf in applied.removed)
    staged = StagedCommit(
        group_id=context.group_id,
        epoch=new_context.epoch,
        committer=me,
        proposals=tuple(e.proposal for e in entries),
        added=(),
        removed=tuple(Member.from_leaf(i, leaf) for i, leaf in applied.removed),
        updated=(me,),
        external=True,
        self_removed=False,
        reinit=None,
        epoch_authenticator=state.secrets.epoch_authenticator,
        base_context=context.to_bytes(),
        state=None,
        previous_leaves=previous,
    )
    return state, CommitResult(message.to_bytes(), None, None, staged)


def _require_external(lookup: ExternalPskLookup, psk_id: PreSharedKeyID) -> bytes:
    value = lookup(psk_id.psk_id)
    if value is None:
        raise UsageError(f"unknown external PSK {psk_id.psk_id!r}")
    return value
