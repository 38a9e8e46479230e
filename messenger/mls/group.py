"""The group state machine: one member's view of an MLS group (RFC 9420 §8-§12).

:class:`Group` is what an application holds for each group it is in. It is
sans-I/O (architecture guide, convention 1): it takes and returns bytes
(``MLSMessage`` encodings), randomness is a ``Callable[[int], bytes]``
passed to every operation that needs it, and the time is an ``int`` passed
to the operations that check lifetimes.

How a member enters a group:

* :meth:`Group.create` -- a new group with this member alone (RFC 9420 §11);
* :meth:`Group.join_from_welcome` -- from a Welcome, with the ratchet tree
  inline or out of band (RFC 9420 §12.4.3.1);
* :meth:`Group.join_external` -- by an external Commit, from a GroupInfo
  with an ``external_pub`` (RFC 9420 §12.4.3.2);
* :meth:`Group.reinit` and :meth:`Group.branch` -- the first epoch of a
  group that resumes another (RFC 9420 §11.2, §11.3).

The two joins are worked out in :mod:`messenger.mls.joining`; every way
into an epoch ends in :mod:`messenger.mls.epoch` (key schedule, confirmation
tag, secret tree, interim transcript hash), and the transcript hashes are
those of :mod:`messenger.mls.transcript`.

What it does in a group: ``propose_*`` sends proposals (RFC 9420 §12.1) and
caches them for a later Commit; :meth:`Group.commit` makes a Commit with its
Welcome and GroupInfo (RFC 9420 §12.4.2); :meth:`Group.process` takes any
incoming handshake or application message and returns an event
(:mod:`messenger.mls.events`); :meth:`Group.encrypt` protects application
data (RFC 9420 §6.3); :meth:`Group.export_secret` and
:attr:`Group.epoch_authenticator` give the epoch's exported secrets (RFC 9420
§8.5, §8.7).

Stage, persist, merge (architecture guide, convention 4; RFC 9420 §14): a
Commit -- received or made -- is a :class:`~messenger.mls.events.StagedCommit`
holding the next epoch's whole state, and the group does not change until
:meth:`Group.merge` is called with it. :meth:`Group.to_bytes` (optionally
as if a staged commit were merged) and :meth:`Group.from_bytes` persist the
whole state exactly. :meth:`Group.checkpoint` and :meth:`Group.from_checkpoint`
persist it incrementally: the state without the secret trees' secrets when
more than they changed, and otherwise only the secret-tree slots that changed
(RFC 9420 §9), so that an application message costs the same at any group size.

Errors: anything wrong with what came from a peer raises an
:class:`~messenger.mls.errors.InvalidMessageError` subclass and leaves the
group exactly as it was (a PrivateMessage handshake key consumed while
decrypting is given back); a call the API does not allow raises
:class:`~messenger.mls.errors.UsageError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Final

from .ciphersuite import CipherSuite, RandomSource, get_cipher_suite
from .codec import vl_bytes
from .commit import Commit
from .content import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PublicMessage,
    Sender,
    SenderType,
    WireFormat,
)
from .credentials import Credential, CredentialType
from .epoch import LAST_EPOCH, advance_epoch, epoch_state
from .errors import (
    EpochError,
    MLSError,
    UsageError,
    ValidationError,
)
from .events import (
    ApplicationMessage,
    CommitResult,
    Event,
    Member,
    ProposalReceived,
    StagedCommit,
)
from .extensions import (
    Extension,
    ExtensionType,
    ExternalPub,
    ExternalSenders,
)
from .framing import FramingContext, verify_content_signature
from .group_context import GroupContext, ProtocolVersion
from .group_state import (
    CachedProposal,
    EpochState,
    GroupCheckpoint,
    GroupConfig,
    GroupState,
    PastEpoch,
    StateRecord,
)
from .joining import (
    ExternalPskLookup,
    encrypt_group_info,
    join_by_external_commit,
    join_welcome,
    seal_welcome,
)
from .key_package import KeyPackage
from .key_package_bundle import KeyPackageBundle
from .key_schedule import (
    epoch_from_epoch_secret,
    external_init_secret,
)
from .leaf_node import Capabilities, LeafNode, LeafNodeSource, LeafNodeTBS
from .messages import MLSMessage, message_digest
from .nodes import RatchetTree
from .proposal_rules import (
    AppliedProposals,
    ProposalEntry,
    RuleContext,
    SuccessorValidator,
    apply_proposals,
    check_proposal,
    path_required,
    same_credential,
    select_pending,
)
from .proposals import (
    Add,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalBody,
    ProposalOrRef,
    ReInit,
    Remove,
    Update,
)
from .psk import PreSharedKeyID, PSKType, ResumptionPSKUsage, describe_psk, psk_secret
from .ratchet_tree import (
    CredentialValidator,
    PublicTree,
    SignatureBatchVerifier,
    verify_signatures_sequentially,
)
from .secret_tree import SecretTree
from .transcript import (
    confirmation_tag,
    confirmed_transcript_hash,
    confirmed_transcript_hash_from_parts,
)
from .treekem import PrivateTree, create_update_path, process_update_path
from .welcome import GroupInfo, GroupInfoTBS

__all__ = [
    "ExternalPskLookup",
    "Group",
    "IdentityValidator",
    "accept_basic_credentials",
]

#: Validates a credential entering the group and its binding to the
#: signature key (RFC 9420 §5.3.1): ``(credential, signature_key) -> bool``.
#: Called for every new leaf: Adds, Updates, Commit paths, the whole tree
#: of a Welcome or external join, and external senders.
IdentityValidator = CredentialValidator


def accept_basic_credentials(credential: Credential, signature_key: bytes) -> bool:
    """The default :data:`IdentityValidator`: any basic credential, nothing else.

    An application with X.509 credentials supplies a validator that checks
    the chain and that its end-entity key is ``signature_key`` (RFC 9420 §5.3).
    """
    return credential.credential_type == CredentialType.BASIC


def _no_psks(psk_id: bytes) -> bytes | None:
    return None


def _lookup(psks: ExternalPskLookup | Mapping[bytes, bytes] | None) -> ExternalPskLookup:
    if psks is None:
        return _no_psks
    if isinstance(psks, Mapping):
        table = dict(psks)
        return table.get
    return psks


def _decode_message(data: bytes) -> MLSMessage:
    return MLSMessage.from_bytes(bytes(data))


def _key_package_of(value: KeyPackage | bytes) -> KeyPackage:
    """A KeyPackage given as the struct or as an ``MLSMessage`` (RFC 9420 §10)."""
    if isinstance(value, KeyPackage):
        return value
    return _decode_message(value).key_package


#: ``ProtocolVersion.mls10`` as encoded (RFC 9420 §6).
_MLS10: Final = ProtocolVersion.MLS10.to_bytes(2, "big")


class Group:
    """One member's state in one MLS group (RFC 9420).

    Not thread-safe. Build one with :meth:`create`, :meth:`join_from_welcome`,
    :meth:`join_external`, :meth:`reinit`, :meth:`branch` or
    :meth:`from_bytes`. ``identity`` validates every credential entering the
    group (default: :func:`accept_basic_credentials`), ``successor`` every
    credential replacing another (default: it may not change), and
    ``external_psks`` gives the application's external PSKs. These three are
    not part of the persisted state: pass them to :meth:`from_bytes` again.
    """

    __slots__ = (
        "_external_psks",
        "_framing",
        "_identity",
        "_past_framing",
        "_pending_commit",
        "_persisted",
        "_s",
        "_successor",
    )

    _s: GroupState
    _framing: FramingContext
    _past_framing: dict[int, FramingContext]
    _pending_commit: tuple[bytes, StagedCommit] | None
    #: What the last checkpoint persisted besides the secret trees: the state
    #: object, its proposals list and their number (held, so identity holds).
    _persisted: tuple[GroupState, list[CachedProposal], int] | None

    def __init__(
        self,
        state: GroupState,
        *,
        identity: IdentityValidator = accept_basic_credentials,
        successor: SuccessorValidator = same_credential,
        external_psks: ExternalPskLookup | Mapping[bytes, bytes] | None = None,
    ) -> None:
        """A group from its state; applications use the named constructors."""
        self._s = state
        self._identity = identity
        self._successor = successor
        self._external_psks = _lookup(external_psks)
        self._pending_commit = None
        self._persisted = None
        self._rebuild_framing()

    def _rebuild_framing(self) -> None:
        st = self._s.epoch
        self._framing = FramingContext(
            st.suite,
            st.context,
            st.secrets.membership_key,
            st.secrets.sender_data_secret,
            st.secret_tree,
            padding_block=self._s.config.padding_block,
        )
        self._past_framing = {}

    def __repr__(self) -> str:
        return (
            f"<Group id={self.group_id.hex()[:16]} epoch={self.epoch} "
            f"leaf={self.leaf_index} members={self._s.epoch.tree.member_count()}>"
        )

    # -- creating and joining ---------------------------------------------------------

    @classmethod
    def create(
        cls,
        bundle: KeyPackageBundle,
        random: RandomSource,
        *,
        group_id: bytes | None = None,
        extensions: Sequence[Extension] = (),
        config: GroupConfig | None = None,
        identity: IdentityValidator = accept_basic_credentials,
        successor: SuccessorValidator = same_credential,
        external_psks: ExternalPskLookup | Mapping[bytes, bytes] | None = None,
    ) -> Group:
        """A new group whose only member is the owner of ``bundle`` (RFC 9420 §11).

        The creator's leaf is the bundle's KeyPackage leaf. ``group_id``
        defaults to ``KDF.Nh`` random bytes (RFC 9420 §11 recommends it).
        ``extensions`` become the GroupContext extensions; the creator must
        support them (RFC 9420 §11.1, §13.4).
        """
        suite = bundle.suite
        kp = bundle.key_package
        leaf = kp.leaf_node
        if suite.hpke_public_key(bundle.encryption_private_key) != leaf.encryption_key:
            raise UsageError("the bundle's encryption key does not match its leaf")
        if suite.signature_public_key(bundle.signature_private_key) != leaf.signature_key:
            raise UsageError("the bundle's signature key does not match its leaf")
        if group_id is None:
            group_id = random(suite.hash_len)
        exts = tuple(extensions)
        tree = PublicTree.create(suite, leaf)
        context = GroupContext(suite.suite_id, bytes(group_id), 0, tree.tree_hash(), b"", exts)
        try:
            rules = RuleContext(suite, context, tree, identity, successor)
            check_proposal(
                rules,
                ProposalEntry(Proposal(GroupContextExtensions(exts)), Sender.member(0)),
            )
        except ValidationError as exc:
            raise UsageError(f"invalid group extensions: {exc}") from None
        secrets = epoch_from_epoch_secret(suite, random(suite.hash_len))
        # RFC 9420 §11: the interim transcript hash of epoch 0 covers a
        # confirmation tag over the empty confirmed transcript hash.
        tag = confirmation_tag(suite, secrets.confirmation_key, b"")
        config = config or GroupConfig()
        state = epoch_state(
            suite,
            config,
            context=context,
            tree=tree,
            private=PrivateTree(0, bundle.encryption_private_key, leaf.encryption_key),
            secrets=secrets,
            confirmation_tag=tag,
            signature_private_key=bundle.signature_private_key,
        )
        return cls(
            GroupState(config, state),
            identity=identity,
            successor=successor,
            external_psks=external_psks,
        )

    @classmethod
    def join_from_welcome(
        cls,
        welcome: bytes,
        bundle: KeyPackageBundle,
        *,
        ratchet_tree: bytes | RatchetTree | None = None,
        previous: Group | None = None,
        now: int | None = None,
        config: GroupConfig | None = None,
        identity: IdentityValidator = accept_basic_credentials,
        successor: SuccessorValidator = same_credential,
        external_psks: ExternalPskLookup | Mapping[bytes, bytes] | None = None,
        verify_signatures: SignatureBatchVerifier = verify_signatures_sequentially,
    ) -> Group:
        """Join a group from a Welcome addressed to ``bundle`` (RFC 9420 §12.4.3.1).

        ``welcome`` is an ``MLSMessage(Welcome)``. The ratchet tree comes from
        the GroupInfo's ``ratchet_tree`` extension or, if it has none, from
        ``ratchet_tree`` (its encoding, obtained out of band). ``previous`` is
        the group this one resumes, for a Welcome carrying a ``reinit`` or
        ``branch`` resumption PSK (RFC 9420 §11.2, §11.3). Checking that the
        group id is not one of the client's other groups is the caller's job.
        ``verify_signatures`` may check the tree's leaf signatures in parallel.

        Anything wrong with ``welcome`` or ``ratchet_tree`` (including no
        tree at all) raises an :class:`~messenger.mls.errors.InvalidMessageError`.
        """
        config = config or GroupConfig()
        state = join_welcome(
            welcome,
            bundle,
            ratchet_tree=ratchet_tree,
            previous=previous,
            now=now,
            config=config,
            identity=identity,
            successor=successor,
            lookup=_lookup(external_psks),
            verify_signatures=verify_signatures,
        )
        return cls(
            GroupState(config, state),
            identity=identity,
            successor=successor,
            external_psks=external_psks,
        )

    @classmethod
    def join_external(
        cls,
        group_info: bytes,
        *,
        credential: Credential,
        signature_private_key: bytes,
        random: RandomSource,
        ratchet_tree: bytes | RatchetTree | None = None,
        capabilities: Capabilities | None = None,
        leaf_extensions: Sequence[Extension] = (),
        resync: int | None = None,
        psks: Sequence[bytes] = (),
        authenticated_data: bytes = b"",
        now: int | None = None,
        config: GroupConfig | None = None,
        identity: IdentityValidator = accept_basic_credentials,
        successor: SuccessorValidator = same_credential,
        external_psks: ExternalPskLookup | Mapping[bytes, bytes] | None = None,
        verify_signatures: SignatureBatchVerifier = verify_signatures_sequentially,
    ) -> tuple[Group, CommitResult]:
        """Join by an external Commit (RFC 9420 §12.4.3.2).

        ``group_info`` is an ``MLSMessage(GroupInfo)`` with an
        ``external_pub`` extension; the tree comes from its ``ratchet_tree``
        extension or from ``ratchet_tree``. The new member's leaf has
        ``credential`` and ``signature_private_key``. ``resync`` is the leaf
        of this client's old appearance in the group, removed by the same
        Commit; ``psks`` are external PSK ids to inject.

        Returns the group as it will be once the Commit is accepted, and the
        Commit. The group is usable at once, but should be persisted and used
        only after the Delivery Service has accepted ``result.message``; if it
        does not, discard both (RFC 9420 §14). ``result.staged`` is already
        merged into the returned group.

        Anything wrong with ``group_info`` or ``ratchet_tree`` -- including a
        cipher suite this implementation does not support, no tree at all, or
        an ``external_pub`` that is not a valid HPKE public key -- raises an
        :class:`~messenger.mls.errors.InvalidMessageError`.
        """
        config = config or GroupConfig()
        state, result = join_by_external_commit(
            group_info,
            credential=credential,
            signature_private_key=signature_private_key,
            random=random,
            ratchet_tree=ratchet_tree,
            capabilities=capabilities,
            leaf_extensions=leaf_extensions,
            resync=resync,
            psks=psks,
            authenticated_data=authenticated_data,
            now=now,
            config=config,
            identity=identity,
            successor=successor,
            lookup=_lookup(external_psks),
            verify_signatures=verify_signatures,
        )
        group = cls(
            GroupState(config, state),
            identity=identity,
            successor=successor,
            external_psks=external_psks,
        )
        return group, result

    @classmethod
    def reinit(
        cls,
        previous: Group,
        bundle: KeyPackageBundle,
        key_packages: Sequence[KeyPackage | bytes],
        random: RandomSource,
        *,
        now: int | None = None,
        inline_tree: bool = True,
        config: GroupConfig | None = None,
    ) -> tuple[Group, CommitResult]:
        """The new group of a reinitialisation (RFC 9420 §11.2).

        ``previous`` has merged a Commit with a ReInit proposal; the new group
        takes its group id, version, suite and extensions. ``bundle`` is this
        member's KeyPackage in the new suite, ``key_packages`` those of every
        other member of ``previous``. Returns the group at epoch 0 and the
        first Commit (adding everyone, with a ``reinit`` resumption PSK), whose
        staged result the caller merges once it is accepted.
        """
        reinit = previous.pending_reinit
        if reinit is None:
            raise UsageError("the previous group has no merged ReInit")
        if reinit.version != ProtocolVersion.MLS10:
            raise UsageError(f"protocol version {reinit.version} is not supported")
        if bundle.key_package.cipher_suite != reinit.cipher_suite:
            raise UsageError("the bundle is not for the ReInit's cipher suite")
        kps = [_key_package_of(k) for k in key_packages]
        for m in previous.members():
            if m.leaf_index == previous.leaf_index:
                continue
            if not any(previous._successor(m.credential, k.leaf_node.credential) for k in kps):
                raise UsageError(f"no KeyPackage for member {m.leaf_index} of the old group")
        return cls._resume(
            previous,
            ResumptionPSKUsage.REINIT,
            bundle,
            kps,
            random,
            group_id=reinit.group_id,
            extensions=reinit.extensions,
            now=now,
            inline_tree=inline_tree,
            config=config,
        )

    @classmethod
    def branch(
        cls,
        previous: Group,
        bundle: KeyPackageBundle,
        key_packages: Sequence[KeyPackage | bytes],
        random: RandomSource,
        *,
        group_id: bytes | None = None,
        extensions: Sequence[Extension] | None = None,
        now: int | None = None,
        inline_tree: bool = True,
        config: GroupConfig | None = None,
    ) -> tuple[Group, CommitResult]:
        """A subgroup branched from ``previous`` (RFC 9420 §11.3).

        ``key_packages`` are fresh KeyPackages of some members of
        ``previous``; the first Commit adds them with a ``branch`` resumption
        PSK of ``previous``'s current epoch.
        """
        if bundle.key_package.cipher_suite != previous.suite.suite_id:
            raise UsageError("a branch keeps the cipher suite")
        kps = [_key_package_of(k) for k in key_packages]
        old = [m.credential for m in previous.members()]
        for kp in kps:
            if not any(previous._successor(c, kp.leaf_node.credential) for c in old):
                raise UsageError("a branch can only add members of the old group")
        return cls._resume(
            previous,
            ResumptionPSKUsage.BRANCH,
            bundle,
            kps,
            random,
            group_id=group_id,
            extensions=previous.extensions if extensions is None else tuple(extensions),
            now=now,
            inline_tree=inline_tree,
            config=config,
        )

    @classmethod
    def _resume(
        cls,
        previous: Group,
        usage: ResumptionPSKUsage,
        bundle: KeyPackageBundle,
        key_packages: Sequence[KeyPackage],
        random: RandomSource,
        *,
        group_id: bytes | None,
        extensions: Sequence[Extension],
        now: int | None,
        inline_tree: bool,
        config: GroupConfig | None,
    ) -> tuple[Group, CommitResult]:
        group = cls.create(
            bundle,
            random,
            group_id=group_id,
            extensions=extensions,
            config=config or previous.config,
            identity=previous._identity,
            successor=previous._successor,
            external_psks=previous._external_psks,
        )
        suite = group.suite
        psk_id = PreSharedKeyID.resumption(
            usage, previous.group_id, previous.epoch, random(suite.hash_len)
        )
        value = previous.resumption_psk(previous.epoch)
        assert value is not None
        me = Sender.member(group.leaf_index)
        entries = [ProposalEntry(Proposal(Add(kp)), me) for kp in key_packages]
        entries.append(ProposalEntry(Proposal(PreSharedKey(psk_id)), me))
        result = group._create_commit(
            random,
            entries,
            force_path=False,
            inline_tree=inline_tree,
            external_pub=False,
            with_group_info=False,
            authenticated_data=b"",
            encrypt=False,
            now=now,
            resumption_usage=usage,
            extra_psks={(previous.group_id, previous.epoch): value},
        )
        return group, result

    # -- reading ------------------------------------------------------------------------

    @property
    def suite(self) -> CipherSuite:
        return self._s.epoch.suite

    @property
    def config(self) -> GroupConfig:
        return self._s.config

    @property
    def group_context(self) -> GroupContext:
        """The GroupContext of the current epoch (RFC 9420 §8.1)."""
        return self._s.epoch.context

    @property
    def group_id(self) -> bytes:
        return self._s.epoch.context.group_id

    @property
    def epoch(self) -> int:
        return self._s.epoch.context.epoch

    @property
    def extensions(self) -> tuple[Extension, ...]:
        """The GroupContext extensions (RFC 9420 §8.1, §13)."""
        return self._s.epoch.context.extensions

    @property
    def tree_hash(self) -> bytes:
        return self._s.epoch.context.tree_hash

    @property
    def confirmed_transcript_hash(self) -> bytes:
        return self._s.epoch.context.confirmed_transcript_hash

    @property
    def leaf_index(self) -> int:
        """This member's leaf index in the current epoch."""
        return self._s.epoch.private.leaf_index

    @property
    def epoch_authenticator(self) -> bytes:
        """The current epoch's ``epoch_authenticator`` (RFC 9420 §8.7)."""
        return self._s.epoch.secrets.epoch_authenticator

    @property
    def active(self) -> bool:
        """Whether this member can still send: not removed, no ReInit merged."""
        return not self._s.removed and self._s.reinit is None

    @property
    def removed(self) -> bool:
        """Whether a merged Commit removed this member (RFC 9420 §12.4.2)."""
        return self._s.removed

    @property
    def pending_reinit(self) -> ReInit | None:
        """The ReInit of the last merged Commit, if it had one (RFC 9420 §11.2)."""
        return self._s.reinit

    @property
    def ratchet_tree(self) -> RatchetTree:
        """The public ratchet tree, for sending to joiners out of band (§12.4.3.3)."""
        return self._s.epoch.tree.to_ratchet_tree()

    def members(self) -> list[Member]:
        """The members of the current epoch, by leaf index."""
        return [Member.from_leaf(i, leaf) for i, leaf in self._s.epoch.tree.members()]

    def member(self, leaf_index: int) -> Member | None:
        """The member at ``leaf_index`` in the current epoch, if any."""
        if leaf_index < 0:
            return None
        leaf = self._s.epoch.tree.leaf(leaf_index)
        return None if leaf is None else Member.from_leaf(leaf_index, leaf)

    def sign_with_label(self, label: bytes, content: bytes) -> bytes:
        """``content`` signed with this member's leaf key, under ``label``
        (SignWithLabel, RFC 9420 §5.1.2): for application statements that
        other members verify with the leaf's ``signature_key``."""
        st = self._s.epoch
        return st.suite.sign_with_label(st.signature_private_key, label, content)

    def leaf_source(self, leaf_index: int) -> LeafNodeSource | None:
        """How the leaf at ``leaf_index`` was made (RFC 9420 §7.2): ``key_package``
        until its member commits with a path or updates; None for a blank leaf."""
        if leaf_index < 0:
            return None
        leaf = self._s.epoch.tree.leaf(leaf_index)
        return None if leaf is None else leaf.leaf_node_source

    def pending_proposals(self) -> list[ProposalReceived]:
        """The proposals received or sent in this epoch, not yet committed."""
        return [self._proposal_event(p) for p in self._s.proposals]

    def clear_pending_proposals(self) -> None:
        """Forget the proposals cached in this epoch (RFC 9420 §12.4: a
        committer need not include them, and may drop ones it cannot use)."""
        self._s.proposals = []

    def resumption_psk(self, epoch: int | None = None) -> bytes | None:
        """The ``resumption_psk`` of ``epoch`` (default: the current one), if
        still kept (RFC 9420 §8.6)."""
        if epoch is None or epoch == self.epoch:
            return self._s.epoch.secrets.resumption_psk
        for e, value in self._s.resumption_psks:
            if e == epoch:
                return value
        return None

    def export_secret(self, label: bytes, context: bytes, length: int) -> bytes:
        """``MLS-Exporter(label, context, length)`` of the current epoch (RFC 9420 §8.5)."""
        return self._s.epoch.secrets.exporter(self.suite, label, context, length)

    def group_info(self, *, inline_tree: bool = True, external_pub: bool = True) -> bytes:
        """A signed ``MLSMessage(GroupInfo)`` for the current epoch (RFC 9420 §12.4.3).

        With ``external_pub`` it allows external joins (§12.4.3.2); with
        ``inline_tree`` it carries the ``ratchet_tree`` extension (§12.4.3.3).
        """
        self._require_active()
        info = self._make_group_info(self._s.epoch, inline_tree, external_pub)
        return MLSMessage(info).to_bytes()

    # -- persistence ------------------------------------------------------------------

    def to_bytes(self, staged: StagedCommit | None = None) -> bytes:
        """The whole persistent state, or what it will be once ``staged`` is merged.

        For stage, persist, merge: write ``to_bytes(staged)`` to the database
        with the messages, then :meth:`merge`. A pending Commit of this
        member's own is not part of the state (if it is lost, so is the
        Commit: the Delivery Service will not see it from this member again).
        """
        if staged is None:
            return self._s.to_bytes()
        return self._merged_state(staged).to_bytes()

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        identity: IdentityValidator = accept_basic_credentials,
        successor: SuccessorValidator = same_credential,
        external_psks: ExternalPskLookup | Mapping[bytes, bytes] | None = None,
    ) -> Group:
        """A group from :meth:`to_bytes`; :class:`DecodeError` if the bytes are bad."""
        return cls(
            GroupState.from_bytes(data),
            identity=identity,
            successor=successor,
            external_psks=external_psks,
        )

    def checkpoint(self, staged: StagedCommit | None = None) -> GroupCheckpoint:
        """What to persist now: the secret-tree slots changed since the last
        checkpoint, or the whole state when more than the secret trees changed.

        An application message sent or received changes only its sender's
        ratchets (RFC 9420 §9.1), so its checkpoint is a record or two whose
        size does not depend on the group's. A commit, a join, a proposal, a
        group just built or loaded with :meth:`from_bytes` give a full one
        (:attr:`GroupCheckpoint.full`). Taking a checkpoint forgets the
        changes it holds: if writing it fails, discard this object and load
        the group again from what is stored. With ``staged``: the whole state
        once ``staged`` is merged (this group is not changed).
        """
        if staged is not None:
            state = self._merged_state(staged)
            return GroupCheckpoint(
                self.group_id, state.epoch.context.epoch, state.base_bytes(), tuple(state.records())
            )
        s = self._s
        persisted = self._persisted
        if (
            persisted is not None
            and persisted[0] is s
            and persisted[1] is s.proposals
            and persisted[2] == len(s.proposals)
        ):
            return GroupCheckpoint(self.group_id, self.epoch, None, tuple(s.take_changes()))
        checkpoint = GroupCheckpoint(self.group_id, self.epoch, s.base_bytes(), tuple(s.records()))
        s.clear_changes()
        self._persisted = (s, s.proposals, len(s.proposals))
        return checkpoint

    @classmethod
    def from_checkpoint(
        cls,
        base: bytes,
        records: Sequence[StateRecord],
        *,
        identity: IdentityValidator = accept_basic_credentials,
        successor: SuccessorValidator = same_credential,
        external_psks: ExternalPskLookup | Mapping[bytes, bytes] | None = None,
    ) -> Group:
        """A group from the ``base`` and ``records`` of its checkpoints, in order.

        ``base`` may also be a full state (:meth:`to_bytes`) with records
        over it; the next checkpoint is then a full one.
        """
        group = cls(
            GroupState.from_parts(base, records),
            identity=identity,
            successor=successor,
            external_psks=external_psks,
        )
        if GroupState.is_split(base):
            s = group._s
            group._persisted = (s, s.proposals, len(s.proposals))
        return group

    # -- sending --------------------------------------------------------------------------

    def _require_active(self) -> None:
        if self._s.removed:
            raise UsageError("this member was removed from the group")
        if self._s.reinit is not None:
            raise UsageError("the group was reinitialised: use the new group (RFC 9420 §11.2)")

    def encrypt(
        self, data: bytes, random: RandomSource, *, authenticated_data: bytes = b""
    ) -> bytes:
        """Application data as an ``MLSMessage(PrivateMessage)`` (RFC 9420 §6.3, §15).

        :class:`UsageError` while proposals are pending: RFC 9420 §12.4 asks
        for a Commit before any more application data.
        """
        self._require_active()
        if self._s.proposals:
            raise UsageError("proposals are pending: commit them first (RFC 9420 §12.4)")
        st = self._s.epoch
        return self._framing.seal_application(
            st.private.leaf_index,
            st.signature_private_key,
            bytes(data),
            bytes(authenticated_data),
            random,
        )

    def _protect(self, auth: AuthenticatedContent, random: RandomSource | None) -> bytes:
        if auth.wire_format == WireFormat.PRIVATE_MESSAGE:
            if random is None:
                raise UsageError("a PrivateMessage needs randomness for its reuse guard")
            return MLSMessage(self._framing.protect_private(auth, random)).to_bytes()
        return MLSMessage(self._framing.protect_public(auth)).to_bytes()

    def _wire_format(self, encrypt: bool | None) -> WireFormat:
        if encrypt is None:
            encrypt = self._s.config.encrypt_handshake
        return WireFormat.PRIVATE_MESSAGE if encrypt else WireFormat.PUBLIC_MESSAGE

    def _rules(
        self, now: int | None, resumption_usage: ResumptionPSKUsage | None = None
    ) -> RuleContext:
        st = self._s.epoch
        return RuleContext(
            st.suite,
            st.context,
            st.tree,
            self._identity,
            self._successor,
            now,
            self._s.config.max_lifetime,
            resumption_usage,
        )

    def _send_proposal(
        self,
        body: ProposalBody,
        random: RandomSource,
        *,
        authenticated_data: bytes,
        encrypt: bool | None,
        now: int | None,
        update_keys: tuple[bytes, bytes] = (b"", b""),
    ) -> bytes:
        self._require_active()
        st = self._s.epoch
        proposal = Proposal(body)
        sender = Sender.member(st.private.leaf_index)
        try:
            check_proposal(self._rules(now), ProposalEntry(proposal, sender))
        except ValidationError as exc:
            if isinstance(body, Add):
                raise
            raise UsageError(f"invalid proposal: {exc}") from None
        content = FramedContent(
            st.context.group_id, st.context.epoch, sender, bytes(authenticated_data), proposal
        )
        auth = self._framing.sign(st.signature_private_key, self._wire_format(encrypt), content)
        data = self._protect(auth, random)
        self._s.proposals.append(
            CachedProposal(
                ref=self.suite.proposal_ref(auth.to_bytes()),
                proposal=proposal,
                sender=sender,
                authenticated_data=bytes(authenticated_data),
                message_hash=message_digest(data),
                update_private_key=update_keys[0],
                update_signature_private_key=update_keys[1],
            )
        )
        return data

    def propose_add(
        self,
        key_package: KeyPackage | bytes,
        random: RandomSource,
        *,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
        now: int | None = None,
    ) -> bytes:
        """An Add proposal for ``key_package`` (RFC 9420 §12.1.1); cached by reference."""
        return self._send_proposal(
            Add(_key_package_of(key_package)),
            random,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=now,
        )

    def propose_remove(
        self,
        leaf_index: int,
        random: RandomSource,
        *,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
    ) -> bytes:
        """A Remove proposal for the member at ``leaf_index`` (RFC 9420 §12.1.3)."""
        return self._send_proposal(
            Remove(leaf_index),
            random,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=None,
        )

    def propose_update(
        self,
        random: RandomSource,
        *,
        credential: Credential | None = None,
        signature_private_key: bytes | None = None,
        capabilities: Capabilities | None = None,
        leaf_extensions: Sequence[Extension] | None = None,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
    ) -> bytes:
        """An Update proposal with a fresh leaf encryption key (RFC 9420 §12.1.2).

        Optionally a new credential, signature key, capabilities or leaf
        extensions. Another member must commit it (§12.2); until then the
        new private keys are kept with the cached proposal.
        """
        st = self._s.epoch
        suite = self.suite
        old = st.tree.leaf(st.private.leaf_index)
        assert old is not None
        new_key = signature_private_key or st.signature_private_key
        enc_private, enc_public = suite.generate_hpke_key_pair(random)
        leaf = LeafNodeTBS(
            encryption_key=enc_public,
            signature_key=suite.signature_public_key(new_key),
            credential=credential or old.credential,
            capabilities=capabilities or old.capabilities,
            leaf_node_source=LeafNodeSource.UPDATE,
            extensions=old.extensions if leaf_extensions is None else tuple(leaf_extensions),
            group_id=st.context.group_id,
            leaf_index=st.private.leaf_index,
        ).sign(suite, new_key)
        return self._send_proposal(
            Update(leaf),
            random,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=None,
            update_keys=(enc_private, b"" if signature_private_key is None else new_key),
        )

    def propose_psk(
        self,
        psk: bytes | PreSharedKeyID,
        random: RandomSource,
        *,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
    ) -> bytes:
        """A PreSharedKey proposal (RFC 9420 §12.1.4).

        ``psk`` is an external PSK id (a fresh nonce is drawn) or a whole
        :class:`PreSharedKeyID`, e.g. a resumption PSK of a past epoch.
        """
        psk_id = self._psk_id(psk, random)
        try:
            self._psk_values([psk_id])  # the proposer must have it
        except ValidationError as exc:
            raise UsageError(str(exc)) from None
        return self._send_proposal(
            PreSharedKey(psk_id),
            random,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=None,
        )

    def propose_reinit(
        self,
        random: RandomSource,
        *,
        group_id: bytes | None = None,
        cipher_suite: int | None = None,
        extensions: Sequence[Extension] | None = None,
        version: int = ProtocolVersion.MLS10,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
    ) -> bytes:
        """A ReInit proposal (RFC 9420 §12.1.5); by default a fresh group id,
        the same suite and extensions."""
        return self._send_proposal(
            self._reinit_body(random, group_id, cipher_suite, extensions, version),
            random,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=None,
        )

    def propose_group_context_extensions(
        self,
        extensions: Sequence[Extension],
        random: RandomSource,
        *,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
    ) -> bytes:
        """A GroupContextExtensions proposal (RFC 9420 §12.1.7)."""
        return self._send_proposal(
            GroupContextExtensions(tuple(extensions)),
            random,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=None,
        )

    def _reinit_body(
        self,
        random: RandomSource,
        group_id: bytes | None,
        cipher_suite: int | None,
        extensions: Sequence[Extension] | None,
        version: int,
    ) -> ReInit:
        suite_id = self.suite.suite_id if cipher_suite is None else cipher_suite
        get_cipher_suite(suite_id)
        return ReInit(
            random(self.suite.hash_len) if group_id is None else bytes(group_id),
            version,
            suite_id,
            self.extensions if extensions is None else tuple(extensions),
        )

    def _psk_id(self, psk: bytes | PreSharedKeyID, random: RandomSource) -> PreSharedKeyID:
        if isinstance(psk, PreSharedKeyID):
            return psk
        return PreSharedKeyID.external(bytes(psk), random(self.suite.hash_len))

    def _psk_values(
        self,
        ids: Sequence[PreSharedKeyID],
        extra: Mapping[tuple[bytes, int], bytes] | None = None,
    ) -> list[tuple[PreSharedKeyID, bytes]]:
        """The values of the PSKs ``ids`` (RFC 9420 §8.4); :class:`ValidationError`
        for one this member does not have."""
        out = []
        for psk_id in ids:
            value: bytes | None
            if psk_id.psktype == PSKType.EXTERNAL:
                value = self._external_psks(psk_id.psk_id)
            elif extra is not None and (psk_id.psk_group_id, psk_id.psk_epoch) in extra:
                value = extra[(psk_id.psk_group_id, psk_id.psk_epoch)]
            elif psk_id.psk_group_id == self.group_id:
                value = self.resumption_psk(psk_id.psk_epoch)
            else:
                value = None
            if value is None:
                raise ValidationError(
                    f"PSK not available (RFC 9420 §12.4.2): {describe_psk(psk_id)}"
                )
            out.append((psk_id, value))
        return out

    def commit(
        self,
        random: RandomSource,
        *,
        add: Sequence[KeyPackage | bytes] = (),
        remove: Sequence[int] = (),
        psks: Sequence[bytes | PreSharedKeyID] = (),
        group_context_extensions: Sequence[Extension] | None = None,
        reinit: ReInit | None = None,
        proposals: Sequence[Proposal | ProposalBody] = (),
        include_pending: bool = True,
        force_path: bool = False,
        credential: Credential | None = None,
        signature_private_key: bytes | None = None,
        leaf_extensions: Sequence[Extension] | None = None,
        capabilities: Capabilities | None = None,
        inline_tree: bool = True,
        external_pub: bool = True,
        group_info: bool = True,
        authenticated_data: bytes = b"",
        encrypt: bool | None = None,
        now: int | None = None,
    ) -> CommitResult:
        """Make a Commit (RFC 9420 §12.4.2); the group is unchanged until merged.

        The Commit covers, by reference, the valid proposals received in this
        epoch (unless ``include_pending`` is false; see
        :func:`~messenger.mls.proposal_rules.select_pending`), and by value:
        Adds of ``add``, Removes of the leaves in ``remove``, PreSharedKeys of
        ``psks`` (external ids or whole PreSharedKeyIDs), a
        GroupContextExtensions if ``group_context_extensions`` is given, any
        other ``proposals``, or a ReInit alone. It has a path when one is required (§12.4), when
        ``force_path`` is set, or when the leaf changes (``credential``, a
        rotated ``signature_private_key``, new ``leaf_extensions`` or
        ``capabilities``: the path's leaf carries them, §7.5, §12.4.2). An
        empty Commit is a full self-update.

        The Welcome (for any added members) carries the ratchet tree if
        ``inline_tree``; ``group_info`` asks for a GroupInfo of the new epoch,
        with an ``external_pub`` if ``external_pub``. ``encrypt`` picks
        PrivateMessage (default: the group's config). ``now`` checks the
        lifetimes of added KeyPackages.
        """
        self._require_active()
        st = self._s.epoch
        me = st.private.leaf_index
        sender = Sender.member(me)
        by_value: list[ProposalEntry] = []
        if reinit is not None:
            if add or remove or psks or proposals or group_context_extensions is not None:
                raise UsageError("a ReInit must be the only proposal of its Commit (§12.2)")
            by_value.append(ProposalEntry(Proposal(reinit), sender))
        for leaf_index in remove:
            if leaf_index == me:
                raise UsageError("a member cannot remove itself by Commit (RFC 9420 §12.2)")
            if leaf_index < 0 or st.tree.leaf(leaf_index) is None:
                raise UsageError(f"leaf {leaf_index} is not a member")
            by_value.append(ProposalEntry(Proposal(Remove(leaf_index)), sender))
        for kp in add:
            by_value.append(ProposalEntry(Proposal(Add(_key_package_of(kp))), sender))
        for psk in psks:
            psk_id = self._psk_id(psk, random)
            by_value.append(ProposalEntry(Proposal(PreSharedKey(psk_id)), sender))
        if group_context_extensions is not None:
            gce = GroupContextExtensions(tuple(group_context_extensions))
            by_value.append(ProposalEntry(Proposal(gce), sender))
        for extra in proposals:
            proposal = extra if isinstance(extra, Proposal) else Proposal(extra)
            by_value.append(ProposalEntry(proposal, sender))
        entries: list[ProposalEntry] = []
        if include_pending and reinit is None:
            entries = self._pending_entries(by_value, now)
        entries.extend(by_value)
        rotate = signature_private_key is not None
        changed = (
            credential is not None
            or rotate
            or leaf_extensions is not None
            or capabilities is not None
        )
        return self._create_commit(
            random,
            entries,
            force_path=force_path or changed,
            inline_tree=inline_tree,
            external_pub=external_pub,
            with_group_info=group_info,
            authenticated_data=authenticated_data,
            encrypt=encrypt,
            now=now,
            credential=credential,
            signature_private_key=signature_private_key,
            leaf_extensions=leaf_extensions,
            capabilities=capabilities,
        )

    def _pending_entries(
        self, by_value: Sequence[ProposalEntry], now: int | None
    ) -> list[ProposalEntry]:
        """The cached proposals to cover by reference, minus any that would
        conflict with the caller's own (RFC 9420 §12.2)."""
        cached = [ProposalEntry(p.proposal, p.sender, p.ref) for p in self._s.proposals]
        chosen = select_pending(self._rules(now), cached, committer=self.leaf_index)
        leaves: set[int] = set()
        keys: set[bytes] = set()
        psk_ids: set[PreSharedKeyID] = set()
        gce = False
        for entry in by_value:
            body = entry.proposal.body
            if isinstance(body, Remove):
                leaves.add(body.removed)
            elif isinstance(body, Add):
                keys.add(body.key_package.leaf_node.signature_key)
            elif isinstance(body, PreSharedKey):
                psk_ids.add(body.psk)
            elif isinstance(body, GroupContextExtensions):
                gce = True
        kept = []
        for entry in chosen:
            body = entry.proposal.body
            if isinstance(body, Remove) and body.removed in leaves:
                continue
            if isinstance(body, Update) and entry.sender.index in leaves:
                continue
            if isinstance(body, Add) and body.key_package.leaf_node.signature_key in keys:
                continue
            if isinstance(body, PreSharedKey):
                if body.psk in psk_ids:
                    continue
                try:
                    self._psk_values([body.psk])
                except ValidationError:
                    continue  # a PSK this member does not have: leave it out
            if isinstance(body, GroupContextExtensions) and gce:
                continue
            kept.append(entry)
        return kept

    def _create_commit(
        self,
        random: RandomSource,
        entries: Sequence[ProposalEntry],
        *,
        force_path: bool,
        inline_tree: bool,
        external_pub: bool,
        with_group_info: bool,
        authenticated_data: bytes,
        encrypt: bool | None,
        now: int | None,
        credential: Credential | None = None,
        signature_private_key: bytes | None = None,
        leaf_extensions: Sequence[Extension] | None = None,
        resumption_usage: ResumptionPSKUsage | None = None,
        extra_psks: Mapping[tuple[bytes, int], bytes] | None = None,
        capabilities: Capabilities | None = None,
    ) -> CommitResult:
        """RFC 9420 §12.4.2, "Creating a Commit"."""
        s = self._s
        st = s.epoch
        suite = st.suite
        me = st.private.leaf_index
        if st.context.epoch == LAST_EPOCH:
            raise UsageError("the group is at its last epoch: no Commit can follow (§8.1)")
        applied = apply_proposals(self._rules(now, resumption_usage), entries, committer=me)
        try:
            psk_values = self._psk_values(applied.psks, extra_psks)
        except ValidationError as exc:
            raise UsageError(str(exc)) from None
        new_tree = applied.tree
        provisional = replace(
            st.context, epoch=st.context.epoch + 1, tree_hash=b"", extensions=applied.extensions
        )
        new_key = signature_private_key or st.signature_private_key
        path_secret_for: Callable[[int], bytes | None] = lambda leaf: None  # noqa: E731
        private = st.private
        commit_secret: bytes | None = None
        path = None
        if force_path or path_required(entries):
            try:
                created = create_update_path(
                    new_tree,
                    me,
                    group_context=provisional,
                    signature_private_key=new_key,
                    random=random,
                    exclude=applied.added_leaves,
                    credential=credential,
                    capabilities=capabilities,
                    extensions=leaf_extensions,
                    rotate_signature_key=signature_private_key is not None,
                )
            except ValidationError as exc:
                raise UsageError(f"cannot make the path: {exc}") from None
            new_tree = created.tree
            private = created.private
            commit_secret = created.commit_secret
            provisional = created.group_context
            path = created.update_path
            path_secret_for = created.path_secret_for
        else:
            provisional = replace(provisional, tree_hash=new_tree.tree_hash())

        wire_format = self._wire_format(encrypt)
        proposals = tuple(
            ProposalOrRef.by_value(e.proposal)
            if e.ref is None
            else ProposalOrRef.by_reference(e.ref)
            for e in entries
        )
        content = FramedContent(
            st.context.group_id,
            st.context.epoch,
            Sender.member(me),
            bytes(authenticated_data),
            Commit(proposals, path),
        )
        # The FramedContent of a large Commit (many Adds by value) is costly
        # to encode, and the signature, the transcript hash, the membership
        # tag and the PublicMessage all contain it: encode it once.
        content_bytes = content.to_bytes()
        wire = wire_format.to_bytes(2, "big")
        # FramedContentTBS (RFC 9420 §6.1): version, wire format, content, context.
        tbs = _MLS10 + wire + content_bytes + self._framing.group_context_bytes
        signature = suite.sign_with_label(st.signature_private_key, b"FramedContentTBS", tbs)
        confirmed = confirmed_transcript_hash_from_parts(
            suite, st.interim_transcript_hash, wire, content_bytes, signature
        )
        secret = psk_secret(suite, psk_values) if psk_values else None
        state, joiner_secret = advance_epoch(
            suite,
            s.config,
            provisional,
            confirmed,
            init_secret=st.secrets.init_secret,
            commit_secret=commit_secret,
            psk_secret=secret,
            tree=new_tree,
            private=private,
            signature_private_key=new_key,
        )
        tag = state.confirmation_tag
        auth = AuthenticatedContent(wire_format, content, FramedContentAuthData(signature, tag))
        info = None
        if with_group_info or applied.added:
            info = self._make_group_info(state, inline_tree, external_pub)
        welcome = None
        if applied.added:
            assert info is not None
            encrypted = encrypt_group_info(suite, joiner_secret, secret, info.to_bytes())
            welcome = seal_welcome(
                suite,
                joiner_secret=joiner_secret,
                encrypted_group_info=encrypted,
                members=[(kp, path_secret_for(i)) for i, kp in applied.added],
                psks=applied.psks,
                random=random,
            )
        staged = self._staged(
            applied,
            state,
            committer=me,
            external=False,
            removed_self=False,
            authenticated_data=content.authenticated_data,
        )
        if wire_format == WireFormat.PUBLIC_MESSAGE:
            # PublicMessage (RFC 9420 §6.2) in an MLSMessage (§6), from the parts:
            # membership_tag = MAC(membership_key, AuthenticatedContentTBM).
            auth_bytes = vl_bytes(signature) + vl_bytes(tag)
            membership_tag = suite.mac(st.secrets.membership_key, tbs + auth_bytes)
            message = _MLS10 + wire + content_bytes + auth_bytes + vl_bytes(membership_tag)
        else:
            message = self._protect(auth, random)
        self._pending_commit = (message, staged)
        return CommitResult(
            message,
            None if welcome is None else MLSMessage(welcome).to_bytes(),
            None if info is None or not with_group_info else MLSMessage(info).to_bytes(),
            staged,
        )

    def _make_group_info(
        self, state: EpochState, inline_tree: bool, external_pub: bool
    ) -> GroupInfo:
        """A signed GroupInfo for ``state`` (RFC 9420 §12.4.3)."""
        suite = state.suite
        extensions: list[Extension] = []
        if inline_tree:
            tree = state.tree.encode_ratchet_tree()
            extensions.append(Extension(ExtensionType.RATCHET_TREE, tree))
        if external_pub:
            public = state.secrets.external_key_pair(suite)[1]
            extensions.append(ExternalPub(public).to_extension())
        tbs = GroupInfoTBS(
            state.context, tuple(extensions), state.confirmation_tag, state.private.leaf_index
        )
        return tbs.sign(suite, state.signature_private_key)

    def _staged(
        self,
        applied: AppliedProposals,
        state: EpochState | None,
        *,
        committer: int,
        external: bool,
        removed_self: bool,
        new_tree: PublicTree | None = None,
        path_leaf: LeafNode | None = None,
        authenticated_data: bytes = b"",
    ) -> StagedCommit:
        """The StagedCommit of a Commit by ``committer`` (its leaf in the new epoch)."""
        st = self._s.epoch
        tree = state.tree if state is not None else (new_tree or applied.tree)
        # For late application messages of this epoch: every leaf the Commit
        # changes, with its leaf node in this epoch (None: it was blank).
        previous: dict[int, LeafNode | None] = {}
        for i, leaf in applied.updated:
            previous[i] = leaf
        for i, leaf in applied.removed:
            previous[i] = leaf
        for i, _ in applied.added:
            previous[i] = None
        old_leaf = st.tree.leaf(committer)
        new_leaf = path_leaf if path_leaf is not None else tree.leaf(committer)
        assert new_leaf is not None
        updated = [Member.from_leaf(i, tree.leaf(i) or leaf) for i, leaf in applied.updated]
        if new_leaf is not old_leaf:  # a path replaced the committer's leaf
            previous.setdefault(committer, old_leaf)
            updated.append(Member.from_leaf(committer, new_leaf))
        return StagedCommit(
            group_id=st.context.group_id,
            epoch=st.context.epoch + 1,
            committer=Member.from_leaf(committer, new_leaf),
            proposals=tuple(e.proposal for e in applied.entries),
            added=tuple(Member.from_leaf(i, kp.leaf_node) for i, kp in applied.added),
            removed=tuple(Member.from_leaf(i, leaf) for i, leaf in applied.removed),
            updated=tuple(updated),
            external=external,
            self_removed=removed_self,
            reinit=applied.reinit,
            epoch_authenticator=None if state is None else state.secrets.epoch_authenticator,
            base_context=self._framing.group_context_bytes,
            state=state,
            previous_leaves=previous,
            authenticated_data=bytes(authenticated_data),
        )

    # -- receiving ----------------------------------------------------------------------

    def process(self, message: bytes, *, now: int | None = None) -> Event:
        """Process an incoming ``MLSMessage`` (RFC 9420 §6, §12).

        Returns :class:`ApplicationMessage` for application data (also from
        the kept past epochs), :class:`ProposalReceived` for a valid
        proposal (cached: the only change to the group), or a
        :class:`StagedCommit` for a valid Commit, which changes nothing until
        merged. This member's own Commit, still pending, comes back as its
        StagedCommit; its own proposal as the cached ProposalReceived.
        ``now`` checks the lifetimes of new leaves.

        Malformed, forged, replayed, wrong-group or wrong-epoch messages and
        invalid Commits raise :class:`~messenger.mls.errors.InvalidMessageError`
        subclasses, and the group is left as it was.
        """
        data = bytes(message)
        pending = self._pending_commit
        if pending is not None and pending[0] == data:
            return pending[1]
        if self._s.proposals:
            digest = message_digest(data)
            for cached in self._s.proposals:
                if cached.message_hash == digest:
                    return self._proposal_event(cached)
        body = _decode_message(data).body
        if isinstance(body, PublicMessage):
            return self._process_public(body, now)
        if isinstance(body, PrivateMessage):
            return self._process_private(body, now)
        raise ValidationError(f"a {type(body).__name__} is not a message to a group")

    def _check_group_epoch(self, group_id: bytes, epoch: int) -> None:
        if group_id != self.group_id:
            raise ValidationError("the message is for another group")
        if self._s.removed:
            raise EpochError("this member was removed from the group")
        if epoch != self.epoch:
            raise EpochError(f"a handshake message for epoch {epoch}, the group is at {self.epoch}")

    def _process_public(self, message: PublicMessage, now: int | None) -> Event:
        framed = message.content
        self._check_group_epoch(framed.group_id, framed.epoch)
        auth = self._framing.unprotect_public(message)
        key, member = self._sender_key(framed)
        verify_content_signature(self.suite, auth, key, self._framing.group_context_bytes)
        return self._handle(auth, member, now)

    def _sender_key(self, framed: FramedContent) -> tuple[bytes, Member | None]:
        """The signature key a sender signs with (RFC 9420 §6.1)."""
        sender = framed.sender
        sender_type = sender.sender_type
        if sender_type == SenderType.MEMBER:
            leaf = self._s.epoch.tree.leaf(sender.index)
            if leaf is None:
                raise ValidationError(f"sender leaf {sender.index} is not a member")
            return leaf.signature_key, Member.from_leaf(sender.index, leaf)
        if sender_type == SenderType.EXTERNAL:
            senders = ExternalSenders.find_in(self.extensions)
            if senders is None or sender.index >= len(senders.senders):
                raise ValidationError(f"unknown external sender {sender.index} (RFC 9420 §12.1.8)")
            return senders.senders[sender.index].signature_key, None
        body = framed.content
        if sender_type == SenderType.NEW_MEMBER_PROPOSAL:
            assert isinstance(body, Proposal) and isinstance(body.body, Add)
            return body.body.key_package.leaf_node.signature_key, None
        assert isinstance(body, Commit)
        if body.path is None:
            raise ValidationError("an external commit must have a path (RFC 9420 §12.4.3.2)")
        return body.path.leaf_node.signature_key, None

    def _process_private(self, message: PrivateMessage, now: int | None) -> Event:
        if message.group_id != self.group_id:
            raise ValidationError("the message is for another group")
        application = message.content_type == ContentType.APPLICATION
        if message.epoch == self.epoch:
            if not application and self._s.removed:
                raise EpochError("this member was removed from the group")
            framing = self._framing
            lookup: Callable[[int], LeafNode | None] = self._s.epoch.tree.leaf
        else:
            index = self._past_index(message.epoch)
            if index < 0 or not application:
                raise EpochError(
                    f"a message for epoch {message.epoch}, the group is at {self.epoch}"
                )
            framing = self._past_framing_for(index)
            lookup = self._past_lookup(index)

        def is_member(leaf: int) -> bool:
            return lookup(leaf) is not None

        def signature_key_of(leaf: int) -> bytes:
            node = lookup(leaf)
            assert node is not None
            return node.signature_key

        if application:
            leaf_index, data = framing.open_application(
                message, is_member=is_member, signature_key_of=signature_key_of
            )
            node = lookup(leaf_index)
            assert node is not None
            return ApplicationMessage(
                Member.from_leaf(leaf_index, node), data, message.authenticated_data, message.epoch
            )
        # A handshake key is consumed only by a proposal that is accepted: a
        # failed message gives it back, and so does a Commit, which is only
        # staged (and after which this epoch takes no more handshakes).
        snapshot = self._s.epoch.secret_tree.to_bytes()
        try:
            auth = framing.unprotect_private(
                message, is_member=is_member, signature_key_of=signature_key_of
            )
            leaf_index = auth.content.sender.index
            node = lookup(leaf_index)
            assert node is not None
            event = self._handle(auth, Member.from_leaf(leaf_index, node), now)
        except MLSError:
            self._restore_secret_tree(snapshot)
            raise
        if isinstance(event, StagedCommit):
            self._restore_secret_tree(snapshot)
        return event

    def _restore_secret_tree(self, snapshot: bytes) -> None:
        """Put back the secret tree as it was before a handshake message."""
        restored = SecretTree.from_bytes(snapshot)
        restored.carry_changes(self._s.epoch.secret_tree)  # still to be checkpointed
        self._s.epoch.secret_tree = restored
        past = self._past_framing
        self._rebuild_framing()
        self._past_framing = past

    def _past_index(self, epoch: int) -> int:
        for i, past in enumerate(self._s.past_epochs):
            if past.epoch == epoch:
                return i
        return -1

    def _past_framing_for(self, index: int) -> FramingContext:
        past = self._s.past_epochs[index]
        framing = self._past_framing.get(past.epoch)
        if framing is None:
            suite = self.suite
            # Only application messages are accepted from a past epoch, so no
            # membership key is kept (RFC 9420 §6.2 tags PublicMessages only).
            framing = FramingContext(
                suite,
                past.context,
                bytes(suite.hash_len),
                past.sender_data_secret,
                past.secret_tree,
                padding_block=self._s.config.padding_block,
            )
            self._past_framing[past.epoch] = framing
        return framing

    def _past_lookup(self, index: int) -> Callable[[int], LeafNode | None]:
        """The leaf nodes of the past epoch at ``index`` in ``past_epochs``."""
        chain = self._s.past_epochs[index::-1]
        tree = self._s.epoch.tree

        def lookup(leaf: int) -> LeafNode | None:
            for past in chain:
                if leaf in past.changed_leaves:
                    return past.changed_leaves[leaf]
            return tree.leaf(leaf)

        return lookup

    def _handle(self, auth: AuthenticatedContent, member: Member | None, now: int | None) -> Event:
        content = auth.content.content
        if isinstance(content, Proposal):
            return self._receive_proposal(auth, content, member, now)
        if isinstance(content, Commit):
            return self._stage_commit(auth, content, now)
        raise ValidationError("application data must be sent as a PrivateMessage (RFC 9420 §6)")

    def _proposal_event(self, cached: CachedProposal) -> ProposalReceived:
        member = None
        if cached.sender.sender_type == SenderType.MEMBER:
            member = self.member(cached.sender.index)
        return ProposalReceived(
            cached.ref, cached.proposal, cached.sender, cached.authenticated_data, member
        )

    def _receive_proposal(
        self,
        auth: AuthenticatedContent,
        proposal: Proposal,
        member: Member | None,
        now: int | None,
    ) -> ProposalReceived:
        """RFC 9420 §12.1: validate a proposal and cache it by reference."""
        if not self.active:
            raise ValidationError("the group was reinitialised; it takes no more proposals")
        ref = self.suite.proposal_ref(auth.to_bytes())
        if any(p.ref == ref for p in self._s.proposals):
            raise ValidationError("this proposal was already received (a replay)")
        sender = auth.content.sender
        check_proposal(self._rules(now), ProposalEntry(proposal, sender, ref))
        cached = CachedProposal(ref, proposal, sender, auth.content.authenticated_data)
        self._s.proposals.append(cached)
        return ProposalReceived(ref, proposal, sender, cached.authenticated_data, member)

    def _stage_commit(
        self, auth: AuthenticatedContent, commit: Commit, now: int | None
    ) -> StagedCommit:
        """RFC 9420 §12.4.2, "Processing a Commit"; the group is not changed."""
        s = self._s
        st = s.epoch
        suite = st.suite
        if not self.active:
            raise ValidationError("the group was reinitialised; it takes no more Commits")
        if st.context.epoch == LAST_EPOCH:
            raise ValidationError("the group is at its last epoch: a Commit cannot follow (§8.1)")
        sender = auth.content.sender
        external = sender.sender_type == SenderType.NEW_MEMBER_COMMIT
        me = st.private.leaf_index
        committer: int | None = None if external else sender.index
        if committer == me:
            raise ValidationError("a Commit from this member that is not pending")
        if auth.auth.confirmation_tag is None:  # pragma: no cover - the decoder ensures it
            raise ValidationError("a Commit without a confirmation tag")
        entries = []
        own_updates: list[CachedProposal] = []
        for item in commit.proposals:
            if item.proposal is not None:
                entries.append(ProposalEntry(item.proposal, sender))
                continue
            cached = next((p for p in s.proposals if p.ref == item.reference), None)
            if cached is None:
                raise ValidationError("the Commit covers a proposal this member does not have")
            entries.append(ProposalEntry(cached.proposal, cached.sender, cached.ref))
            if cached.update_private_key:
                own_updates.append(cached)
        rules = self._rules(now)
        applied = apply_proposals(rules, entries, committer=committer, external=external)
        if commit.path is None and path_required(entries):
            raise ValidationError("this Commit must have a path (RFC 9420 §12.4)")
        new_tree = applied.tree
        if external:
            committer = new_tree.reserve_free_leaf()
        assert committer is not None
        removed_self = any(i == me for i, _ in applied.removed)
        provisional = replace(
            st.context, epoch=st.context.epoch + 1, tree_hash=b"", extensions=applied.extensions
        )
        private = st.private
        signature_key = st.signature_private_key
        for cached in own_updates:
            body = cached.proposal.body
            assert isinstance(body, Update)
            private = private.with_leaf_key(
                cached.update_private_key, body.leaf_node.encryption_key
            )
            if cached.update_signature_private_key:
                signature_key = cached.update_signature_private_key
        commit_secret: bytes | None = None
        path_leaf: LeafNode | None = None
        if commit.path is not None:
            path_leaf = commit.path.leaf_node
            old_leaf = st.tree.leaf(committer) if not external else None
            if external and applied.removed:
                old_leaf = applied.removed[0][1]  # a resync (RFC 9420 §12.2)
            if (
                old_leaf is not None
                and path_leaf.credential != old_leaf.credential
                and not self._successor(old_leaf.credential, path_leaf.credential)
            ):
                raise ValidationError("the committer's new credential may not succeed its old one")
            policy = rules.policy(applied.extensions)
            if removed_self:
                new_tree.check_leaf_node(
                    path_leaf,
                    source=LeafNodeSource.COMMIT,
                    policy=policy,
                    group_id=st.context.group_id,
                    leaf_index=committer,
                )
            else:
                processed = process_update_path(
                    new_tree,
                    private,
                    sender=committer,
                    update_path=commit.path,
                    group_context=provisional,
                    policy=policy,
                    exclude=applied.added_leaves,
                    external=external,
                )
                new_tree = processed.tree
                private = processed.private
                commit_secret = processed.commit_secret
                provisional = processed.group_context
        if removed_self:
            return self._staged(
                applied,
                None,
                committer=committer,
                external=external,
                removed_self=True,
                new_tree=new_tree,
                path_leaf=path_leaf,
                authenticated_data=auth.content.authenticated_data,
            )
        if commit.path is None:
            provisional = replace(provisional, tree_hash=new_tree.tree_hash())
            private = private.pruned(new_tree)
        psk_values = self._psk_values(applied.psks)
        secret = psk_secret(suite, psk_values) if psk_values else None
        if external:
            assert applied.external_init is not None
            external_priv = st.secrets.external_key_pair(suite)[0]
            init_secret = external_init_secret(
                suite, external_priv, applied.external_init.kem_output
            )
        else:
            init_secret = st.secrets.init_secret
        confirmed = confirmed_transcript_hash(
            suite, st.interim_transcript_hash, auth.confirmed_transcript_hash_input()
        )
        state, _ = advance_epoch(
            suite,
            s.config,
            provisional,
            confirmed,
            init_secret=init_secret,
            commit_secret=commit_secret,
            psk_secret=secret,
            tree=new_tree,
            private=private,
            signature_private_key=signature_key,
            confirmation_tag=auth.auth.confirmation_tag,
        )
        return self._staged(
            applied,
            state,
            committer=committer,
            external=external,
            removed_self=False,
            authenticated_data=auth.content.authenticated_data,
        )

    # -- merging --------------------------------------------------------------------------

    def _merged_state(self, staged: StagedCommit) -> GroupState:
        """The state after merging ``staged``; this group's state is not changed."""
        s = self._s
        if staged.base_context != self._framing.group_context_bytes:
            raise UsageError("the staged commit is for another epoch or group")
        if staged.state is None and not staged.self_removed:
            raise UsageError("this staged commit was already merged")
        old = s.epoch
        config = s.config
        psks = [(old.context.epoch, old.secrets.resumption_psk), *s.resumption_psks]
        if staged.self_removed:
            return GroupState(
                config, old, [], list(s.past_epochs), s.resumption_psks, s.reinit, True
            )
        assert staged.state is not None
        past = list(s.past_epochs)
        if config.max_past_epochs:
            record = PastEpoch(
                old.context,
                old.secrets.sender_data_secret,
                old.secret_tree,
                dict(staged.previous_leaves),
            )
            past = [record, *past][: config.max_past_epochs]
        else:
            past = []
        return GroupState(
            config,
            staged.state,
            [],
            past,
            psks[: config.max_resumption_psks],
            staged.reinit,
            False,
        )

    def merge(self, staged: StagedCommit, *, persisted: bool = False) -> None:
        """Make ``staged`` the current state (RFC 9420 §12.4.2, §14).

        It must have been staged from this group in its current epoch
        (:class:`UsageError` otherwise). Afterwards the previous epoch's keys
        are kept for late application messages, within the configured window.

        ``persisted``: the caller has saved :meth:`checkpoint` ``(staged)``
        (stage, persist, merge), so the next :meth:`checkpoint` holds only
        what changes from now on, not the whole state again.
        """
        self._s = self._merged_state(staged)
        self._pending_commit = None
        self._rebuild_framing()
        if persisted:
            s = self._s
            s.clear_changes()
            self._persisted = (s, s.proposals, len(s.proposals))
