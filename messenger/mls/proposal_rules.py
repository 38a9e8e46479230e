"""Validating and applying proposals (RFC 9420 §12.1-§12.3, §12.4).

The rules a proposal must follow come in three layers, and this module has
one function for each:

* :func:`check_proposal` -- a single proposal, as it arrives on its own or
  by value (RFC 9420 §12.1.1-§12.1.8): who may send which type, KeyPackage
  validation (§10.1), leaf node validation of Updates (§7.3), Remove
  targets, PSK ids (§12.1.4), ReInit versions (§12.1.5), and
  GroupContextExtensions (§12.1.7, §11.1, §13.4);
* :func:`check_proposal_list` -- the list covered by a Commit
  (RFC 9420 §12.2), in its two flavours: a member's commit and an external
  commit (with the extra rules of §12.4.3.2);
* :func:`apply_proposals` -- the list applied, in the order of RFC 9420
  §12.3, to a copy of the ratchet tree and the GroupContext extensions;
  every proposal is validated against the tree as it stands when it is
  applied, so that, for example, an Add may reuse the signature key of a
  member removed by the same Commit.

Also :func:`path_required` (RFC 9420 §12.4) and :func:`select_pending`, which
picks from the proposals received in an epoch a list that a committer can
send (RFC 9420 §12.2 "SHOULD prefer any Remove ... or the most recent
Update"). Failures are :class:`~messenger.mls.errors.ValidationError` or
:class:`~messenger.mls.errors.AuthenticationError`: the proposals came from
peers. Nothing here changes its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from .ciphersuite import CipherSuite
from .content import Sender, SenderType
from .credentials import Credential
from .errors import AuthenticationError, ValidationError
from .extensions import (
    DEFAULT_EXTENSION_TYPES,
    Extension,
    ExternalSenders,
    RequiredCapabilities,
    check_unique_extensions,
)
from .group_context import GroupContext
from .key_package import KeyPackage
from .leaf_node import LeafNode, LeafNodeSource
from .proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalType,
    ReInit,
    Remove,
    Update,
)
from .psk import PreSharedKeyID, PSKType, ResumptionPSKUsage
from .ratchet_tree import CredentialValidator, LeafNodePolicy, PublicTree

__all__ = [
    "EXTERNAL_SENDER_PROPOSAL_TYPES",
    "PATH_REQUIRED_TYPES",
    "AppliedProposals",
    "ProposalEntry",
    "RuleContext",
    "SuccessorValidator",
    "apply_proposals",
    "check_extension_support",
    "check_key_package",
    "check_proposal",
    "check_proposal_list",
    "check_psk_id",
    "path_required",
    "same_credential",
    "select_pending",
]

#: RFC 9420 §12.4: the proposal types whose presence makes a path mandatory.
PATH_REQUIRED_TYPES: Final = frozenset(
    {
        ProposalType.UPDATE,
        ProposalType.REMOVE,
        ProposalType.EXTERNAL_INIT,
        ProposalType.GROUP_CONTEXT_EXTENSIONS,
    }
)

#: RFC 9420 §12.1.8: what an ``external`` sender may propose.
EXTERNAL_SENDER_PROPOSAL_TYPES: Final = frozenset(
    {
        ProposalType.ADD,
        ProposalType.REMOVE,
        ProposalType.PSK,
        ProposalType.REINIT,
        ProposalType.GROUP_CONTEXT_EXTENSIONS,
    }
)

#: RFC 9420 §12.4.3.2: what an external commit may carry (by value).
_EXTERNAL_COMMIT_TYPES: Final = frozenset(
    {ProposalType.EXTERNAL_INIT, ProposalType.REMOVE, ProposalType.PSK}
)

#: Decides whether a member's new credential may succeed its old one
#: (RFC 9420 §5.3.1): ``(old, new) -> bool``. The application supplies it.
SuccessorValidator = Callable[[Credential, Credential], bool]


def same_credential(old: Credential, new: Credential) -> bool:
    """The default :data:`SuccessorValidator`: the credential may not change."""
    return old == new


def _accept(credential: Credential, signature_key: bytes) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ProposalEntry:
    """A proposal with its sender, and its ``ProposalRef`` if sent by reference.

    ``ref`` is ``None`` for a proposal carried by value in a Commit; its
    sender is then the committer (RFC 9420 §12.4).
    """

    proposal: Proposal
    sender: Sender
    ref: bytes | None = None

    @property
    def proposal_type(self) -> ProposalType:
        return self.proposal.proposal_type


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What the rules need to know about the group, in the current epoch.

    ``tree`` and ``group_context`` are the current epoch's and are never
    changed. ``identity`` validates every credential that enters the group
    and ``successor`` every credential that replaces another (RFC 9420
    §5.3.1). ``now`` is the time for lifetime checks (``None``: skip them).
    """

    suite: CipherSuite
    group_context: GroupContext
    tree: PublicTree
    identity: CredentialValidator
    successor: SuccessorValidator = same_credential
    now: int | None = None
    max_lifetime: int | None = None
    #: The one resumption usage (``reinit`` or ``branch``) allowed in PSK
    #: proposals: only in the first Commit of a reinitialised or branched
    #: group (RFC 9420 §12.1.4).
    resumption_usage: ResumptionPSKUsage | None = None

    def policy(self, extensions: Sequence[Extension]) -> LeafNodePolicy:
        """The leaf node policy of a group whose extensions are ``extensions``."""
        return LeafNodePolicy.for_group(
            extensions, self.identity, now=self.now, max_lifetime=self.max_lifetime
        )


