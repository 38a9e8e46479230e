"""The persistent state of a group member, and its compact encoding.

A member keeps, besides its signature key (RFC 9420 §5.1.2):

* the current epoch (:class:`EpochState`): GroupContext (RFC 9420 §8.1),
  ratchet tree (§7) and this member's private keys in it (§4.2), the epoch
  secrets (§8), the secret tree with its ratchets as far as they were used
  (§9), the interim transcript hash and the last confirmation tag (§8.2);
* the proposals received in the epoch, for Commits that cover them by
  reference (RFC 9420 §12.1), with the private key of this member's own
  pending Update, if any (§12.1.2);
* a bounded window of past epochs (:class:`PastEpoch`), only for
  application messages that arrive late (RFC 9420 §15.3, §9.2: "a client
  might keep the secret tree for a short time");
* a bounded window of past ``resumption_psk`` values (RFC 9420 §8.6: "The
  application SHOULD specify an upper limit on the number of past epochs");
* a pending ReInit (RFC 9420 §11.2) and whether this member was removed.

:class:`GroupState` holds all of it and encodes to bytes and back exactly
(a private encoding, versioned, for the client's database). A past epoch
keeps the leaves that changed after it, not a whole tree: the member of a
leaf in epoch ``e`` is found by looking through the changes of the epochs
after ``e``, then the current tree.

For incremental persistence the same state splits in two
(:meth:`GroupState.base_bytes`, :meth:`GroupState.records`): the state with
the secret trees reduced to their shape (format 2), and one
:class:`StateRecord` per secret-tree slot of each kept epoch. An
application message changes one slot (its sender's ratchets), or the first
time a sender speaks O(log n) of them (RFC 9420 §9), and
:meth:`GroupState.take_changes` gives just those; :meth:`GroupState.from_parts`
puts base and records back together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from .ciphersuite import CipherSuite, get_cipher_suite
from .codec import Reader, Writer
from .content import Sender
from .errors import DecodeError, InvalidMessageError, UsageError
from .group_context import GroupContext
from .key_schedule import EpochSecrets
from .leaf_node import LeafNode
from .nodes import decode_node_values
from .proposals import Proposal, ReInit
from .ratchet_tree import PublicTree
from .secret_tree import SecretTree, SecretTreeConfig
from .treekem import PrivateTree

__all__ = [
    "CachedProposal",
    "EpochState",
    "GroupCheckpoint",
    "GroupConfig",
    "GroupState",
    "PastEpoch",
    "StateRecord",
]

_MAGIC: Final = b"MLSG"
_FORMAT_VERSION: Final = 1
#: The same without the secret trees' secrets, which are :class:`StateRecord` s.
_FORMAT_SPLIT: Final = 2


class StateRecord(NamedTuple):
    """One slot of the secret tree of ``epoch``: ``node``'s secret or leaf ratchets.

    ``data`` is ``b""`` when the slot became empty (its secret was consumed,
    RFC 9420 §9.2): the record is then a deletion.
    """

    epoch: int
    node: int
    data: bytes


@dataclass(frozen=True, slots=True)
class GroupCheckpoint:
    """What to write to persist a group, from :meth:`Group.checkpoint`.

    ``base`` not None: the whole state, as the state without the secret
    trees' secrets plus *all* its ``records`` -- replace what is stored.
    ``base`` None: only the records of the secret-tree slots that changed
    since the previous checkpoint, for the stored ``epoch`` -- upsert them
    (and delete those with empty ``data``).
    """

    group_id: bytes
    epoch: int
    base: bytes | None = field(repr=False)
    records: tuple[StateRecord, ...] = field(repr=False)

    @property
    def full(self) -> bool:
        return self.base is not None


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """A member's local policy for one group; part of its persistent state.

    * ``encrypt_handshake`` -- send Proposals and Commits as PrivateMessage
      (RFC 9420 §6: SHOULD) rather than PublicMessage, which lets the
      Delivery Service see them (MAY);
    * ``padding_block`` -- pad PrivateMessage plaintexts to a multiple of it
      (RFC 9420 §6.3.1, §15.1);
    * ``max_past_epochs`` -- how many past epochs keep their keys for late
      application messages (RFC 9420 §15.3); 0 keeps none;
    * ``max_resumption_psks`` -- how many past epochs keep their
      ``resumption_psk`` (RFC 9420 §8.6);
    * ``out_of_order_tolerance`` and ``maximum_forward_distance`` -- the
      secret tree's bounds on reordering (RFC 9420 §9.2, §15.3);
    * ``max_lifetime`` -- the longest leaf node lifetime accepted
      (RFC 9420 §7.2), ``None`` for no limit.
    """

    encrypt_handshake: bool = False
    padding_block: int = 32
    max_past_epochs: int = 3
    max_resumption_psks: int = 8
    out_of_order_tolerance: int = 100
    maximum_forward_distance: int = 1000
    max_lifetime: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "padding_block",
            "max_past_epochs",
            "max_resumption_psks",
            "out_of_order_tolerance",
            "maximum_forward_distance",
        ):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF_FFFF:
                raise UsageError(f"{name} must be in [0, 2**32), not {value}")
        if self.max_lifetime is not None and self.max_lifetime < 0:
            raise UsageError("max_lifetime must not be negative")

    @property
    def secret_tree_config(self) -> SecretTreeConfig:
        return SecretTreeConfig(self.out_of_order_tolerance, self.maximum_forward_distance)

    def encode(self, w: Writer) -> None:
        w.boolean(self.encrypt_handshake)
        w.u32(self.padding_block)
        w.u32(self.max_past_epochs)
        w.u32(self.max_resumption_psks)
        w.u32(self.out_of_order_tolerance)
        w.u32(self.maximum_forward_distance)
        w.optional(self.max_lifetime, Writer.u64)

    @classmethod
    def decode(cls, r: Reader) -> GroupConfig:
        return cls(r.boolean(), r.u32(), r.u32(), r.u32(), r.u32(), r.u32(), r.optional(Reader.u64))


def _suite_of(suite_id: int) -> CipherSuite:
    try:
        return get_cipher_suite(suite_id)
    except UsageError:
        raise DecodeError(f"unsupported cipher suite 0x{suite_id:04x}") from None


def _write_tree(w: Writer, tree: PublicTree) -> None:
    w.raw(tree.encode_ratchet_tree())


def _read_tree(r: Reader, suite: CipherSuite) -> PublicTree:
    return PublicTree.from_nodes(suite, decode_node_values(r))


@dataclass(slots=True, eq=False)
class EpochState:
    """Everything a member knows about one epoch it is in (RFC 9420 §8, §9).

    ``tree`` does not change within the epoch; ``secret_tree`` does, as keys
    are used.
    """

    context: GroupContext
    tree: PublicTree
    private: PrivateTree
    secrets: EpochSecrets
    secret_tree: SecretTree
    interim_transcript_hash: bytes
    confirmation_tag: bytes
    #: This member's signature private key for its leaf in this epoch.
    signature_private_key: bytes

    @property
    def suite(self) -> CipherSuite:
        return self.tree.suite

    def encode(self, w: Writer, *, split: bool = False) -> None:
        self.context.encode(w)
        _write_tree(w, self.tree)
        self.private.encode(w)
        self.secrets.encode(w)
        if split:
            self.secret_tree.encode_shape(w)
        else:
            self.secret_tree.encode(w)
        w.opaque(self.interim_transcript_hash)
        w.opaque(self.confirmation_tag)
        w.opaque(self.signature_private_key)

    @classmethod
    def decode(cls, r: Reader, *, split: bool = False) -> EpochState:
        context = GroupContext.decode(r)
        suite = _suite_of(context.cipher_suite)
        tree = _read_tree(r, suite)
        private = PrivateTree.decode(r)
        secrets = EpochSecrets.decode(r)
        secret_tree = SecretTree.decode_shape(r) if split else SecretTree.decode(r)
        state = cls(
            context, tree, private, secrets, secret_tree, r.opaque(), r.opaque(), r.opaque()
        )
        if secret_tree.suite is not suite or secret_tree.n_leaves != tree.n_leaves:
            raise DecodeError("the secret tree does not match the ratchet tree")
        if private.leaf_index >= tree.n_leaves or not private.matches(tree):
            raise DecodeError("the private keys do not match the ratchet tree")
        for name in ("interim_transcript_hash", "confirmation_tag"):
            if len(getattr(state, name)) != suite.hash_len:
                raise DecodeError(f"{name} must be {suite.hash_len} bytes")
        try:
            public = suite.signature_public_key(state.signature_private_key)
        except (UsageError, ValueError):
            raise DecodeError("invalid signature private key") from None
        own = tree.leaf(private.leaf_index)
        if own is None or own.signature_key != public:
            raise DecodeError("the signature key is not this member's")
        for value in (
            secrets.sender_data_secret,
            secrets.encryption_secret,
            secrets.exporter_secret,
            secrets.external_secret,
            secrets.confirmation_key,
            secrets.membership_key,
            secrets.resumption_psk,
            secrets.epoch_authenticator,
            secrets.init_secret,
        ):
            if len(value) != suite.hash_len:
                raise DecodeError(f"epoch secrets must be {suite.hash_len} bytes")
        return state


def _write_leaf_change(w: Writer, item: tuple[int, LeafNode | None]) -> None:
    w.u32(item[0])
    w.optional(item[1], Writer.struct)


def _read_leaf_change(r: Reader) -> tuple[int, LeafNode | None]:
    return r.u32(), r.optional(LeafNode.decode)


@dataclass(slots=True, eq=False)
class PastEpoch:
    """What is kept of a past epoch for late application messages (RFC 9420 §15.3).

    The GroupContext (signatures cover it, RFC 9420 §6.1), the
    ``sender_data_secret`` and the secret tree (RFC 9420 §6.3), and
    ``changed_leaves``: the leaves that the Commit ending this epoch
    changed, with their leaf nodes in this epoch (``None`` for blank).
    """

    context: GroupContext
    sender_data_secret: bytes
    secret_tree: SecretTree
    changed_leaves: dict[int, LeafNode | None]

    @property
    def epoch(self) -> int:
        return self.context.epoch

    def encode(self, w: Writer, *, split: bool = False) -> None:
        self.context.encode(w)
        w.opaque(self.sender_data_secret)
        if split:
            self.secret_tree.encode_shape(w)
        else:
            self.secret_tree.encode(w)
        w.vector(sorted(self.changed_leaves.items(), key=lambda kv: kv[0]), _write_leaf_change)

    @classmethod
    def decode(cls, r: Reader, *, split: bool = False) -> PastEpoch:
        context = GroupContext.decode(r)
        suite = _suite_of(context.cipher_suite)
        secret = r.opaque()
        secret_tree = SecretTree.decode_shape(r) if split else SecretTree.decode(r)
        changed: dict[int, LeafNode | None] = {}
        previous = -1
        for leaf, node in r.vector(_read_leaf_change):
            if leaf <= previous:
                raise DecodeError("changed leaves must be sorted, without repeats")
            previous = leaf
            changed[leaf] = node
        if len(secret) != suite.hash_len or secret_tree.suite is not suite:
            raise DecodeError("past epoch keys do not match its cipher suite")
        return cls(context, secret, secret_tree, changed)


@dataclass(slots=True, eq=False)
class CachedProposal:
    """A proposal received (or sent) in the current epoch (RFC 9420 §12.1).

    ``message_hash`` is the hash of the MLSMessage if this member sent it
    (its own message may come back from the Delivery Service);
    ``update_private_key`` the HPKE private key of this member's own Update's
    leaf, needed if another member commits it (RFC 9420 §12.1.2), and
    ``update_signature_private_key`` its signature key if the Update rotates it.
    """

    ref: bytes
    proposal: Proposal
    sender: Sender
    authenticated_data: bytes = b""
    message_hash: bytes = b""
    update_private_key: bytes = b""
    update_signature_private_key: bytes = b""

    def encode(self, w: Writer) -> None:
        w.opaque(self.ref)
        self.proposal.encode(w)
        self.sender.encode(w)
        w.opaque(self.authenticated_data)
        w.opaque(self.message_hash)
        w.opaque(self.update_private_key)
        w.opaque(self.update_signature_private_key)

    @classmethod
    def decode(cls, r: Reader) -> CachedProposal:
        return cls(
            r.opaque(),
            Proposal.decode(r),
            Sender.decode(r),
            r.opaque(),
            r.opaque(),
            r.opaque(),
            r.opaque(),
        )


def _write_psk(w: Writer, item: tuple[int, bytes]) -> None:
    w.u64(item[0])
    w.opaque(item[1])


def _read_psk(r: Reader) -> tuple[int, bytes]:
    return r.u64(), r.opaque()


@dataclass(slots=True, eq=False)
class GroupState:
    """The whole persistent state of one member of one group.

    ``proposals`` are in the order received; ``past_epochs`` and
    ``resumption_psks`` (``(epoch, resumption_psk)`` of past epochs) newest
    first. :meth:`to_bytes` and :meth:`from_bytes` round-trip exactly.
    """

    config: GroupConfig
    epoch: EpochState
    proposals: list[CachedProposal] = field(default_factory=list)
    past_epochs: list[PastEpoch] = field(default_factory=list)
    resumption_psks: list[tuple[int, bytes]] = field(default_factory=list)
    reinit: ReInit | None = None
    removed: bool = False

    def encode(self, w: Writer, *, split: bool = False) -> None:
        w.raw(_MAGIC)
        w.u8(_FORMAT_SPLIT if split else _FORMAT_VERSION)
        self.config.encode(w)
        self.epoch.encode(w, split=split)
        w.vector(self.proposals, lambda w, p: p.encode(w))
        w.vector(self.past_epochs, lambda w, p: p.encode(w, split=split))
        w.vector(self.resumption_psks, _write_psk)
        w.optional(self.reinit, Writer.struct)
        w.boolean(self.removed)

    def to_bytes(self) -> bytes:
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def decode(cls, r: Reader, *, split: bool = False) -> GroupState:
        """A full state, or with ``split`` one without the secret trees' secrets."""
        if r.read(len(_MAGIC)) != _MAGIC:
            raise DecodeError("not a serialized MLS group")
        version = r.u8()
        if version != (_FORMAT_SPLIT if split else _FORMAT_VERSION):
            if version == _FORMAT_SPLIT:
                raise DecodeError("a group state without its secret tree records")
            raise DecodeError(f"unknown group state format {version}")
        config = GroupConfig.decode(r)
        epoch = EpochState.decode(r, split=split)
        proposals = r.vector(CachedProposal.decode)
        past = r.vector(lambda r: PastEpoch.decode(r, split=split))
        psks = r.vector(_read_psk)
        reinit = r.optional(ReInit.decode)
        removed = r.boolean()
        suite = epoch.suite
        refs = {p.ref for p in proposals}
        if len(refs) != len(proposals):
            raise DecodeError("a proposal is cached twice")
        expected = epoch.context.epoch
        for past_epoch in past:
            if past_epoch.epoch >= expected or past_epoch.context.group_id != (
                epoch.context.group_id
            ):
                raise DecodeError("past epochs must be this group's, newest first")
            expected = past_epoch.epoch
        expected = epoch.context.epoch
        for psk_epoch, psk in psks:
            if psk_epoch >= expected or len(psk) != suite.hash_len:
                raise DecodeError("resumption PSKs must be of past epochs, newest first")
            expected = psk_epoch
        return cls(config, epoch, proposals, past, psks, reinit, removed)

    # -- incremental persistence: a base without secrets, and slot records ----

    def _trees(self) -> list[tuple[int, SecretTree]]:
        trees = [(self.epoch.context.epoch, self.epoch.secret_tree)]
        trees.extend((past.epoch, past.secret_tree) for past in self.past_epochs)
        return trees

    def base_bytes(self) -> bytes:
        """The state without the secret trees' secrets (see :meth:`records`)."""
        w = Writer()
        self.encode(w, split=True)
        return w.getvalue()

    def records(self) -> list[StateRecord]:
        """Every secret tree slot, of this epoch and the past ones."""
        return [
            StateRecord(epoch, node, data)
            for epoch, tree in self._trees()
            for node, data in tree.slots()
        ]

    def clear_changes(self) -> None:
        """Forget the secret trees' changes (all of :meth:`records` was persisted)."""
        for _, tree in self._trees():
            tree.clear_changes()

    def take_changes(self) -> list[StateRecord]:
        """The secret tree slots changed since :meth:`clear_changes` or the last call."""
        return [
            StateRecord(epoch, node, data)
            for epoch, tree in self._trees()
            for node, data in tree.take_changes()
        ]

    @classmethod
    def from_parts(cls, base: bytes, records: Iterable[StateRecord]) -> GroupState:
        """A state from :meth:`base_bytes` and :meth:`records` (then changes, in order).

        A full state (:meth:`to_bytes`) is accepted as ``base`` too, with the
        records applied over it. Records of epochs the state does not keep
        are ignored. :class:`DecodeError` if the result is incomplete.
        """
        data = bytes(base)
        split = data[len(_MAGIC) : len(_MAGIC) + 1] == bytes([_FORMAT_SPLIT])
        r = Reader(data)
        try:
            state = cls.decode(r, split=split)
            r.finish()
            trees = dict(state._trees())
            by_epoch: dict[int, list[tuple[int, bytes]]] = {}
            for record in records:
                if record.epoch in trees:
                    by_epoch.setdefault(record.epoch, []).append((record.node, record.data))
            for epoch, tree in trees.items():
                tree.load_slots(by_epoch.get(epoch, ()))
                tree.check_complete()
        except InvalidMessageError as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"invalid group state: {exc}") from None
        except UsageError as exc:
            raise DecodeError(f"invalid group state: {exc}") from None
        return state

    @staticmethod
    def is_split(data: bytes) -> bool:
        """Whether ``data`` is a :meth:`base_bytes` (it needs its records)."""
        return data[: len(_MAGIC) + 1] == _MAGIC + bytes([_FORMAT_SPLIT])

    @classmethod
    def from_bytes(cls, data: bytes) -> GroupState:
        r = Reader(bytes(data))
        try:
            state = cls.decode(r)
            r.finish()
        except InvalidMessageError as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"invalid group state: {exc}") from None
        except UsageError as exc:
            raise DecodeError(f"invalid group state: {exc}") from None
        return state
