"""MLS groups as conversations: extensions, members, KeyPackages, the cache.

Three private-use extensions (RFC 9420 §13.1, §17.3: 0xF000-0xFFFF) carry
what the messenger needs in MLS itself:

* ``conversation_info`` (0xF001), a GroupContext extension: the kind of
  conversation (one-to-one or group) and the group's name. Renaming is a
  GroupContextExtensions proposal (RFC 9420 §12.1.7) replacing it, so every
  member agrees on the name as part of the epoch::

      struct {
          uint8 kind;                      // 1 direct, 2 group
          opaque name<V>;
          [uint32 disappearing_seconds;]   // only when not 0
      } ConversationInfo;

  kind 3 is the account's devices group (docs/devices.md §3), whose members
  are exactly one account's devices. The disappearing-message timer
  (docs/attachments.md §7) is written only when it is set, so a group
  without one encodes byte for byte as before; a decoder takes both forms
  and refuses a timer outside 10 seconds to 1 year (the whole extension is
  then ignored, as any malformed one).

* ``delivery_queue`` (0xF002), a LeafNode extension: the member's delivery
  address on the server, its queue ID sealed by the server so that no one
  who reads the leaf learns the queue ID (:mod:`messenger.api.delivery_address`;
  leaves from before carry the plain queue ID). A committer must tell the
  server the member set of the new epoch (docs/server.md, "Commits"); it
  reads the addresses from the leaves of the ratchet tree, so any member can
  commit, including one that joined later.

* ``contact_token`` (0xF003), a LeafNode extension: the member's account's
  contact token (:mod:`.contact_tokens`, docs/metadata.md §1), so that the
  group's members can claim that account's KeyPackages for a new group.
  Listed in this client's capabilities but required by no group: the
  leaves of apps from before lack it.

A group's cipher suite is one of :data:`~.identity.GROUP_SUITES` (suite 1
or the hybrid post-quantum 0xF001, docs/pq-suites.md); both sign with
Ed25519, so one signature key and credential serve both. KeyPackages are
made per suite (:func:`new_key_package`), each listing every suite this
client supports (RFC 9420 §7.2); a join takes the group's suite from the
KeyPackage bundle (a Welcome) or the GroupInfo (an external join).

Every KeyPackage this client makes lists the three types in its
capabilities (RFC 9420 §7.2; a GroupContextExtensions proposal is valid only
if every member supports the extensions, §12.1.7), and each group requires
the first two (``required_capabilities``, §11.1), so a client that cannot
carry them cannot be added.

:class:`GroupCache` keeps the loaded :class:`~messenger.mls.group.Group`
objects; the store holds their serialized state (stage, persist, merge:
architecture guide, convention 4). Its :class:`MLSWorker` runs the MLS work
(building a commit, joining, processing a message, making KeyPackages,
loading a state) in one thread of its own, so that the event loop -- the
UI's -- stays responsive; a group is touched only by the holder of its lock
(:meth:`~messenger.client.session.Session.group_lock`), and the worker works
on it only while the holder awaits the result.

:func:`open_welcome` reads which group a Welcome is for, and which member
signed its GroupInfo, before anything is joined: a Welcome for a group ID
this client already has is never joined (RFC 9420 §12.4.3.1: the group ID
must be unique among the client's groups), and the signer -- the committer
that added this client -- is named in the new conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, ParamSpec, TypeVar

from messenger.api.delivery_address import DELIVERY_QUEUE_EXTENSION as DELIVERY_QUEUE_EXTENSION_TYPE
from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite
from messenger.mls.codec import Reader, Writer
from messenger.mls.credentials import Credential
from messenger.mls.errors import DecodeError, InvalidMessageError, ValidationError
from messenger.mls.events import Member
from messenger.mls.extensions import Extension, RequiredCapabilities, find_extension
from messenger.mls.group import Group
from messenger.mls.group_state import GroupConfig, StateRecord
from messenger.mls.joining import open_group_info, open_group_secrets
from messenger.mls.key_package import KeyPackage
from messenger.mls.key_package_bundle import (
    KeyPackageBundle,
    default_capabilities,
    generate_key_package,
)
from messenger.mls.leaf_node import Capabilities
from messenger.mls.messages import MLSMessage
from messenger.mls.psk import PSKType, ResumptionPSKUsage
from messenger.mls.welcome import Welcome

from .contact_tokens import CONTACT_TOKEN_EXTENSION, own_token, token_extension
from .disappearing import valid_timer
from .heap import HEAVY_S, settle
from .identity import (
    CIPHER_SUITE,
    GROUP_SUITES,
    Account,
    MemberIdentity,
    member_identity,
    same_client,
)
from .store.async_store import AsyncStore
from .store.conversations import ConversationKind
from .thread_switching import fair_switching

__all__ = [
    "CONVERSATION_INFO_EXTENSION",
    "DELIVERY_QUEUE_EXTENSION",
    "GROUP_CONFIG",
    "ConversationInfo",
    "GroupCache",
    "GroupMember",
    "MLSWorker",
    "SuccessorWelcome",
    "WelcomeHeader",
    "group_extensions",
    "group_info_suite",
    "group_member",
    "group_members",
    "join_external",
    "key_package_member",
    "key_package_suite",
    "leaf_capabilities",
    "leaf_extensions",
    "member_at",
    "new_key_package",
    "open_welcome",
    "with_conversation_info",
]

CONVERSATION_INFO_EXTENSION: Final = 0xF001
DELIVERY_QUEUE_EXTENSION: Final = DELIVERY_QUEUE_EXTENSION_TYPE
#: What every group requires of its members' leaves (RFC 9420 §11.1).
_OURS: Final = (CONVERSATION_INFO_EXTENSION, DELIVERY_QUEUE_EXTENSION)
#: What this client's leaves list: the required ones and ``contact_token``
#: (:mod:`.contact_tokens`), which no group requires (old apps' leaves lack it).
_LISTED: Final = (*_OURS, CONTACT_TOKEN_EXTENSION)
_MAX_NAME_BYTES: Final = 256

#: Handshakes as PrivateMessage, so the server does not see who commits what
#: (RFC 9420 §6; docs/threat-model.md); a few past epochs' keys are kept for
#: application messages that cross a commit (RFC 9420 §15.3).
GROUP_CONFIG: Final = GroupConfig(encrypt_handshake=True, max_past_epochs=5)

_KINDS: Final = {ConversationKind.DIRECT: 1, ConversationKind.GROUP: 2, ConversationKind.DEVICES: 3}


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    """The ``conversation_info`` GroupContext extension."""

    kind: ConversationKind
    name: str | None = None
    disappearing_seconds: int = 0
    """The group's disappearing-message timer (0: off; docs/attachments.md §7)."""

    def to_extension(self) -> Extension:
        w = Writer()
        w.u8(_KINDS[self.kind])
        name = (self.name or "").encode("utf-8")
        if len(name) > _MAX_NAME_BYTES:
            raise ValueError(f"a group name is at most {_MAX_NAME_BYTES} bytes")
        w.opaque(name)
        if not valid_timer(self.disappearing_seconds):
            raise ValueError("a disappearing-message timer is 0 or 10 seconds to 1 year")
        if self.disappearing_seconds:
            w.u32(self.disappearing_seconds)
        return Extension(CONVERSATION_INFO_EXTENSION, w.getvalue())

    @classmethod
    def from_extensions(cls, extensions: Sequence[Extension]) -> ConversationInfo | None:
        """The info in a GroupContext's extensions (None if absent or malformed)."""
        ext = find_extension(extensions, CONVERSATION_INFO_EXTENSION)
        if ext is None:
            return None
        try:
            r = Reader(ext.extension_data)
            raw_kind = r.u8()
            name = r.opaque().decode("utf-8")
            seconds = 0 if r.at_end() else r.u32()
            r.finish()
        except (DecodeError, UnicodeDecodeError):
            return None
        kinds = {v: k for k, v in _KINDS.items()}
        if raw_kind not in kinds or len(name.encode()) > _MAX_NAME_BYTES:
            return None
        if not valid_timer(seconds):
            return None
        return cls(kinds[raw_kind], name or None, seconds)