@dataclass(slots=True, eq=False)
class AppliedProposals:
    """The result of :func:`apply_proposals` (RFC 9420 §12.3).

    ``tree`` is a new tree; ``added`` lists ``(leaf_index, KeyPackage)`` in
    the order of the Add proposals; ``removed`` and ``updated`` hold the
    leaf index with the leaf node that was there before.
    """

    tree: PublicTree
    extensions: tuple[Extension, ...]
    entries: tuple[ProposalEntry, ...]
    extensions_changed: bool = False
    added: list[tuple[int, KeyPackage]] = field(default_factory=list)
    removed: list[tuple[int, LeafNode]] = field(default_factory=list)
    updated: list[tuple[int, LeafNode]] = field(default_factory=list)
    psks: list[PreSharedKeyID] = field(default_factory=list)
    external_init: ExternalInit | None = None
    reinit: ReInit | None = None

    @property
    def added_leaves(self) -> frozenset[int]:
        return frozenset(i for i, _ in self.added)


# -- single proposals (RFC 9420 §12.1) ---------------------------------------------


def check_psk_id(
    suite: CipherSuite, psk: PreSharedKeyID, allowed: ResumptionPSKUsage | None = None
) -> None:
    """RFC 9420 §12.1.4: the PSK of a PreSharedKey proposal.

    ``allowed`` is the ``reinit`` or ``branch`` usage accepted while
    creating the first epoch of a reinitialised or branched group.
    """
    if len(psk.psk_nonce) != suite.hash_len:
        raise ValidationError(f"psk_nonce must be {suite.hash_len} bytes (RFC 9420 §12.1.4)")
    if (
        psk.psktype == PSKType.RESUMPTION
        and psk.usage in (ResumptionPSKUsage.REINIT, ResumptionPSKUsage.BRANCH)
        and psk.usage != allowed
    ):
        raise ValidationError(
            f"a PreSharedKey proposal may not use a {psk.usage.name.lower()} resumption PSK "
            "(RFC 9420 §11.2, §11.3)"
        )


def check_extension_support(leaf: LeafNode, extensions: Iterable[Extension]) -> None:
    """RFC 9420 §13.4: a member supports every non-default GroupContext extension."""
    for ext in extensions:
        t = ext.extension_type
        if t not in DEFAULT_EXTENSION_TYPES and t not in leaf.capabilities.extensions:
            raise ValidationError(f"a member does not support group extension 0x{t:04x}")


