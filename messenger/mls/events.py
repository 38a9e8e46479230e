"""What a group reports to its caller (architecture guide, convention 6).

:meth:`messenger.mls.group.Group.process` returns one of three events:

* :class:`ApplicationMessage` -- decrypted application data (RFC 9420 §15);
* :class:`ProposalReceived` -- a valid proposal, now cached for a later
  Commit (RFC 9420 §12.1);
* :class:`StagedCommit` -- a valid Commit, staged: the next epoch's complete
  state, which changes nothing until the caller passes it to
  :meth:`~messenger.mls.group.Group.merge` (RFC 9420 §12.4.2 and §14:
  stage, persist, merge).

Creating a Commit returns a :class:`CommitResult`: the Commit to send, the
Welcome for new members and a GroupInfo for the new epoch, with the same
kind of :class:`StagedCommit`. Members are described by :class:`Member`.
All of these are small frozen dataclasses; a StagedCommit's next-epoch state
is kept in a private field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .content import Sender
from .credentials import Credential
from .extensions import Extension
from .leaf_node import LeafNode
from .proposals import Proposal, ReInit

if TYPE_CHECKING:
    from .group_state import EpochState

__all__ = [
    "ApplicationMessage",
    "CommitResult",
    "Event",
    "Member",
    "ProposalReceived",
    "StagedCommit",
]


@dataclass(frozen=True, slots=True)
class Member:
    """A member of a group in some epoch: its leaf and what identifies it.

    ``extensions`` are the leaf's own (RFC 9420 §7.2), such as an
    application's delivery address.
    """

    leaf_index: int
    credential: Credential
    signature_key: bytes
    encryption_key: bytes
    extensions: tuple[Extension, ...] = ()

    @classmethod
    def from_leaf(cls, leaf_index: int, leaf: LeafNode) -> Member:
        return cls(
            leaf_index, leaf.credential, leaf.signature_key, leaf.encryption_key, leaf.extensions
        )


@dataclass(frozen=True, slots=True)
class ApplicationMessage:
    """Application data from ``sender``, sent in ``epoch`` (RFC 9420 §15).

    ``epoch`` may be a past epoch whose keys the group still keeps for late
    messages; ``sender`` is the member as it was in that epoch.
    """

    sender: Member
    data: bytes
    authenticated_data: bytes
    epoch: int


@dataclass(frozen=True, slots=True)
class ProposalReceived:
    """A proposal that passed validation and is cached under ``ref`` (RFC 9420 §12.1).

    ``sender`` is who proposed it: a member, an external sender or a new
    member (RFC 9420 §6). ``member`` is the sending member, if it is one.
    """

    ref: bytes
    proposal: Proposal
    sender: Sender
    authenticated_data: bytes
    member: Member | None = None


@dataclass(frozen=True, slots=True, eq=False)
class StagedCommit:
    """A Commit that passed every check, ready to be merged (RFC 9420 §12.4.2).

    ``epoch`` is the epoch the Commit starts. ``committer`` is the
    committer as a member of the new epoch (an external joiner included);
    ``added``, ``removed`` and ``updated`` list who joined, who left and who
    replaced their leaf (``updated`` holds the new leaves, including the
    committer's if it sent a path). ``self_removed`` says that this member was
    removed: merging then ends its membership. ``reinit`` is set if the
    Commit reinitialises the group (RFC 9420 §11.2): after merging, the group
    only waits for the Welcome to the new group. ``epoch_authenticator`` is
    the new epoch's (``None`` if this member was removed).
    """

    group_id: bytes
    epoch: int
    committer: Member
    proposals: tuple[Proposal, ...]
    added: tuple[Member, ...]
    removed: tuple[Member, ...]
    updated: tuple[Member, ...]
    external: bool
    self_removed: bool
    reinit: ReInit | None
    epoch_authenticator: bytes | None
    #: The encoded GroupContext of the epoch this Commit was made in.
    base_context: bytes = field(repr=False)
    #: The next epoch's state; ``None`` if this member was removed.
    state: EpochState | None = field(repr=False)
    #: For each leaf this Commit changed, its leaf node before (``None``: blank).
    previous_leaves: dict[int, LeafNode | None] = field(repr=False)
    #: The FramedContent's ``authenticated_data`` (RFC 9420 §6): the committer's,
    #: authenticated with the Commit.
    authenticated_data: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True, eq=False)
class CommitResult:
    """A Commit this member made (RFC 9420 §12.4.2).

    ``message`` is the MLSMessage carrying the Commit, to send to the group;
    ``welcome`` the MLSMessage(Welcome) for the members it adds, if any;
    ``group_info`` an MLSMessage(GroupInfo) describing the new epoch, signed
    by this member, for external joiners (if asked for). Nothing takes
    effect until ``staged`` is merged -- after the Delivery Service has
    accepted ``message``; only then may ``welcome`` be sent (RFC 9420 §14).
    """

    message: bytes
    welcome: bytes | None
    group_info: bytes | None
    staged: StagedCommit


#: What :meth:`~messenger.mls.group.Group.process` returns.
Event = ApplicationMessage | ProposalReceived | StagedCommit