def group_extensions(info: ConversationInfo) -> list[Extension]:
    """The GroupContext extensions of a new group."""
    required = RequiredCapabilities(extension_types=_OURS)
    return [info.to_extension(), required.to_extension()]


def with_conversation_info(
    extensions: Sequence[Extension], info: ConversationInfo
) -> list[Extension]:
    """``extensions`` with the conversation info replaced (for a rename)."""
    kept = [e for e in extensions if e.extension_type != CONVERSATION_INFO_EXTENSION]
    return [info.to_extension(), *kept]


def _queue_extension(address: str) -> Extension:
    return Extension(DELIVERY_QUEUE_EXTENSION, address.encode("ascii"))


def leaf_extensions(account: Account) -> list[Extension]:
    """The extensions of a leaf this client makes: its delivery address, and its
    account's contact token if it has one (:mod:`.contact_tokens`)."""
    token = own_token(account)
    found = [_queue_extension(account.leaf_queue)]
    if token is not None:
        found.append(token_extension(token))
    return found


def _queue_of(member: Member) -> str | None:
    ext = find_extension(member.extensions, DELIVERY_QUEUE_EXTENSION)
    if ext is None:
        return None
    try:
        queue = ext.extension_data.decode("ascii")
    except UnicodeDecodeError:
        return None
    return queue if 0 < len(queue) <= 64 else None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member of the current epoch: its leaf, identity and delivery queue."""

    leaf_index: int
    account_id: str
    client_id: str
    signature_key: bytes
    queue_id: str | None
    account_key: bytes | None = None
    """The account key its credential names (docs/devices.md §1); None: version 1."""
    certified: bool = False
    """Whether its device certificate verifies under :attr:`account_key`."""

    @property
    def identity(self) -> MemberIdentity:
        return MemberIdentity(
            self.account_id, self.client_id, self.signature_key, self.account_key, self.certified
        )


def group_member(member: Member) -> GroupMember | None:
    """A member as the messenger knows it (None if its credential is not a messenger one)."""
    who = member_identity(member.credential)
    if who is None:
        return None
    return GroupMember(
        member.leaf_index,
        who.account_id,
        who.client_id,
        who.signature_key,
        _queue_of(member),
        who.account_key,
        who.certified,
    )


def group_members(group: Group) -> list[GroupMember]:
    """The members of the group's current epoch, by leaf index."""
    found = (group_member(member) for member in group.members())
    return [member for member in found if member is not None]


