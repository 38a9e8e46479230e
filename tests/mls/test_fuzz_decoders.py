"""Every decoder in messenger.mls against hostile bytes (RFC 9420 §2.1).

The structs are found by walking the package, so a new ``Struct`` subclass is
fuzzed without touching this file. For each one:

* valid encodings (taken from messages.json, derived from it, or built from
  the dataclass fields) decode and re-encode byte for byte;
* random bytes, and valid encodings with bit flips, truncations, insertions,
  deletions and changed length bytes, raise nothing but the peer's-fault
  errors (``InvalidMessageError``, in practice ``DecodeError``); whatever does
  decode re-encodes to the same bytes, because MLS encodings are canonical.

The number of examples comes from the Hypothesis profile (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import importlib
import inspect
import pkgutil
import random
import types
import typing
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import messenger.mls
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.codec import Reader, Struct
from messenger.mls.commit import Commit
from messenger.mls.content import (
    AuthenticatedContentTBM,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    PrivateMessage,
    PrivateMessageContent,
    PublicMessage,
    Sender,
    SenderData,
    SenderType,
    framed_content_tbs,
)
from messenger.mls.credentials import Credential
from messenger.mls.errors import InvalidMessageError, MLSError
from messenger.mls.extensions import (
    ApplicationId,
    Extension,
    ExtensionBody,
    ExternalPub,
    ExternalSender,
    ExternalSenders,
    RequiredCapabilities,
)
from messenger.mls.group_context import GroupContext
from messenger.mls.key_package import KeyPackage
from messenger.mls.key_package_bundle import KeyPackageBundle, generate_key_package
from messenger.mls.leaf_node import LeafNode
from messenger.mls.messages import MLSMessage
from messenger.mls.nodes import ParentNode, RatchetTree
from messenger.mls.proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalOrRef,
    ReInit,
    Remove,
    Update,
)
from messenger.mls.secret_tree import SecretTree
from messenger.mls.welcome import GroupInfo, GroupSecrets
from tests.mls.vectors import h, load

Decoder = Callable[[Reader], Struct]

# -- discovery ---------------------------------------------------------------------------


def _discover() -> list[type[Struct]]:
    found: set[type[Struct]] = set()
    for info in pkgutil.iter_modules(messenger.mls.__path__):
        module = importlib.import_module(f"messenger.mls.{info.name}")
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Struct)
                and obj.__module__ == module.__name__
                and not inspect.isabstract(obj)
            ):
                found.add(obj)
    return sorted(found, key=_name)


def _name(cls: type[Struct]) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__qualname__}"


STRUCTS = _discover()


def _by_content_type(decode: Callable[..., Struct]) -> tuple[Decoder, ...]:
    return tuple(lambda r, ct=ct: decode(r, ct) for ct in ContentType)


#: Decoders that need more than a Reader: one decoder per possible extra argument.
ADAPTERS: dict[type[Struct], tuple[Decoder, ...]] = {
    FramedContentAuthData: _by_content_type(FramedContentAuthData.decode),
    PrivateMessageContent: _by_content_type(PrivateMessageContent.decode),
}


def _decoders(cls: type[Struct]) -> tuple[Decoder, ...]:
    if cls in ADAPTERS:
        return ADAPTERS[cls]
    extra = list(inspect.signature(cls.decode).parameters)[1:]
    assert not extra, f"{_name(cls)}.decode takes {extra}: add an adapter to ADAPTERS"
    return (cls.decode,)


def _decode_all(decoder: Decoder, data: bytes) -> Struct | None:
    """The decoded value, or ``None`` if the peer's bytes were rejected."""
    r = Reader(data)
    try:
        value = decoder(r)
        r.finish()
    except InvalidMessageError:
        return None
    except MLSError as exc:  # e.g. UsageError: bad input is never the caller's fault
        pytest.fail(f"decoding raised {type(exc).__name__}: {exc}", pytrace=False)
    return value


def _check_decoders(cls: type[Struct], data: bytes) -> int:
    """Decode with every decoder of ``cls``; successes must re-encode to ``data``."""
    successes = 0
    for decoder in _decoders(cls):
        value = _decode_all(decoder, data)
        if value is not None:
            successes += 1
            assert value.to_bytes() == data, f"{_name(cls)}: re-encoding differs"
    return successes


# -- valid encodings ---------------------------------------------------------------------

