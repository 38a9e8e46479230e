"""Leave notices: a member who left shows as having left, even when its proposal lost a race.

A member leaves by proposing its own removal (RFC 9420 §12.1.3) and another
member commits the proposal; the timeline then says "Bob left"
(:func:`~.epochs.leavers_of`). A proposal lives one epoch: if another commit
gets in first, it dies with its epoch, and the members that queued the
leaver's removal (:meth:`~.epochs.GroupEpochs.proposal_received`) remove it
by value -- which, read alone, is "Alice removed Bob".

So the leaver's proposal carries a **leave notice** in its authenticated
data: its leaf's signature (SignWithLabel, RFC 9420 §5.1.2, label
:data:`LABEL`) over the group ID, its leaf index and its leaf's encryption
key. A member verifies it against the proposal's sender and keeps it with
the removal it queues (intent ``remove``, ``notices``); the commit that
removes the leaver by value carries it in its own authenticated data. A
member reading that commit verifies each notice against a leaf the commit
removes, with that leaf's signature key and its encryption key as it was
until the commit: a leaf filled again later from a KeyPackage has a fresh
encryption key, so an old notice cannot make a later removal look like
leaving, and a committer cannot make up a notice (it lacks the leaver's
key). The leaver's account then "left".

Authenticated data travels in the clear beside a PrivateMessage's
ciphertext (RFC 9420 §6.3), so the notices are sealed (AES-256-GCM) under
a key from the epoch's exporter (RFC 9420 §8.5): the server sees only that
a proposal or commit carries a sealed blob of some size, and it sees the
member set shrink anyway.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.mls.events import Member, ProposalReceived, StagedCommit
from messenger.mls.group import Group
from messenger.mls.proposals import Remove

from .identity import member_identity

__all__ = ["LABEL", "commit_leavers", "leave_notice", "proposal_notices", "sealed_notices"]

#: The SignWithLabel label of a notice (RFC 9420 §5.1.2: "MLS 1.0 " is prefixed).
LABEL: Final = b"messenger leave notice"
#: The exporter label of the key that seals notices (RFC 9420 §8.5).
_EXPORTER_LABEL: Final = b"messenger leave notices"
#: What sealed notices start with (and their AEAD's associated data).
_MAGIC: Final = b"MLN1"
_NONCE: Final = 12
#: At most this many notices in one message (a commit removes a few leavers).
_MAX_NOTICES: Final = 64


def _signed_content(group_id: bytes, leaf_index: int, encryption_key: bytes) -> bytes:
    return (
        struct.pack(">H", len(group_id))
        + group_id
        + struct.pack(">IH", leaf_index, len(encryption_key))
        + encryption_key
    )


def _notice(group: Group) -> bytes:
    """This member's notice that it leaves the group (unsealed)."""
    own = group.member(group.leaf_index)
    assert own is not None
    key = bytes(own.encryption_key)
    signature = group.sign_with_label(LABEL, _signed_content(group.group_id, group.leaf_index, key))
    return struct.pack(">IH", group.leaf_index, len(key)) + key + signature


def _parse(notice: bytes) -> tuple[int, bytes, bytes] | None:
    """A notice's leaf index, encryption key and signature (None: malformed)."""
    if len(notice) < 6:
        return None
    leaf_index, size = struct.unpack(">IH", notice[:6])
    if len(notice) < 6 + size:
        return None
    return leaf_index, notice[6 : 6 + size], notice[6 + size :]


def _verifies(group: Group, notice: bytes, member: Member) -> bool:
    """Whether ``notice`` is ``member``'s, for its leaf as it is in ``member``."""
    parsed = _parse(notice)
    if parsed is None:
        return False
    leaf_index, key, signature = parsed
    if leaf_index != member.leaf_index or key != bytes(member.encryption_key):
        return False
    content = _signed_content(group.group_id, leaf_index, key)
    return group.suite.verify_with_label(bytes(member.signature_key), LABEL, content, signature)


def sealed_notices(group: Group, notices: Sequence[bytes]) -> bytes:
    """Authenticated data carrying ``notices``, sealed for the group's current epoch."""
    kept = list(notices[:_MAX_NOTICES])
    if not kept:
        return b""
    body = bytes([len(kept)]) + b"".join(struct.pack(">H", len(n)) + n for n in kept)
    key = group.export_secret(_EXPORTER_LABEL, b"", 32)
    nonce = os.urandom(_NONCE)
    return _MAGIC + nonce + AESGCM(key).encrypt(nonce, body, _MAGIC)


def _opened(group: Group, data: bytes) -> list[bytes]:
    """The notices in authenticated data sealed for the group's current epoch
    (none if it holds none, or anything else)."""
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _NONCE:
        return []
    nonce = data[len(_MAGIC) : len(_MAGIC) + _NONCE]
    key = group.export_secret(_EXPORTER_LABEL, b"", 32)
    try:
        body = AESGCM(key).decrypt(nonce, data[len(_MAGIC) + _NONCE :], _MAGIC)
    except InvalidTag:
        return []
    if not body:
        return []
    count, rest, notices = body[0], body[1:], []
    for _ in range(min(count, _MAX_NOTICES)):
        if len(rest) < 2:
            return []
        (size,) = struct.unpack(">H", rest[:2])
        if len(rest) < 2 + size:
            return []
        notices.append(rest[2 : 2 + size])
        rest = rest[2 + size :]
    return notices


def leave_notice(group: Group) -> bytes:
    """Authenticated data for this member's proposal to remove itself: its notice, sealed."""
    return sealed_notices(group, [_notice(group)])


def proposal_notices(group: Group, event: ProposalReceived) -> tuple[bytes, ...]:
    """The notices of a proposal by which its sender removes itself, verified
    against the sender (the group at the proposal's epoch)."""
    body, sender = event.proposal.body, event.member
    if not isinstance(body, Remove) or sender is None or body.removed != sender.leaf_index:
        return ()
    return tuple(n for n in _opened(group, event.authenticated_data) if _verifies(group, n, sender))


def commit_leavers(group: Group, staged: StagedCommit) -> frozenset[str]:
    """Accounts of the leaves ``staged`` removes whose leave notice it carries,
    verified (``group``: the epoch the commit was made in)."""
    notices = _opened(group, staged.authenticated_data)
    if not notices:
        return frozenset()
    # Each notice is checked against the one removed leaf it names, if any:
    # at most one signature check per notice, however many leaves go.
    removed = {member.leaf_index: member for member in staged.removed}
    found = set()
    for notice in notices:
        parsed = _parse(notice)
        member = None if parsed is None else removed.get(parsed[0])
        if member is not None and _verifies(group, notice, member):
            who = member_identity(member.credential)
            if who is not None:
                found.add(who.account_id)
    return frozenset(found)