def member_at(group: Group, leaf_index: int) -> GroupMember | None:
    """The member at ``leaf_index`` in the group's current epoch (None if blank or foreign)."""
    member = group.member(leaf_index)
    return None if member is None else group_member(member)


@dataclass(frozen=True, slots=True)
class WelcomeHeader:
    """What a Welcome says about its group, decrypted but not verified yet."""

    group_id: bytes
    epoch: int
    signer: int
    """The leaf index of the GroupInfo's signer: the committer that added us."""


@dataclass(frozen=True, slots=True)
class SuccessorWelcome:
    """A Welcome to the group that continues a reinitialised one (RFC 9420 §11.2),
    or one started again from a group that cannot go on (a branch, §11.3).

    Its GroupInfo is encrypted under a key that needs the old group's
    resumption PSK (§8, §8.6), so only the old group's ID is read here:
    :func:`~.suite_upgrade.join_successor` or :func:`~.group_restart.join_branch`
    takes it from there.
    """

    resumes: bytes
    epoch: int
    """The old group's epoch whose resumption PSK it needs: for a ReInit, the
    one its ReInit made; for a branch, the last one its members share."""
    branch: bool = False
    """A branch (``branch`` PSK usage), not a ReInit's successor."""


def open_welcome(welcome: Welcome, bundle: KeyPackageBundle) -> WelcomeHeader | SuccessorWelcome:
    """The group a Welcome to ``bundle`` is for (RFC 9420 §12.4.3.1); MLSError if it does not open.

    Only the GroupSecrets and the GroupInfo are decrypted; nothing is
    verified, so the caller may use the result only to *refuse* the Welcome
    (its group ID is taken) or after :meth:`Group.join_from_welcome` has
    verified the same Welcome. This client's groups use no PSKs but one: the
    ``reinit`` resumption PSK of a group moved to another cipher suite
    (RFC 9420 §8.6, §11.2; :mod:`.suite_upgrade`), or the ``branch`` one of a
    group started again (§11.3; :mod:`.group_restart`): a :class:`SuccessorWelcome`.
    """
    suite = bundle.suite
    secrets = open_group_secrets(suite, welcome, bundle.key_package, bundle.init_private_key)
    if secrets.psks:
        psk = secrets.psks[0]
        if (
            len(secrets.psks) != 1
            or psk.psktype != PSKType.RESUMPTION
            or psk.usage not in (ResumptionPSKUsage.REINIT, ResumptionPSKUsage.BRANCH)
        ):
            raise ValidationError("a Welcome that needs a PSK other than a ReInit's or a branch's")
        branch = psk.usage == ResumptionPSKUsage.BRANCH
        return SuccessorWelcome(bytes(psk.psk_group_id), int(psk.psk_epoch), branch)
    info = open_group_info(suite, welcome, secrets.joiner_secret, None)
    context = info.group_context
    return WelcomeHeader(context.group_id, context.epoch, info.signer)


