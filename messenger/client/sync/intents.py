"""What an outbox item is for, and how its MLS message is built (RFC 9420 §12).

An item records the user's *intent* (JSON in ``outbox.intent``), not only
a finished request, because a request made for one epoch is refused once the
group has moved on (``stale_epoch``): the sender then applies the winning
commit and builds the request again from the intent, in the new epoch
(RFC 9750 §5.2: the client "retries its commit").

Intents (``op``):

* ``send`` -- an application message; the content is in ``outbox.content``;
* ``leave`` -- a Remove proposal for this member's own leaf (RFC 9420
  §12.1.3); another member commits it;
* ``create`` -- register a new group (no MLS message);
* ``add`` -- Add the claimed KeyPackages (``key_packages``, base64url),
  skipping clients that are members by now; ``claims`` holds the claims'
  tokens, the commit's evidence for its Adds (docs/metadata.md §3);
* ``remove`` -- Remove every client of the ``accounts``; for members who
  proposed leaving, ``notices`` holds their leave notices, which the commit
  carries (:mod:`..leave_notices`);
* ``remove_clients`` -- Remove the leaves of the ``clients`` (client IDs) of
  this client's own account: devices removed from the account
  (docs/devices.md §5; RFC 9420 §12.1.3), leaves already removed by a
  pending proposal left out;
* ``rename`` -- a GroupContextExtensions proposal with the new ``name``
  (the timer kept);
* ``set_timer`` -- a GroupContextExtensions proposal with the new
  disappearing-message timer, ``seconds`` (the name kept; docs/attachments.md
  §7). Should the group's extension be unreadable (a member committed a
  malformed one, which every member ignores), it is written anew from the
  conversation's ``kind`` and ``name`` as this client stored them;
* ``commit_pending`` -- commit the proposals received (e.g. someone left);
* ``rotate`` -- a commit with a path even without proposals: a new epoch,
  and with it a fresh send token (docs/metadata.md §3), when another member
  registered a digest for this epoch that is not the epoch's token;
* ``move`` -- a commit with a path whose leaf names this client's own queue,
  after it joined by its contact queue (docs/metadata.md §1, "Contact
  queues"); the request carries the queue key's proof (``join_proof``).

Every commit also covers, by reference, the proposals pending in the epoch.
:func:`build_commit` returns None when nothing is left to do (e.g. the
member to add was added by someone else meanwhile).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from messenger.api.fields import b64decode, b64encode
from messenger.mls.ciphersuite import RandomSource
from messenger.mls.events import CommitResult
from messenger.mls.extensions import Extension
from messenger.mls.group import Group
from messenger.mls.leaf_node import Capabilities
from messenger.mls.proposals import Remove

from ..groups import (
    ConversationInfo,
    group_member,
    group_members,
    key_package_member,
    with_conversation_info,
)
from ..leave_notices import sealed_notices
from ..store.conversations import ConversationKind

if TYPE_CHECKING:
    from ..net.claim_tokens import ClaimTokens

__all__ = ["OPS", "Intent", "build_commit"]

OPS: Final = (
    "send",
    "leave",
    "create",
    "add",
    "remove",
    "remove_clients",
    "rename",
    "set_timer",
    "commit_pending",
    "rotate",
    "move",
)


@dataclass(frozen=True, slots=True)
class Intent:
    op: str
    key_packages: tuple[bytes, ...] = field(default=(), repr=False)
    accounts: tuple[str, ...] = ()
    name: str | None = None
    clients: tuple[str, ...] = ()
    seconds: int | None = None
    kind: str | None = None
    """``set_timer``: the conversation's kind, to rewrite an unreadable extension."""
    claims: tuple[bytes, ...] = field(default=(), repr=False)
    """``add``: the claim tokens of ``key_packages`` (ClaimedKeyPackage.claim_token)."""
    notices: tuple[bytes, ...] = field(default=(), repr=False)
    """``remove`` of members who proposed leaving: their leave notices, which the
    commit carries (:mod:`..leave_notices`)."""

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown intent {self.op!r}")

    def dumps(self) -> str:
        data: dict[str, object] = {"op": self.op}
        if self.key_packages:
            data["key_packages"] = [b64encode(kp) for kp in self.key_packages]
        if self.accounts:
            data["accounts"] = list(self.accounts)
        if self.name is not None:
            data["name"] = self.name
        if self.clients:
            data["clients"] = list(self.clients)
        if self.seconds is not None:
            data["seconds"] = self.seconds
        if self.kind is not None:
            data["kind"] = self.kind
        if self.claims:
            data["claims"] = [b64encode(token) for token in self.claims]
        if self.notices:
            data["notices"] = [b64encode(notice) for notice in self.notices]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | None) -> Intent:
        """The intent of an item (``send`` when none was recorded)."""
        if not text:
            return cls("send")
        data = json.loads(text)
        return cls(
            op=str(data["op"]),
            key_packages=tuple(b64decode(kp) for kp in data.get("key_packages", ())),
            accounts=tuple(str(a) for a in data.get("accounts", ())),
            name=data.get("name"),
            clients=tuple(str(c) for c in data.get("clients", ())),
            seconds=None if data.get("seconds") is None else int(data["seconds"]),
            kind=None if data.get("kind") is None else str(data["kind"]),
            claims=tuple(b64decode(token) for token in data.get("claims", ())),
            notices=tuple(b64decode(notice) for notice in data.get("notices", ())),
        )