#: messages.json fields and the struct each decodes as (test-vectors.md, "Messages").
VECTOR_FIELDS: dict[str, type[Struct]] = {
    "mls_welcome": MLSMessage,
    "mls_group_info": MLSMessage,
    "mls_key_package": MLSMessage,
    "ratchet_tree": RatchetTree,
    "group_secrets": GroupSecrets,
    "add_proposal": Add,
    "update_proposal": Update,
    "remove_proposal": Remove,
    "pre_shared_key_proposal": PreSharedKey,
    "re_init_proposal": ReInit,
    "external_init_proposal": ExternalInit,
    "group_context_extensions_proposal": GroupContextExtensions,
    "commit": Commit,
    "public_message_application": MLSMessage,
    "public_message_proposal": MLSMessage,
    "public_message_commit": MLSMessage,
    "private_message": MLSMessage,
}

#: Seeds for structs that are not plain dataclasses of wire values.
FACTORIES: dict[type[Struct], Callable[[], Iterable[Struct]]] = {
    SecretTree: lambda: [
        SecretTree(get_cipher_suite(1), bytes(32), 1),
        SecretTree(get_cipher_suite(5), bytes(range(64)), 4),
    ],
    KeyPackageBundle: lambda: [
        generate_key_package(
            get_cipher_suite(suite),
            Credential.basic(b"fuzz"),
            get_cipher_suite(suite).generate_signature_key_pair(random.Random(suite).randbytes)[0],
            random.Random(suite).randbytes,
            now=1_700_000_000,
        )
        for suite in (1, 2, 0xF001, 0xF00A)
    ],
}

_MAX_SEEDS = 24


class _Corpus:
    def __init__(self) -> None:
        self.values: dict[type[Struct], dict[bytes, Struct]] = {}

    def add(self, value: object) -> None:
        """Record ``value`` and every struct nested in it."""
        if isinstance(value, tuple):
            for item in value:
                self.add(item)
            return
        if not isinstance(value, Struct):
            return
        self.values.setdefault(type(value), {})[value.to_bytes()] = value
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                self.add(getattr(value, f.name))

    def of(self, cls: type[Any]) -> list[Any]:
        return list(self.values.get(cls, {}).values())


def _derive(corpus: _Corpus) -> None:
    """Structs that messages.json holds only implicitly."""
    contexts = corpus.of(GroupContext)
    for kp in corpus.of(KeyPackage):
        corpus.add(kp.to_tbs())
        corpus.add(ExternalPub(kp.init_key))
        leaf = kp.leaf_node
        corpus.add(ExternalSenders((ExternalSender(leaf.signature_key, leaf.credential),)))
    for leaf in corpus.of(LeafNode):
        corpus.add(leaf.to_tbs(b"group", 7))
        corpus.add(ApplicationId(leaf.signature_key[:5]))
    for gi in corpus.of(GroupInfo):
        corpus.add(gi.to_tbs())
    for body_cls in (Add, Update, Remove, PreSharedKey, ReInit, ExternalInit):
        for body in corpus.of(body_cls):
            corpus.add(MLSMessage(_public(Proposal(body), Sender.external(2))))
            corpus.add(ProposalOrRef.by_value(body))
    for context in contexts:
        corpus.add(GroupContextExtensions(context.extensions))
        corpus.add(MLSMessage(_public(Proposal(GroupContextExtensions(context.extensions)))))
    for commit in corpus.of(Commit):
        corpus.add(MLSMessage(_public(commit, Sender.new_member_commit())))
    for tree in corpus.of(RatchetTree):
        leaf = next(n.value for n in tree.nodes if n is not None)
        parents = (
            ParentNode(leaf.encryption_key),
            ParentNode(leaf.encryption_key, leaf.signature_key, (1, 3, 0xFFFFFFFF)),
        )
        corpus.add(RatchetTree.from_values((leaf, parents[0], None, parents[1], leaf)))
    for pm in corpus.of(PublicMessage):
        ac = pm.authenticated_content()
        corpus.add(ac)
        tbs = framed_content_tbs(ac.wire_format, ac.content, contexts[0])
        corpus.add(AuthenticatedContentTBM(tbs, ac.auth))
        corpus.add(PrivateMessageContent(pm.content.content, pm.auth, padding_length=3))
        corpus.add(PrivateMessageContent(pm.content.content, pm.auth))
        if ac.content_type == ContentType.COMMIT:
            corpus.add(ac.confirmed_transcript_hash_input())
            corpus.add(ac.interim_transcript_hash_input())
    for pm in corpus.of(PrivateMessage):
        corpus.add(pm.sender_data_aad())
        corpus.add(pm.content_aad())
        corpus.add(SenderData(pm.epoch & 0xFFFF, len(pm.ciphertext), pm.ciphertext[:4]))
    for ext in corpus.of(Extension):
        for body in (ApplicationId, ExternalPub, ExternalSenders, RequiredCapabilities):
            if ext.extension_type == body.extension_type:
                corpus.add(body.from_extension(ext))
    corpus.add(RequiredCapabilities((0x0A0A, 0xF000), (0xF001,), (1, 2)))
    corpus.add(Credential.x509([b"end-entity", b"intermediate"]))


