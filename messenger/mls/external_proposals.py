"""Proposals from outside the group (RFC 9420 §12.1.8).

Two kinds of non-member can propose:

* an ``external`` sender -- a party listed in the group's
  ``external_senders`` extension, such as the Delivery Service, which may
  propose Add, Remove, PreSharedKey, ReInit and GroupContextExtensions
  (RFC 9420 §12.1.8, §12.1.8.1): :func:`external_proposal`;
* a ``new_member_proposal`` sender -- a client asking to be added, with an
  Add of its own KeyPackage (RFC 9420 §6.1): :func:`new_member_add_proposal`.

Both are PublicMessages without a membership tag, signed over a
FramedContentTBS without GroupContext (RFC 9420 §6.1, §6.2). Members check
and cache them with :meth:`messenger.mls.group.Group.process`.
"""

from __future__ import annotations

from .ciphersuite import CipherSuite
from .content import FramedContent, PublicMessage, Sender, WireFormat
from .errors import UsageError
from .framing import authenticate
from .key_package_bundle import KeyPackageBundle
from .messages import MLSMessage
from .proposal_rules import EXTERNAL_SENDER_PROPOSAL_TYPES
from .proposals import Add, Proposal, ProposalBody

__all__ = ["external_proposal", "new_member_add_proposal"]


def _public(suite: CipherSuite, signature_private_key: bytes, content: FramedContent) -> bytes:
    auth = authenticate(suite, signature_private_key, WireFormat.PUBLIC_MESSAGE, content, None)
    return MLSMessage(PublicMessage(content, auth.auth)).to_bytes()


def external_proposal(
    suite: CipherSuite,
    *,
    group_id: bytes,
    epoch: int,
    sender_index: int,
    proposal: Proposal | ProposalBody,
    signature_private_key: bytes,
    authenticated_data: bytes = b"",
) -> bytes:
    """A proposal from external sender ``sender_index`` (RFC 9420 §12.1.8).

    ``sender_index`` indexes the group's ``external_senders`` extension,
    whose entry holds the public key of ``signature_private_key``.
    """
    if not isinstance(proposal, Proposal):
        proposal = Proposal(proposal)
    if proposal.proposal_type not in EXTERNAL_SENDER_PROPOSAL_TYPES:
        raise UsageError(f"an external sender may not propose {proposal.proposal_type.name}")
    content = FramedContent(
        bytes(group_id), epoch, Sender.external(sender_index), bytes(authenticated_data), proposal
    )
    return _public(suite, signature_private_key, content)


def new_member_add_proposal(
    group_id: bytes,
    epoch: int,
    bundle: KeyPackageBundle,
    *,
    authenticated_data: bytes = b"",
) -> bytes:
    """A client's request to be added, signed with its KeyPackage's key (RFC 9420 §6.1).

    ``group_id`` and ``epoch`` are the group's current ones (from a
    GroupInfo, say). A member commits the Add by reference.
    """
    proposal = Proposal(Add(bundle.key_package))
    content = FramedContent(
        bytes(group_id),
        epoch,
        Sender.new_member_proposal(),
        bytes(authenticated_data),
        proposal,
    )
    return _public(bundle.suite, bundle.signature_private_key, content)
