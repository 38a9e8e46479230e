"""The secret tree and its per-sender hash ratchets (RFC 9420 §9).

A :class:`SecretTree` is built from an epoch's ``encryption_secret`` and
derives, lazily, the handshake and application ratchets of each leaf
(RFC 9420 §9, §9.1):

* a leaf's ratchets are derived only when a key of that leaf is first asked
  for; every tree secret on the way down is deleted as soon as both of its
  children have been derived, and the leaf secret once both ratchets exist
  (RFC 9420 §9.2);
* keys and nonces are single use: once handed out for a generation they are
  deleted, and asking again raises :class:`GenerationConsumedError`;
* out-of-order delivery is bounded by a :class:`SecretTreeConfig`: keys of
  skipped generations are kept only within ``out_of_order_tolerance``
  generations of the newest one seen, and a generation more than
  ``maximum_forward_distance`` ahead raises :class:`GenerationTooFarError`.

Receivers should prefer :meth:`SecretTree.open`, which consumes a key only if
the caller's decryption with it succeeds, so a forged message cannot burn a
key or advance a ratchet. The whole state encodes to bytes
(:meth:`SecretTree.to_bytes`) so that a group can be persisted mid-epoch and
restored exactly; or slot by slot (:meth:`SecretTree.slots`,
:meth:`SecretTree.take_changes` for the slots changed since the last call,
:meth:`SecretTree.load_slots`), so that a message is persisted by writing
the few slots it changed.

Also here: the sender-data key and nonce (RFC 9420 §6.3.2), which come from
the same epoch's ``sender_data_secret`` and are used alongside the tree.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeVar

from . import treemath
from .ciphersuite import CipherSuite, HmacKey, get_cipher_suite, kdf_label_prefix
from .codec import Reader, Struct, Writer
from .errors import DecodeError, DecryptionError, UsageError, ValidationError

__all__ = [
    "MAX_GENERATION",
    "GenerationConsumedError",
    "GenerationError",
    "GenerationTooFarError",
    "RatchetKey",
    "RatchetType",
    "SecretTree",
    "SecretTreeConfig",
    "ratchet_type_for",
    "sender_data_key_nonce",
]

T = TypeVar("T")

#: Generations are ``uint32`` on the wire (RFC 9420 §6.3.2, SenderData).
MAX_GENERATION: Final = 0xFFFF_FFFF

_CONTENT_TYPE_APPLICATION: Final = 1  # ContentType.application (RFC 9420 §6)


class GenerationError(DecryptionError):
    """No key is available for the requested (leaf, ratchet, generation)."""


class GenerationConsumedError(GenerationError):
    """The generation's key was already used, or fell out of the window.

    A replayed message, or one that arrived more than
    ``out_of_order_tolerance`` generations late (RFC 9420 §9.2).
    """


class GenerationTooFarError(GenerationError):
    """The generation is more than ``maximum_forward_distance`` ahead."""


class RatchetType(enum.IntEnum):
    """Which of a leaf's two hash ratchets (RFC 9420 §9)."""

    HANDSHAKE = 0
    APPLICATION = 1


def ratchet_type_for(content_type: int) -> RatchetType:
    """Application messages use the application ratchet; proposals and
    commits the handshake ratchet (RFC 9420 §6.3.1)."""
    if content_type == _CONTENT_TYPE_APPLICATION:
        return RatchetType.APPLICATION
    return RatchetType.HANDSHAKE


class RatchetKey(NamedTuple):
    """One single-use AEAD key and nonce of a hash ratchet (RFC 9420 §9.1)."""

    generation: int
    key: bytes
    nonce: bytes


@dataclass(frozen=True, slots=True)
class SecretTreeConfig:
    """Bounds on out-of-order delivery (cf. OpenMLS ``SenderRatchetConfiguration``).

    ``out_of_order_tolerance``: keys of skipped generations are kept while they
    are at most this many generations behind the next expected one; ``0``
    keeps none. ``maximum_forward_distance``: a generation may be at most this
    far ahead of the next expected one.
    """

    out_of_order_tolerance: int = 100
    maximum_forward_distance: int = 1000

    def __post_init__(self) -> None:
        for name in ("out_of_order_tolerance", "maximum_forward_distance"):
            value = getattr(self, name)
            if not 0 <= value <= MAX_GENERATION:
                raise UsageError(f"{name} must be in [0, 2**32), not {value}")