def key_package_member(data: bytes) -> tuple[KeyPackage, GroupMember]:
    """A claimed KeyPackage and the member it would add; InvalidMessageError if unusable."""
    key_package = MLSMessage.from_bytes(data).key_package
    member = group_member(Member.from_leaf(-1, key_package.leaf_node))
    if member is None or member.queue_id is None:
        raise InvalidMessageError("the KeyPackage has no messenger credential or queue")
    return key_package, member


def key_package_suite(data: bytes) -> int:
    """The cipher suite of an MLSMessage-encoded KeyPackage; DecodeError if it is not one."""
    return int(MLSMessage.from_bytes(data).key_package.cipher_suite)


def group_info_suite(group_info: bytes) -> int:
    """The cipher suite of an MLSMessage-encoded GroupInfo; DecodeError if it is not one."""
    return int(MLSMessage.from_bytes(group_info).group_info.group_context.cipher_suite)


def leaf_capabilities(suite: CipherSuite) -> Capabilities:
    """This client's leaf capabilities in a group of ``suite`` (RFC 9420 §7.2): the
    messenger's extensions (``contact_token`` too) and every suite it makes
    groups in, ``suite`` first."""
    base = default_capabilities(suite, _LISTED)
    suites = (suite.suite_id, *(s for s in GROUP_SUITES if s != suite.suite_id))
    return dataclasses.replace(base, cipher_suites=suites)


def new_key_package(
    account: Account,
    random: Callable[[int], bytes],
    *,
    now: int,
    last_resort: bool = False,
    suite: int = CIPHER_SUITE,
) -> KeyPackageBundle:
    """A KeyPackage of this client in ``suite`` with its private keys (RFC 9420 §10).

    ``suite`` must sign with the account's scheme (any of
    :data:`~.identity.GROUP_SUITES`); ValueError otherwise.
    """
    cipher_suite = get_cipher_suite(suite)
    if suite not in GROUP_SUITES:
        raise ValueError(f"this client makes no groups in cipher suite 0x{suite:04X}")
    return generate_key_package(
        cipher_suite,
        account.mls_credential,
        account.signature_private_key,
        random,
        now=now,
        capabilities=leaf_capabilities(cipher_suite),
        leaf_extensions=leaf_extensions(account),
        last_resort=last_resort,
    )