def _check_required(leaf: LeafNode, required: RequiredCapabilities | None) -> None:
    """RFC 9420 §11.1: ``leaf`` lists every required capability."""
    if required is not None:
        LeafNodePolicy(_accept, required_capabilities=required).check_fields(leaf)


def _check_group_extensions(
    ctx: RuleContext, extensions: Sequence[Extension], members: Iterable[LeafNode]
) -> None:
    """GroupContext extensions that every one of ``members`` must support.

    RFC 9420 §12.1.7, §11.1 and §13.4; and the credentials of any
    ``external_senders`` are validated (RFC 9420 §5.3.1).
    """
    check_unique_extensions(extensions)
    required = RequiredCapabilities.find_in(extensions)
    senders = ExternalSenders.find_in(extensions)
    if senders is not None:
        for sender in senders.senders:
            try:
                ctx.suite.check_signature_public_key(sender.signature_key)  # RFC 9420 §5.1.1
            except ValidationError as exc:
                raise ValidationError(f"an external sender's key: {exc}") from None
            if not ctx.suite.is_valid_signature_public_key(sender.signature_key):
                raise ValidationError("an external sender has an invalid signature key")
            if not ctx.identity(sender.credential, sender.signature_key):
                raise ValidationError("an external sender's credential was rejected (§5.3.1)")
    for leaf in members:
        check_extension_support(leaf, extensions)
        _check_required(leaf, required)


def check_key_package(
    ctx: RuleContext,
    key_package: KeyPackage,
    tree: PublicTree | None,
    policy: LeafNodePolicy,
) -> None:
    """KeyPackage validation (RFC 9420 §10.1) for an Add.

    With ``tree``, the leaf is validated against it as RFC 9420 §7.3 asks
    (unique keys, credential types supported by every member); without, only
    what the KeyPackage shows by itself (for a proposal that may be
    committed later, when the tree will have changed).
    """
    suite = ctx.suite
    if key_package.cipher_suite != suite.suite_id:
        raise ValidationError("the KeyPackage is for another cipher suite (RFC 9420 §10.1)")
    if key_package.version != ctx.group_context.version:
        raise ValidationError("the KeyPackage is for another protocol version (RFC 9420 §10.1)")
    if not suite.hpke.is_valid_public_key(key_package.init_key):
        raise ValidationError("the KeyPackage init_key is not a valid HPKE public key")
    leaf = key_package.leaf_node
    if leaf.encryption_key == key_package.init_key:
        raise ValidationError("the KeyPackage init_key equals its encryption_key (§10.1)")
    check_unique_extensions(key_package.extensions)
    if tree is not None:
        tree.check_leaf_node(leaf, source=LeafNodeSource.KEY_PACKAGE, policy=policy)
    else:
        if leaf.leaf_node_source != LeafNodeSource.KEY_PACKAGE:
            raise ValidationError("a KeyPackage leaf must have the key_package source (§7.3)")
        if not suite.hpke.is_valid_public_key(leaf.encryption_key):
            raise ValidationError("leaf node encryption key is not a valid HPKE public key")
        suite.check_signature_public_key(leaf.signature_key)  # RFC 9420 §5.1.1
        policy.check_fields(leaf)
        if not leaf.verify_signature(suite):
            raise AuthenticationError("leaf node signature does not verify (RFC 9420 §7.2)")
    if not key_package.verify_signature(suite):
        raise AuthenticationError("the KeyPackage signature does not verify (RFC 9420 §10)")


def _check_update(
    ctx: RuleContext, tree: PublicTree, leaf_index: int, leaf: LeafNode, policy: LeafNodePolicy
) -> LeafNode:
    """An Update from ``leaf_index`` (RFC 9420 §12.1.2, §7.3); the replaced leaf."""
    old = tree.leaf(leaf_index)
    if old is None:
        raise ValidationError(f"an Update from blank leaf {leaf_index}")
    tree.check_leaf_node(
        leaf,
        source=LeafNodeSource.UPDATE,
        policy=policy,
        group_id=ctx.group_context.group_id,
        leaf_index=leaf_index,
    )
    if leaf.credential != old.credential and not ctx.successor(old.credential, leaf.credential):
        raise ValidationError("the new credential may not succeed the old one (RFC 9420 §5.3.1)")
    return old