def _public(content: Proposal | Commit, sender: Sender | None = None) -> PublicMessage:
    """A PublicMessage from a non-member (no membership tag) or member 1."""
    framed = FramedContent(b"group", 5, sender or Sender.member(1), b"", content)
    tag = b"t" * 32 if isinstance(content, Commit) else None
    membership_tag = b"m" * 32 if framed.sender.sender_type == SenderType.MEMBER else None
    return PublicMessage(framed, FramedContentAuthData(b"s" * 64, tag), membership_tag)


class _CannotBuild(Exception):
    pass


def _build(tp: Any) -> Any:
    """A small value of type ``tp``, for structs that no vector carries."""
    origin = typing.get_origin(tp)
    if tp is bytes:
        return b"\x01\x02\x03"
    if tp is bool:
        return True
    if tp is int:
        return 1
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return next(iter(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return (_build(args[0]),)
        return tuple(_build(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is not type(None):
                try:
                    return _build(arg)
                except _CannotBuild:
                    continue
        raise _CannotBuild(tp)
    if inspect.isclass(tp) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: _build(hints[f.name]) for f in dataclasses.fields(tp) if f.init}
        try:
            return tp(**kwargs)
        except MLSError as exc:
            raise _CannotBuild(tp) from exc
    raise _CannotBuild(tp)


@cache
def _corpus() -> dict[type[Struct], tuple[bytes, ...]]:
    corpus = _Corpus()
    for tc in load("messages")[::25]:
        for field, cls in VECTOR_FIELDS.items():
            corpus.add(cls.from_bytes(h(tc[field])))
    _derive(corpus)
    for factory in FACTORIES.values():
        for value in factory():
            corpus.add(value)
    for cls in STRUCTS:
        if cls not in corpus.values:
            with contextlib.suppress(_CannotBuild):
                corpus.add(_build(cls))
    seeds: dict[type[Struct], tuple[bytes, ...]] = {}
    for cls, values in corpus.values.items():
        encodings = sorted(values, key=lambda b: (len(b), b))
        step = max(1, len(encodings) // _MAX_SEEDS)
        seeds[cls] = tuple(encodings[::step][:_MAX_SEEDS])
    return seeds


def _seeds(cls: type[Struct]) -> tuple[bytes, ...]:
    seeds = _corpus().get(cls, ())
    assert seeds, f"no valid encoding of {_name(cls)}: add a seed (FACTORIES or _derive)"
    return seeds


# -- the tests -----------------------------------------------------------------------------


def test_discovery_finds_the_wire_structs() -> None:
    names = {_name(cls) for cls in STRUCTS}
    for expected in ("messages.MLSMessage", "content.PrivateMessageContent", "nodes.RatchetTree"):
        assert expected in names
    assert ExtensionBody not in STRUCTS
    assert Struct not in STRUCTS


@pytest.mark.parametrize("cls", STRUCTS, ids=_name)
def test_valid_encodings_round_trip(cls: type[Struct]) -> None:
    for data in _seeds(cls):
        assert _check_decoders(cls, data) >= 1, f"{_name(cls)}: seed {data.hex()} does not decode"


@pytest.mark.parametrize("cls", STRUCTS, ids=_name)
@given(data=st.binary(max_size=128))
def test_random_bytes(cls: type[Struct], data: bytes) -> None:
    _check_decoders(cls, data)


_LENGTH_BYTES = (0x00, 0x01, 0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF)


@st.composite
def _mutations(draw: st.DrawFn, seeds: tuple[bytes, ...]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(("flip", "truncate", "insert", "delete", "length")))
        if kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif not data:
            continue
        elif kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            delta = draw(st.sampled_from((-1, 1, None)))
            new = draw(st.sampled_from(_LENGTH_BYTES)) if delta is None else data[pos] + delta
            data[pos] = new & 0xFF
    return bytes(data)


@pytest.mark.parametrize("cls", STRUCTS, ids=_name)
@given(data=st.data())
def test_mutated_valid_encodings(cls: type[Struct], data: st.DataObject) -> None:
    _check_decoders(cls, data.draw(_mutations(_seeds(cls)), label="input"))
