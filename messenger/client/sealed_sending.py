"""Sealed sending: the epoch's send token (docs/metadata.md §3).

A send to a group carries no client signature; it proves membership with
the epoch's send token, ``MLS-Exporter(SEND_TOKEN_LABEL, group_id, 32)``
(RFC 9420 §8.5), which only members of the epoch can compute. Whoever
moves the group to an epoch registers the token's digest for it: the
creator for epoch 0, the committer with each commit (computed from the
staged commit's next epoch), a joiner by external commit for the epoch its
commit makes. The token itself goes along too (``CreateGroupRequest.send_token``,
``CommitRequest.next_token``): the server seals the group's stored state
under keys derived from it (docs/metadata.md §2). These functions run in
the MLS thread, beside the group.
"""

from __future__ import annotations

from typing import Final

from messenger.api.models import SEND_TOKEN_BYTES
from messenger.api.sealed import SEND_TOKEN_LABEL, token_digest
from messenger.mls.events import StagedCommit
from messenger.mls.group import Group

__all__ = ["next_send_token", "next_send_token_hash", "send_token", "send_token_hash"]

_LENGTH: Final = SEND_TOKEN_BYTES


def send_token(group: Group) -> bytes:
    """The send token of ``group``'s current epoch."""
    return group.export_secret(SEND_TOKEN_LABEL, group.group_id, _LENGTH)


def send_token_hash(group: Group) -> bytes:
    """The digest the server keeps of the current epoch's send token."""
    return token_digest(send_token(group))


def next_send_token(group: Group, staged: StagedCommit) -> bytes | None:
    """The send token of the epoch ``staged`` makes; ``None`` if it removes this member.

    RFC 9420 §8.5: the exporter of the new epoch's key schedule, read from
    the staged commit before it is merged.
    """
    state = staged.state
    if state is None:
        return None
    return state.secrets.exporter(group.suite, SEND_TOKEN_LABEL, group.group_id, _LENGTH)


def next_send_token_hash(group: Group, staged: StagedCommit) -> bytes | None:
    """The token digest of the epoch ``staged`` makes; ``None`` if it removes this member."""
    token = next_send_token(group, staged)
    return None if token is None else token_digest(token)