def check_proposal(ctx: RuleContext, entry: ProposalEntry) -> None:
    """The rules of RFC 9420 §12.1 for one proposal, against the current epoch.

    For a proposal that arrives on its own (to be cached for a later
    Commit) and for one carried by value. List rules and the checks that
    depend on the other proposals of a Commit are :func:`apply_proposals`'s.
    """
    body = entry.proposal.body
    ptype = entry.proposal_type
    sender_type = entry.sender.sender_type
    if sender_type == SenderType.EXTERNAL and ptype not in EXTERNAL_SENDER_PROPOSAL_TYPES:
        raise ValidationError(f"an external sender may not propose {ptype.name.lower()} (§12.1.8)")
    if sender_type == SenderType.NEW_MEMBER_PROPOSAL and ptype != ProposalType.ADD:
        raise ValidationError("a new_member_proposal sender may only propose an Add (§6.1)")
    if sender_type == SenderType.NEW_MEMBER_COMMIT and ptype not in _EXTERNAL_COMMIT_TYPES:
        raise ValidationError(f"an external commit may not carry {ptype.name.lower()} (§12.2)")
    if ptype == ProposalType.EXTERNAL_INIT and sender_type != SenderType.NEW_MEMBER_COMMIT:
        raise ValidationError("an ExternalInit is only valid in an external commit (§12.1.6)")
    policy = ctx.policy(ctx.group_context.extensions)
    if isinstance(body, Add):
        check_key_package(ctx, body.key_package, None, policy)
        if sender_type == SenderType.NEW_MEMBER_PROPOSAL:
            check_extension_support(body.key_package.leaf_node, ctx.group_context.extensions)
    elif isinstance(body, Update):
        if sender_type != SenderType.MEMBER:
            raise ValidationError("only a member can send an Update (RFC 9420 §12.1.2)")
        _check_update(ctx, ctx.tree, entry.sender.index, body.leaf_node, policy)
    elif isinstance(body, Remove):
        if ctx.tree.leaf(body.removed) is None:
            raise ValidationError(f"a Remove of blank leaf {body.removed} (RFC 9420 §12.1.3)")
    elif isinstance(body, PreSharedKey):
        check_psk_id(ctx.suite, body.psk, ctx.resumption_usage)
    elif isinstance(body, ReInit):
        if body.version < ctx.group_context.version:
            raise ValidationError("a ReInit may not lower the protocol version (§12.1.5)")
    elif isinstance(body, GroupContextExtensions):
        _check_group_extensions(ctx, body.extensions, (leaf for _, leaf in ctx.tree.members()))


# -- lists (RFC 9420 §12.2) ---------------------------------------------------------


def check_proposal_list(
    entries: Sequence[ProposalEntry], *, committer: int | None, external: bool = False
) -> None:
    """The list rules of RFC 9420 §12.2 (and §12.4.3.2 for external commits).

    ``committer`` is the committer's leaf index; ``None`` for an external
    commit, whose committer has no leaf yet.
    """
    if external:
        _check_external_list(entries)
        return
    leaves: set[int] = set()
    psks: set[PreSharedKeyID] = set()
    refs: set[bytes] = set()
    add_keys: set[bytes] = set()
    gce = reinit = 0
    for entry in entries:
        body = entry.proposal.body
        if entry.ref is not None:
            if entry.ref in refs:
                raise ValidationError("a Commit covers the same proposal twice")
            refs.add(entry.ref)
        if isinstance(body, ExternalInit):
            raise ValidationError("a member's Commit may not carry an ExternalInit (§12.2)")
        if isinstance(body, Update):
            if entry.sender.sender_type != SenderType.MEMBER:
                raise ValidationError("an Update from a non-member (RFC 9420 §12.1.2)")
            leaf = entry.sender.index
            if leaf == committer:
                raise ValidationError("a Commit may not cover the committer's own Update (§12.2)")
            if leaf in leaves:
                raise ValidationError(f"two Updates or Removes for leaf {leaf} (§12.2)")
            leaves.add(leaf)
        elif isinstance(body, Remove):
            if body.removed == committer:
                raise ValidationError("a Commit may not remove the committer (RFC 9420 §12.2)")
            if body.removed in leaves:
                raise ValidationError(f"two Updates or Removes for leaf {body.removed} (§12.2)")
            leaves.add(body.removed)
        elif isinstance(body, PreSharedKey):
            if body.psk in psks:
                raise ValidationError("two PreSharedKey proposals for the same PSK (§12.2)")
            psks.add(body.psk)
        elif isinstance(body, GroupContextExtensions):
            gce += 1
        elif isinstance(body, ReInit):
            reinit += 1
        elif isinstance(body, Add):
            key = body.key_package.leaf_node.signature_key
            if key in add_keys:
                raise ValidationError("two Adds for the same client (RFC 9420 §12.2)")
            add_keys.add(key)
    if gce > 1:
        raise ValidationError("more than one GroupContextExtensions proposal (§12.2)")
    if reinit and len(entries) > 1:
        raise ValidationError("a ReInit must be the only proposal of a Commit (§12.2)")