def one_add_each(key_packages: Sequence[bytes], tokens: ClaimTokens) -> list[str]:
    """An ``add`` intent (JSON) for each of ``key_packages``, each with one claim's token.

    For adding one device to many groups: its KeyPackages were claimed once
    per group (a last-resort one maybe several times), and each commit
    needs a claim of its own (docs/metadata.md §3).
    """
    return [
        Intent("add", key_packages=(kp,), claims=tokens.take((kp,))).dumps() for kp in key_packages
    ]


def build_commit(
    group: Group,
    intent: Intent,
    random: RandomSource,
    *,
    now: int,
    leaf_extensions: Sequence[Extension] | None = None,
    capabilities: Capabilities | None = None,
) -> CommitResult | None:
    """The commit for ``intent`` in the group's current epoch, or None if moot.

    ``leaf_extensions``: new extensions for this client's leaf, carried by
    the commit's path (a delivery address in place of the queue ID, the
    contact token: :mod:`.leaf_addresses`), and ``capabilities`` that list
    them; the commit then has a path.

    InvalidMessageError (a peer's fault: a KeyPackage that does not verify)
    and UsageError propagate.
    """

    def commit(**kwargs: Any) -> CommitResult:
        return group.commit(
            random,
            now=now,
            leaf_extensions=leaf_extensions,
            capabilities=capabilities,
            **kwargs,
        )

    pending = bool(group.pending_proposals())
    if intent.op == "add":
        present = {(m.account_id, m.client_id) for m in group_members(group)}
        # The devices group takes only this account's devices (docs/devices.md §3).
        info = ConversationInfo.from_extensions(group.extensions)
        own = group.member(group.leaf_index)
        me = None if own is None else group_member(own)
        only = (
            me.account_id
            if me is not None and info is not None and info.kind == "devices"
            else None
        )
        to_add = []
        for data in intent.key_packages:
            key_package, member = key_package_member(data)
            if only is not None and member.account_id != only:
                continue
            if (member.account_id, member.client_id) not in present:
                to_add.append(key_package)
                present.add((member.account_id, member.client_id))
        if not to_add and not pending:
            return None
        return commit(add=to_add)
    if intent.op == "remove":
        wanted = set(intent.accounts)
        leaves = [
            m.leaf_index
            for m in group_members(group)
            if m.account_id in wanted and m.leaf_index != group.leaf_index
        ]
        if not leaves and not pending:
            return None
        # Removing members who asked to leave: their notices say so (RFC 9420 §6).
        return commit(remove=leaves, authenticated_data=sealed_notices(group, intent.notices))
    if intent.op == "remove_clients":
        own = group.member(group.leaf_index)
        me = None if own is None else group_member(own)
        wanted = set(intent.clients)
        proposed = {
            p.proposal.body.removed
            for p in group.pending_proposals()
            if isinstance(p.proposal.body, Remove)
        }
        leaves = [
            m.leaf_index
            for m in group_members(group)
            if me is not None
            and m.account_id == me.account_id
            and m.client_id in wanted
            and m.leaf_index != group.leaf_index
            and m.leaf_index not in proposed
        ]
        if not leaves and not pending:
            return None
        return commit(remove=leaves)
    if intent.op == "rename":
        info = ConversationInfo.from_extensions(group.extensions)
        if info is None or (info.name == (intent.name or None) and not pending):
            return None if not pending else commit()
        renamed = replace(info, name=intent.name or None)
        extensions = with_conversation_info(group.extensions, renamed)
        return commit(group_context_extensions=extensions)
    if intent.op == "set_timer":
        seconds = intent.seconds or 0
        info = ConversationInfo.from_extensions(group.extensions)
        if info is None:  # unreadable: written anew from what this client stored
            kind = ConversationKind(intent.kind or ConversationKind.GROUP)
            info = ConversationInfo(kind, intent.name or None)
        elif info.disappearing_seconds == seconds:
            return commit() if pending else None
        timed = replace(info, disappearing_seconds=seconds)
        extensions = with_conversation_info(group.extensions, timed)
        return commit(group_context_extensions=extensions)
    if intent.op == "commit_pending":
        return commit() if pending else None
    if intent.op in ("rotate", "move"):
        return commit(force_path=True)
    raise ValueError(f"{intent.op!r} is not a commit")