def join_external(
    account: Account,
    group_info: bytes,
    random: Callable[[int], bytes],
    *,
    now: int,
    resync: int | None = None,
    identity: Callable[[Credential, bytes], bool] | None = None,
) -> tuple[Group, bytes]:
    """Join a group by external Commit (RFC 9420 §12.4.3.2) with this client's leaf;
    the group as joined and the Commit to send. ``resync``: this client's old leaf,
    removed by the same Commit; ``identity``: the validator of the tree's
    credentials (default: the account's). MLSError if the GroupInfo or its tree
    is refused."""
    suite = group_info_suite(group_info)  # RFC 9420 §12.4.3.2: the GroupInfo's suite
    if suite not in GROUP_SUITES:
        raise ValidationError(f"a group in cipher suite 0x{suite:04X}, which this client lacks")
    group, result = Group.join_external(
        group_info,
        credential=account.mls_credential,
        signature_private_key=account.signature_private_key,
        random=random,
        capabilities=leaf_capabilities(get_cipher_suite(suite)),
        leaf_extensions=leaf_extensions(account),
        resync=resync,
        now=now,
        config=GROUP_CONFIG,
        identity=account.verifier if identity is None else identity,
        successor=same_client,
    )
    return group, result.message


_P = ParamSpec("_P")
_T = TypeVar("_T")


class MLSWorker:
    """One thread for a client's MLS work, off the event loop.

    MLS is pure Python and CPU-bound: a commit adding 100 members takes
    about 150 ms, a join to a big group longer. Run on the event loop, it
    would freeze the UI for that long; in this thread the loop keeps
    running: while an operation runs, the interpreter switches threads
    every 0.1 ms (:mod:`.thread_switching`: with the default 5 ms,
    ``cryptography`` releasing the GIL for each of its operations kept the
    loop waiting 20-45 ms). One thread, so MLS operations of
    the client never run at the same time: two of them never touch one
    :class:`Group`, and they compete with the loop for one share of the GIL
    only. The thread starts with the first operation.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)`` in the MLS thread.

        An operation cannot be stopped half-way: if the caller is cancelled,
        this waits for the operation to end before passing the cancellation
        on, so that the caller's group lock is never released while the
        thread still works on the group. The caller then forgets the
        in-memory group (its state may have moved on unsaved).
        """
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mls")
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        with fair_switching:  # the loop's turn comes within a millisecond (thread_switching.py)
            future = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                while not future.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.wait([future])
                raise
        if time.monotonic() - started >= HEAVY_S:
            settle()  # what survived a heavy operation is long-lived (heap.py)
        return result

    def close(self) -> None:
        """Stop the thread once its current operation ends (queued ones are dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


class GroupCache:
    """The groups in memory, loaded from the store on first use.

    Use a group only while holding its lock
    (:meth:`~messenger.client.session.Session.group_lock`).
    """

    def __init__(self, store: AsyncStore, account: Account) -> None:
        self._store = store
        self._account = account
        self._groups: dict[bytes, Group] = {}
        self.worker = MLSWorker()

    def load(self, state: bytes, records: Sequence[StateRecord] = ()) -> Group:
        """A group from its serialized state (and the store's secret-tree
        records over it), with this server's verifier."""
        return Group.from_checkpoint(
            state, records, identity=self._account.verifier, successor=same_client
        )

    async def get(self, group_id: bytes) -> Group | None:
        """The group, or None if this client has no state for it."""
        group = self._groups.get(group_id)
        if group is None:
            saved = await self._store.run(lambda s: s.groups.get(group_id))
            if saved is None:
                return None
            loaded = await self.worker.run(self.load, saved.state, saved.records)
            # Loaded meanwhile by someone else (who should have held the lock): keep theirs.
            group = self._groups.setdefault(group_id, loaded)
        return group

    def put(self, group: Group) -> None:
        self._groups[group.group_id] = group

    def evict(self, group_id: bytes) -> None:
        """Forget the in-memory group (after a failed write, or when it is left)."""
        self._groups.pop(group_id, None)