DEFAULT_CONFIG: Final = SecretTreeConfig()


def sender_data_key_nonce(
    suite: CipherSuite, sender_data_secret: bytes, ciphertext: bytes
) -> tuple[bytes, bytes]:
    """``(sender_data_key, sender_data_nonce)`` for a PrivateMessage (RFC 9420 §6.3.2).

    The sample is the first ``KDF.Nh`` bytes of the content ciphertext, or
    all of it when it is shorter.
    """
    sample = ciphertext[: suite.hash_len]
    key = suite.expand_with_label(sender_data_secret, b"key", sample, suite.key_len)
    nonce = suite.expand_with_label(sender_data_secret, b"nonce", sample, suite.nonce_len)
    return key, nonce


# -- DeriveTreeSecret, fast path ------------------------------------------------


class _RatchetKdf:
    """``DeriveTreeSecret`` for the three ratchet labels (RFC 9420 §9.1).

    Every output is at most ``KDF.Nh`` bytes, so HKDF-Expand is one HMAC over
    ``KDFLabel || 0x01`` (RFC 5869 §2.3); the ``KDFLabel`` prefixes are built
    once per suite. A ratchet step needs three HMACs under the same secret,
    which share one :class:`~messenger.mls.ciphersuite.HmacKey`. Equal to
    :meth:`CipherSuite.derive_tree_secret`, which the tests check.
    """

    __slots__ = ("_key", "_key_len", "_nonce", "_nonce_len", "_secret", "_suite")

    def __init__(self, suite: CipherSuite) -> None:
        if suite.key_len > suite.hash_len or suite.nonce_len > suite.hash_len:
            raise UsageError("AEAD key longer than the hash: single-block expand impossible")
        self._suite = suite
        self._key_len = suite.key_len
        self._nonce_len = suite.nonce_len
        # KDFLabel up to the context, then the context's length: it is the
        # 4-byte generation (RFC 9420 §9).
        self._key = kdf_label_prefix(b"key", suite.key_len) + b"\x04"
        self._nonce = kdf_label_prefix(b"nonce", suite.nonce_len) + b"\x04"
        self._secret = kdf_label_prefix(b"secret", suite.hash_len) + b"\x04"

    def step(self, secret: bytes, generation: int) -> tuple[bytes, bytes, bytes]:
        """``(key, nonce, next ratchet secret)`` of ``generation``."""
        mac = HmacKey(self._suite, secret).mac
        g = generation.to_bytes(4, "big") + b"\x01"
        return (
            mac(self._key + g)[: self._key_len],
            mac(self._nonce + g)[: self._nonce_len],
            mac(self._secret + g),
        )

    def next_secret(self, secret: bytes, generation: int) -> bytes:
        """``DeriveTreeSecret(secret, "secret", generation, KDF.Nh)`` alone."""
        return self._suite.mac(secret, self._secret + generation.to_bytes(4, "big") + b"\x01")


_KDFS: dict[int, _RatchetKdf] = {}


def _kdf_for(suite: CipherSuite) -> _RatchetKdf:
    kdf = _KDFS.get(suite.suite_id)
    if kdf is None:
        kdf = _KDFS[suite.suite_id] = _RatchetKdf(suite)
    return kdf


# -- one hash ratchet (RFC 9420 §9.1) -------------------------------------------

# What derive() found: ``None`` for a stored skipped key, otherwise the
# ratchet secret after the generation and the skipped keys to keep.
_Plan = tuple[bytes, list[tuple[int, bytes, bytes]]] | None