def _check_external_list(entries: Sequence[ProposalEntry]) -> None:
    """RFC 9420 §12.2 and §12.4.3.2: one ExternalInit, at most one Remove, PSKs."""
    inits = removes = 0
    psks: set[PreSharedKeyID] = set()
    for entry in entries:
        if entry.ref is not None:
            raise ValidationError("an external commit may not cover proposals by reference")
        body = entry.proposal.body
        if isinstance(body, ExternalInit):
            inits += 1
        elif isinstance(body, Remove):
            removes += 1
        elif isinstance(body, PreSharedKey):
            if body.psk in psks:
                raise ValidationError("two PreSharedKey proposals for the same PSK (§12.2)")
            psks.add(body.psk)
        else:
            raise ValidationError(
                f"an external commit may not carry {entry.proposal_type.name.lower()} (§12.2)"
            )
    if inits != 1:
        raise ValidationError("an external commit carries exactly one ExternalInit (§12.2)")
    if removes > 1:
        raise ValidationError("an external commit removes at most one member (§12.2)")


def path_required(entries: Sequence[ProposalEntry]) -> bool:
    """Whether a Commit covering ``entries`` must have a path (RFC 9420 §12.4)."""
    return not entries or any(e.proposal_type in PATH_REQUIRED_TYPES for e in entries)


# -- application (RFC 9420 §12.3) -----------------------------------------------------