class _HashRatchet:
    __slots__ = ("next_generation", "secret", "skipped")

    def __init__(
        self,
        secret: bytes,
        next_generation: int = 0,
        skipped: dict[int, tuple[bytes, bytes]] | None = None,
    ) -> None:
        #: ``ratchet_secret_[N]_[next_generation]``; its predecessors are gone.
        self.secret = secret
        self.next_generation = next_generation
        #: Unconsumed keys of skipped generations, in ascending order.
        self.skipped: dict[int, tuple[bytes, bytes]] = {} if skipped is None else skipped

    def derive(
        self, kdf: _RatchetKdf, generation: int, config: SecretTreeConfig
    ) -> tuple[bytes, bytes, _Plan]:
        """The key and nonce of ``generation``, without changing the ratchet."""
        nxt = self.next_generation
        if generation < nxt:
            found = self.skipped.get(generation)
            if found is None:
                raise GenerationConsumedError(
                    f"generation {generation} was already used or is too old"
                )
            return found[0], found[1], None
        if generation - nxt > config.maximum_forward_distance:
            raise GenerationTooFarError(
                f"generation {generation} is more than "
                f"{config.maximum_forward_distance} ahead of {nxt}"
            )
        if generation > MAX_GENERATION:
            raise ValidationError(f"generation {generation} does not fit a uint32")
        secret = self.secret
        kept: list[tuple[int, bytes, bytes]] = []
        keep_from = generation + 1 - config.out_of_order_tolerance
        for g in range(nxt, generation):
            if g >= keep_from:
                key, nonce, secret_next = kdf.step(secret, g)
                kept.append((g, key, nonce))
                secret = secret_next
            else:
                secret = kdf.next_secret(secret, g)
        key, nonce, secret = kdf.step(secret, generation)
        return key, nonce, (secret, kept)

    def commit(self, generation: int, plan: _Plan, config: SecretTreeConfig) -> None:
        """Consume ``generation`` as found by :meth:`derive` (RFC 9420 §9.2)."""
        skipped = self.skipped
        if plan is None:
            del skipped[generation]
            return
        self.secret, kept = plan
        self.next_generation = generation + 1
        for g, key, nonce in kept:
            skipped[g] = (key, nonce)
        floor = generation + 1 - config.out_of_order_tolerance
        while skipped:
            oldest = next(iter(skipped))
            if oldest >= floor:
                break
            del skipped[oldest]


# -- the tree (RFC 9420 §9) ------------------------------------------------------


class SecretTree(Struct):
    """The secret tree of one epoch (RFC 9420 §9); mutable, single-threaded.

    ``n_leaves`` is the number of leaves of the epoch's ratchet tree (a power
    of two, RFC 9420 §4.1).
    """

    __slots__ = ("_changed", "_config", "_kdf", "_n_leaves", "_nodes", "_ratchets", "_suite")

    def __init__(
        self,
        suite: CipherSuite,
        encryption_secret: bytes,
        n_leaves: int,
        *,
        config: SecretTreeConfig = DEFAULT_CONFIG,
    ) -> None:
        if len(encryption_secret) != suite.hash_len:
            raise UsageError(f"encryption_secret must be {suite.hash_len} bytes")
        root = treemath.root(n_leaves)  # checks n_leaves
        self._init(suite, n_leaves, config, {root: bytes(encryption_secret)}, {})

    def _init(
        self,
        suite: CipherSuite,
        n_leaves: int,
        config: SecretTreeConfig,
        nodes: dict[int, bytes],
        ratchets: dict[int, tuple[_HashRatchet, _HashRatchet]],
    ) -> None:
        self._suite = suite
        self._kdf = _kdf_for(suite)
        self._n_leaves = n_leaves
        self._config = config
        #: Tree node secrets not yet consumed, by node index.
        self._nodes = nodes
        #: The (handshake, application) ratchets of leaves derived so far.
        self._ratchets = ratchets
        #: Slots (node indices) that may have changed since :meth:`take_changes`.
        self._changed: set[int] = set()

    @property
    def suite(self) -> CipherSuite:
        return self._suite

    @property
    def n_leaves(self) -> int:
        return self._n_leaves

    @property
    def config(self) -> SecretTreeConfig:
        return self._config

    def __repr__(self) -> str:
        return (
            f"SecretTree(suite={self._suite.suite_id}, n_leaves={self._n_leaves}, "
            f"nodes={len(self._nodes)}, ratchets={len(self._ratchets)})"
        )

    # -- lazy derivation ---------------------------------------------------------

    def _leaf_ratchets(self, leaf: int) -> tuple[_HashRatchet, _HashRatchet]:
        found = self._ratchets.get(leaf)
        if found is not None:
            return found
        if not 0 <= leaf < self._n_leaves:
            raise ValidationError(f"leaf {leaf} is outside a tree of {self._n_leaves} leaves")
        suite = self._suite
        nh = suite.hash_len
        nodes = self._nodes
        target = leaf << 1
        changed = self._changed
        changed.add(target)
        secret = nodes.pop(target, None)
        if secret is None:
            for node in treemath.direct_path(target, self._n_leaves):
                secret = nodes.pop(node, None)
                if secret is not None:
                    break
            else:  # decode() and __init__ guarantee a covering node
                raise UsageError("secret tree state does not cover this leaf")
            # RFC 9420 §9: derive both children, keep the one off the path and
            # drop the parent (consumed, RFC 9420 §9.2).
            changed.add(node)
            while node != target:
                half = 1 << (treemath.level(node) - 1)
                left = suite.expand_with_label(secret, b"tree", b"left", nh)
                right = suite.expand_with_label(secret, b"tree", b"right", nh)
                if target < node:
                    node -= half
                    nodes[node + 2 * half] = right
                    changed.add(node + 2 * half)
                    secret = left
                else:
                    node += half
                    nodes[node - 2 * half] = left
                    changed.add(node - 2 * half)
                    secret = right
        ratchets = (
            _HashRatchet(suite.expand_with_label(secret, b"handshake", b"", nh)),
            _HashRatchet(suite.expand_with_label(secret, b"application", b"", nh)),
        )
        self._ratchets[leaf] = ratchets
        return ratchets

    # -- keys --------------------------------------------------------------------

    def next_key(self, leaf: int, ratchet: RatchetType) -> RatchetKey:
        """The sender's next (generation, key, nonce) for its own ``leaf``; consumed."""
        r = self._leaf_ratchets(leaf)[ratchet]
        generation = r.next_generation
        if generation > MAX_GENERATION:
            raise UsageError("the sender ratchet is exhausted for this epoch")
        key, nonce, plan = r.derive(self._kdf, generation, self._config)
        r.commit(generation, plan, self._config)
        self._changed.add(leaf << 1)
        return RatchetKey(generation, key, nonce)

    def key_for(self, leaf: int, ratchet: RatchetType, generation: int) -> RatchetKey:
        """The key and nonce of a received ``generation``, consumed at once.

        Prefer :meth:`open`, which consumes only after a successful decryption.
        """
        r = self._leaf_ratchets(leaf)[ratchet]
        key, nonce, plan = r.derive(self._kdf, generation, self._config)
        r.commit(generation, plan, self._config)
        self._changed.add(leaf << 1)
        return RatchetKey(generation, key, nonce)

    def open(
        self,
        leaf: int,
        ratchet: RatchetType,
        generation: int,
        opener: Callable[[bytes, bytes], T],
    ) -> T:
        """Call ``opener(key, nonce)`` and consume the key only if it returns.

        If ``opener`` raises (say :class:`DecryptionError` for a forged
        ciphertext), the exception propagates and the tree is unchanged --
        including its encoding: a leaf's ratchets first derived for a message
        that fails are dropped again.
        """
        nodes = None if leaf in self._ratchets else dict(self._nodes)
        try:
            r = self._leaf_ratchets(leaf)[ratchet]
            key, nonce, plan = r.derive(self._kdf, generation, self._config)
            result = opener(key, nonce)
        except BaseException:
            if nodes is not None:
                self._nodes = nodes
                self._ratchets.pop(leaf, None)
            raise
        r.commit(generation, plan, self._config)
        self._changed.add(leaf << 1)
        return result

    # -- persistence (private encoding) -----------------------------------------

    def encode(self, w: Writer) -> None:
        """The whole state: suite, size, config, node secrets and ratchets."""
        w.u16(self._suite.suite_id)
        w.u32(self._n_leaves)
        w.u32(self._config.out_of_order_tolerance)
        w.u32(self._config.maximum_forward_distance)
        w.vector(sorted(self._nodes.items()), _write_node)
        w.vector(sorted(self._ratchets.items()), _write_leaf)

    @classmethod
    def decode(cls, r: Reader) -> SecretTree:
        suite_id = r.u16()
        try:
            suite = get_cipher_suite(suite_id)
        except UsageError:
            raise DecodeError(f"unsupported cipher suite 0x{suite_id:04x}") from None
        n_leaves = r.u32()
        if n_leaves == 0 or n_leaves & (n_leaves - 1):
            raise DecodeError(f"tree size {n_leaves} is not a power of two")
        config = SecretTreeConfig(r.u32(), r.u32())
        nh, nk, nn = suite.hash_len, suite.key_len, suite.nonce_len

        nodes: dict[int, bytes] = {}
        for node, secret in r.vector(_read_node):
            if node >= 2 * n_leaves - 1 or node in nodes or len(secret) != nh:
                raise DecodeError(f"invalid secret tree node {node}")
            nodes[node] = secret
        ratchets: dict[int, tuple[_HashRatchet, _HashRatchet]] = {}
        for leaf, pair in r.vector(_read_leaf):
            if leaf >= n_leaves or leaf in ratchets:
                raise DecodeError(f"invalid secret tree leaf {leaf}")
            for ratchet in pair:
                if len(ratchet.secret) != nh or any(
                    len(k) != nk or len(n) != nn for k, n in ratchet.skipped.values()
                ):
                    raise DecodeError(f"invalid ratchet lengths for leaf {leaf}")
            ratchets[leaf] = pair
        _check_cover(n_leaves, nodes, ratchets)
        tree = cls.__new__(cls)
        tree._init(suite, n_leaves, config, nodes, ratchets)
        return tree

    # -- incremental persistence (private encoding) -----------------------------
    #
    # The state is a set of *slots*, by node index (RFC 9420 §4.1 array
    # representation): a tree secret not yet consumed, or at leaf node 2L the
    # ratchets of leaf L. A sender's message changes only its leaf's slot
    # (and the first time, the O(log n) secrets on its way down), so the
    # changed slots are what a client writes per message, not the whole tree.

    def encode_shape(self, w: Writer) -> None:
        """Suite, size and config only: the tree without any secret."""
        w.u16(self._suite.suite_id)
        w.u32(self._n_leaves)
        w.u32(self._config.out_of_order_tolerance)
        w.u32(self._config.maximum_forward_distance)

    @classmethod
    def decode_shape(cls, r: Reader) -> SecretTree:
        """A tree from :meth:`encode_shape`, empty until :meth:`load_slots`."""
        suite_id = r.u16()
        try:
            suite = get_cipher_suite(suite_id)
        except UsageError:
            raise DecodeError(f"unsupported cipher suite 0x{suite_id:04x}") from None
        n_leaves = r.u32()
        if n_leaves == 0 or n_leaves & (n_leaves - 1):
            raise DecodeError(f"tree size {n_leaves} is not a power of two")
        config = SecretTreeConfig(r.u32(), r.u32())
        tree = cls.__new__(cls)
        tree._init(suite, n_leaves, config, {}, {})
        return tree

    def _slot(self, node: int) -> bytes:
        """The encoding of one slot; ``b""`` if it holds nothing."""
        w = Writer()
        if node & 1 == 0 and (pair := self._ratchets.get(node >> 1)) is not None:
            w.u8(1)
            _write_ratchet(w, pair[0])
            _write_ratchet(w, pair[1])
        elif (secret := self._nodes.get(node)) is not None:
            w.u8(0)
            w.opaque(secret)
        return w.getvalue()

    def slots(self) -> list[tuple[int, bytes]]:
        """Every non-empty slot, ``(node, data)`` by node."""
        used = sorted({*self._nodes, *(leaf << 1 for leaf in self._ratchets)})
        return [(node, self._slot(node)) for node in used]

    def clear_changes(self) -> None:
        """Forget the changes (they were persisted with all the slots)."""
        self._changed = set()

    def take_changes(self) -> list[tuple[int, bytes]]:
        """The slots changed since the last call (``b""``: now empty), and forget them."""
        changed = sorted(self._changed)
        self._changed = set()
        return [(node, self._slot(node)) for node in changed]

    def carry_changes(self, other: SecretTree) -> None:
        """Count ``other``'s pending changes as this tree's (it replaces ``other``)."""
        self._changed |= other._changed

    def load_slots(self, slots: Iterable[tuple[int, bytes]]) -> None:
        """Set slots from :meth:`slots` / :meth:`take_changes`; later ones win.

        :meth:`check_complete` must follow.
        """
        n_leaves = self._n_leaves
        nh, nk, nn = self._suite.hash_len, self._suite.key_len, self._suite.nonce_len
        nodes, ratchets = self._nodes, self._ratchets
        for node, data in slots:
            if not 0 <= node < 2 * n_leaves - 1:
                raise DecodeError(f"invalid secret tree node {node}")
            nodes.pop(node, None)
            if node & 1 == 0:
                ratchets.pop(node >> 1, None)
            if not data:
                continue
            r = Reader(bytes(data))
            tag = r.u8()
            if tag == 0:
                secret = r.opaque()
                if len(secret) != nh:
                    raise DecodeError(f"invalid secret tree node {node}")
                nodes[node] = secret
            elif tag == 1 and node & 1 == 0:
                pair = (_read_ratchet(r), _read_ratchet(r))
                for ratchet in pair:
                    if len(ratchet.secret) != nh or any(
                        len(k) != nk or len(n) != nn for k, n in ratchet.skipped.values()
                    ):
                        raise DecodeError(f"invalid ratchet lengths for node {node}")
                ratchets[node >> 1] = pair
            else:
                raise DecodeError(f"invalid secret tree slot {node}")
            r.finish()
        self._changed = set()

    def check_complete(self) -> None:
        """DecodeError unless every leaf is covered exactly once."""
        _check_cover(self._n_leaves, self._nodes, self._ratchets)