def apply_proposals(
    ctx: RuleContext,
    entries: Sequence[ProposalEntry],
    *,
    committer: int | None,
    external: bool = False,
) -> AppliedProposals:
    """Validate ``entries`` as a Commit's list and apply them (RFC 9420 §12.2, §12.3).

    The order: GroupContextExtensions, Updates, Removes, Adds (in list
    order), then PSKs, ExternalInit and ReInit are noted. ``ctx.tree`` is
    not changed; the result has a new tree.
    """
    check_proposal_list(entries, committer=committer, external=external)
    for entry in entries:
        if entry.proposal_type in (ProposalType.ADD, ProposalType.UPDATE):
            continue  # validated against the tree as it is when applied, below
        check_proposal(ctx, entry)

    tree = ctx.tree.copy()
    result = AppliedProposals(tree, ctx.group_context.extensions, tuple(entries))
    by_type: dict[ProposalType, list[ProposalEntry]] = {}
    for entry in entries:
        by_type.setdefault(entry.proposal_type, []).append(entry)

    for entry in by_type.get(ProposalType.GROUP_CONTEXT_EXTENSIONS, ()):
        assert isinstance(entry.proposal.body, GroupContextExtensions)
        result.extensions = entry.proposal.body.extensions
        result.extensions_changed = True
    policy = ctx.policy(result.extensions)

    for entry in by_type.get(ProposalType.UPDATE, ()):
        body = entry.proposal.body
        assert isinstance(body, Update)
        leaf_index = entry.sender.index
        old = _check_update(ctx, tree, leaf_index, body.leaf_node, policy)
        tree.update_leaf(leaf_index, body.leaf_node)
        result.updated.append((leaf_index, old))

    for entry in by_type.get(ProposalType.REMOVE, ()):
        body = entry.proposal.body
        assert isinstance(body, Remove)
        old_leaf = tree.leaf(body.removed)
        if old_leaf is None:
            raise ValidationError(f"a Remove of blank leaf {body.removed} (RFC 9420 §12.1.3)")
        tree.remove_leaf(body.removed)
        result.removed.append((body.removed, old_leaf))

    for entry in by_type.get(ProposalType.ADD, ()):
        body = entry.proposal.body
        assert isinstance(body, Add)
        if entry.sender.sender_type == SenderType.NEW_MEMBER_PROPOSAL and entry.ref is None:
            raise ValidationError("a new member's Add must be committed by reference")
        check_key_package(ctx, body.key_package, tree, policy)
        result.added.append((tree.add_leaf(body.key_package.leaf_node), body.key_package))

    for entry in by_type.get(ProposalType.PSK, ()):
        assert isinstance(entry.proposal.body, PreSharedKey)
        result.psks.append(entry.proposal.body.psk)
    for entry in by_type.get(ProposalType.EXTERNAL_INIT, ()):
        assert isinstance(entry.proposal.body, ExternalInit)
        result.external_init = entry.proposal.body
    for entry in by_type.get(ProposalType.REINIT, ()):
        assert isinstance(entry.proposal.body, ReInit)
        result.reinit = entry.proposal.body

    if result.extensions_changed:
        # RFC 9420 §12.1.7: every member after the Commit supports them.
        _check_group_extensions(ctx, result.extensions, (leaf for _, leaf in tree.members()))
    else:
        for _, kp in result.added:  # RFC 9420 §13.4
            check_extension_support(kp.leaf_node, result.extensions)
    return result


# -- choosing what to commit ----------------------------------------------------------


def select_pending(
    ctx: RuleContext, pending: Sequence[ProposalEntry], *, committer: int
) -> list[ProposalEntry]:
    """A valid list of proposals, by reference, from those received this epoch.

    Leaves out the committer's own Updates and Removes of the committer,
    keeps one Remove per leaf (or, without one, the most recent Update), the
    first of duplicate PSKs and Adds, the most recent GroupContextExtensions,
    and a ReInit only if nothing else is pending (RFC 9420 §12.2). Proposals
    that are no longer valid on their own are dropped.
    """
    chosen: list[ProposalEntry] = []
    removes: dict[int, ProposalEntry] = {}
    updates: dict[int, ProposalEntry] = {}
    psks: set[PreSharedKeyID] = set()
    add_keys: set[bytes] = set()
    gce: ProposalEntry | None = None
    reinit: ProposalEntry | None = None
    for entry in pending:
        try:
            check_proposal(ctx, entry)
        except ValidationError:
            continue
        except AuthenticationError:
            continue
        body = entry.proposal.body
        if isinstance(body, Update):
            if entry.sender.index != committer:
                updates[entry.sender.index] = entry  # the most recent wins
        elif isinstance(body, Remove):
            if body.removed != committer:
                removes.setdefault(body.removed, entry)
        elif isinstance(body, PreSharedKey):
            if body.psk not in psks:
                psks.add(body.psk)
                chosen.append(entry)
        elif isinstance(body, Add):
            key = body.key_package.leaf_node.signature_key
            if key not in add_keys:
                add_keys.add(key)
                chosen.append(entry)
        elif isinstance(body, GroupContextExtensions):
            gce = entry
        elif isinstance(body, ReInit):
            reinit = reinit or entry
    for leaf, entry in updates.items():
        if leaf not in removes:
            chosen.append(entry)
    chosen.extend(removes.values())
    if gce is not None:
        chosen.append(gce)
    if not chosen and reinit is not None:
        chosen.append(reinit)
    order = {id(e): i for i, e in enumerate(pending)}
    chosen.sort(key=lambda e: order[id(e)])
    return chosen