def _check_cover(
    n_leaves: int, nodes: dict[int, bytes], ratchets: dict[int, tuple[_HashRatchet, _HashRatchet]]
) -> None:
    """Every leaf is reachable exactly once: by its ratchets or one stored node."""
    spans = [(r.start, r.stop) for r in map(treemath.leaf_range, nodes)]
    spans.extend((leaf, leaf + 1) for leaf in ratchets)
    spans.sort()
    expected = 0
    for start, stop in spans:
        if start != expected:
            raise DecodeError("secret tree state does not cover each leaf exactly once")
        expected = stop
    if expected != n_leaves:
        raise DecodeError("secret tree state does not cover each leaf exactly once")


def _write_node(w: Writer, item: tuple[int, bytes]) -> None:
    w.u32(item[0])
    w.opaque(item[1])


def _read_node(r: Reader) -> tuple[int, bytes]:
    return r.u32(), r.opaque()


def _write_skipped(w: Writer, item: tuple[int, tuple[bytes, bytes]]) -> None:
    w.u32(item[0])
    w.opaque(item[1][0])
    w.opaque(item[1][1])


def _read_skipped(r: Reader) -> tuple[int, tuple[bytes, bytes]]:
    return r.u32(), (r.opaque(), r.opaque())


def _write_ratchet(w: Writer, ratchet: _HashRatchet) -> None:
    w.u64(ratchet.next_generation)
    w.opaque(ratchet.secret)
    w.vector(ratchet.skipped.items(), _write_skipped)


def _read_ratchet(r: Reader) -> _HashRatchet:
    next_generation = r.u64()
    if next_generation > MAX_GENERATION + 1:
        raise DecodeError(f"ratchet generation {next_generation} out of range")
    secret = r.opaque()
    skipped: dict[int, tuple[bytes, bytes]] = {}
    last = -1
    for generation, key_nonce in r.vector(_read_skipped):
        if not last < generation < next_generation:
            raise DecodeError(f"invalid skipped generation {generation}")
        skipped[generation] = key_nonce
        last = generation
    return _HashRatchet(secret, next_generation, skipped)


def _write_leaf(w: Writer, item: tuple[int, tuple[_HashRatchet, _HashRatchet]]) -> None:
    w.u32(item[0])
    _write_ratchet(w, item[1][0])
    _write_ratchet(w, item[1][1])


def _read_leaf(r: Reader) -> tuple[int, tuple[_HashRatchet, _HashRatchet]]:
    return r.u32(), (_read_ratchet(r), _read_ratchet(r))
