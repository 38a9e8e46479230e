"""RFC 9420 §6-§12 wire structs: messages.json, signatures, and decoding rules."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from messenger.mls.ciphersuite import CIPHER_SUITES, CipherSuite, HPKECiphertext, get_cipher_suite
from messenger.mls.codec import Struct
from messenger.mls.commit import Commit, UpdatePath, UpdatePathNode
from messenger.mls.content import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    FramedContentTBS,
    PrivateMessage,
    PrivateMessageContent,
    PublicMessage,
    Sender,
    SenderData,
    SenderType,
    WireFormat,
    framed_content_tbs,
)
from messenger.mls.credentials import Credential, CredentialType
from messenger.mls.errors import DecodeError, UsageError, ValidationError
from messenger.mls.extensions import (
    ApplicationId,
    Extension,
    ExtensionType,
    ExternalPub,
    ExternalSender,
    ExternalSenders,
    RequiredCapabilities,
    check_unique_extensions,
    find_extension,
)
from messenger.mls.group_context import GroupContext, ProtocolVersion
from messenger.mls.key_package import KeyPackage, KeyPackageTBS
from messenger.mls.leaf_node import (
    Capabilities,
    LeafNode,
    LeafNodeSource,
    LeafNodeTBS,
    Lifetime,
)
from messenger.mls.messages import MLSMessage
from messenger.mls.nodes import Node, ParentNode, RatchetTree
from messenger.mls.proposals import (
    Add,
    ExternalInit,
    GroupContextExtensions,
    PreSharedKey,
    Proposal,
    ProposalOrRef,
    ProposalOrRefType,
    ProposalType,
    ReInit,
    Remove,
    Update,
)
from messenger.mls.psk import PreSharedKeyID
from messenger.mls.welcome import (
    EncryptedGroupSecrets,
    GroupInfo,
    GroupInfoTBS,
    GroupSecrets,
    PathSecret,
    Welcome,
)
from tests.mls.vectors import assert_eq, cases, h

# -- messages.json (test-vectors.md, "Messages") ------------------------------------


def _mls(wire_format: WireFormat, content_type: ContentType | None = None) -> Callable[[Any], None]:
    """A check that an MLSMessage has this wire format (and content type)."""

    def check(msg: Any) -> None:
        assert isinstance(msg, MLSMessage)
        assert_eq("wire_format", msg.wire_format, wire_format)
        if content_type is not None:
            assert_eq("content_type", msg.public_message.content.content_type, content_type)

    return check


#: field -> (the struct it decodes as, an extra check of the decoded value)
FIELDS: dict[str, tuple[type[Struct], Callable[[Any], None] | None]] = {
    "mls_welcome": (MLSMessage, _mls(WireFormat.WELCOME)),
    "mls_group_info": (MLSMessage, _mls(WireFormat.GROUP_INFO)),
    "mls_key_package": (MLSMessage, _mls(WireFormat.KEY_PACKAGE)),
    "ratchet_tree": (RatchetTree, None),
    "group_secrets": (GroupSecrets, None),
    "add_proposal": (Add, None),
    "update_proposal": (Update, None),
    "remove_proposal": (Remove, None),
    "pre_shared_key_proposal": (PreSharedKey, None),
    "re_init_proposal": (ReInit, None),
    "external_init_proposal": (ExternalInit, None),
    "group_context_extensions_proposal": (GroupContextExtensions, None),
    "commit": (Commit, None),
    "public_message_application": (
        MLSMessage,
        _mls(WireFormat.PUBLIC_MESSAGE, ContentType.APPLICATION),
    ),
    "public_message_proposal": (MLSMessage, _mls(WireFormat.PUBLIC_MESSAGE, ContentType.PROPOSAL)),
    "public_message_commit": (MLSMessage, _mls(WireFormat.PUBLIC_MESSAGE, ContentType.COMMIT)),
    "private_message": (MLSMessage, _mls(WireFormat.PRIVATE_MESSAGE)),
}

MESSAGES = cases("messages")


def _decode(field: str, cls: type[Struct], data: bytes) -> Any:
    try:
        return cls.from_bytes(data)
    except DecodeError as exc:
        pytest.fail(f"{field}: does not decode as {cls.__name__}: {exc}", pytrace=False)


@pytest.mark.parametrize("tc", MESSAGES)
def test_messages_vector(tc: dict[str, Any]) -> None:
    assert set(tc) == set(FIELDS), "messages.json fields changed"
    for field, (cls, check) in FIELDS.items():
        data = h(tc[field])
        value = _decode(field, cls, data)
        assert_eq(f"{field}: decoded type", type(value), cls)
        assert_eq(f"{field}: re-encoding", value.to_bytes(), data)
        if check is not None:
            try:
                check(value)
            except AssertionError as exc:
                pytest.fail(f"{field}: {exc}", pytrace=False)


def _key_package(tc: dict[str, Any]) -> KeyPackage:
    return MLSMessage.from_bytes(h(tc["mls_key_package"])).key_package


def _group_info(tc: dict[str, Any]) -> GroupInfo:
    return MLSMessage.from_bytes(h(tc["mls_group_info"])).group_info


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]


@pytest.mark.parametrize("tc", MESSAGES)
def test_key_package_signatures(tc: dict[str, Any]) -> None:
    kp = _key_package(tc)
    suite = get_cipher_suite(kp.cipher_suite)
    assert kp.verify_signature(suite), "KeyPackage signature"
    assert kp.leaf_node.verify_signature(suite), "KeyPackage leaf_node signature"
    assert_eq("KeyPackage ref", kp.ref(suite), suite.key_package_ref(kp.to_bytes()))

    assert not replace(kp, signature=_flip(kp.signature)).verify_signature(suite)
    assert not replace(kp, init_key=_flip(kp.init_key)).verify_signature(suite)
    leaf = kp.leaf_node
    assert not replace(leaf, signature=_flip(leaf.signature)).verify_signature(suite)
    other = replace(leaf, capabilities=replace(leaf.capabilities, versions=(1, 2)))
    assert not other.verify_signature(suite)
    # A key package leaf's signature binds no group: the context is ignored.
    assert leaf.verify_signature(suite, b"some group", 3)


@pytest.mark.parametrize("tc", MESSAGES)
def test_group_info_signature(tc: dict[str, Any]) -> None:
    gi = _group_info(tc)
    suite = get_cipher_suite(gi.group_context.cipher_suite)
    signer = RatchetTree.from_bytes(h(tc["ratchet_tree"])).nodes[2 * gi.signer]
    assert signer is not None
    key = signer.leaf.signature_key
    assert gi.verify_signature(suite, key), "GroupInfo signature"
    assert not replace(gi, signature=_flip(gi.signature)).verify_signature(suite, key)
    assert not replace(gi, signer=gi.signer + 1).verify_signature(suite, key)
    tampered = replace(
        gi, group_context=replace(gi.group_context, epoch=gi.group_context.epoch + 1)
    )
    assert not tampered.verify_signature(suite, key)


@pytest.mark.parametrize("tc", MESSAGES)
def test_commit_path_leaf_signature(tc: dict[str, Any]) -> None:
    msg = MLSMessage.from_bytes(h(tc["public_message_commit"])).public_message
    commit = msg.content.content
    assert isinstance(commit, Commit)
    assert commit.path is not None
    leaf = commit.path.leaf_node
    assert_eq("leaf_node_source", leaf.leaf_node_source, LeafNodeSource.COMMIT)
    suite = get_cipher_suite(_group_info(tc).group_context.cipher_suite)
    group_id, index = msg.content.group_id, msg.content.sender.leaf_index
    assert leaf.verify_signature(suite, group_id, index), "commit path LeafNode signature"
    assert not leaf.verify_signature(suite, group_id, index + 1)
    assert not leaf.verify_signature(suite, group_id + b"x", index)
    with pytest.raises(UsageError):
        leaf.verify_signature(suite)


# -- signing round trips ---------------------------------------------------------------


def _rng(seed: int) -> Callable[[int], bytes]:
    gen = random.Random(seed)
    return lambda n: gen.randbytes(n)


def _capabilities(suite: CipherSuite) -> Capabilities:
    return Capabilities(
        versions=(ProtocolVersion.MLS10,),
        cipher_suites=(suite.suite_id, 0x0A0A),
        extensions=(0x1A1A,),
        proposals=(),
        credentials=(CredentialType.BASIC,),
    )


@pytest.mark.parametrize("suite_id", sorted(CIPHER_SUITES), ids=lambda s: f"suite-{s}")
def test_sign_and_verify_round_trip(suite_id: int) -> None:
    suite = get_cipher_suite(suite_id)
    rng = _rng(suite_id)
    sig_priv, sig_pub = suite.generate_signature_key_pair(rng)
    _, enc_pub = suite.generate_hpke_key_pair(rng)
    _, init_pub = suite.generate_hpke_key_pair(rng)

    leaf = LeafNodeTBS(
        encryption_key=enc_pub,
        signature_key=sig_pub,
        credential=Credential.basic(b"alice"),
        capabilities=_capabilities(suite),
        leaf_node_source=LeafNodeSource.KEY_PACKAGE,
        lifetime=Lifetime(0, 2**64 - 1),
        extensions=(ApplicationId(b"device-1").to_extension(),),
    ).sign(suite, sig_priv)
    assert leaf.verify_signature(suite)
    assert LeafNode.from_bytes(leaf.to_bytes()) == leaf

    kp = KeyPackageTBS(suite_id, init_pub, leaf, (Extension(0x2A2A, b"grease"),)).sign(
        suite, sig_priv
    )
    assert kp.verify_signature(suite)
    assert_eq("KeyPackage version", kp.version, ProtocolVersion.MLS10)
    assert MLSMessage.from_bytes(MLSMessage(kp).to_bytes()).key_package == kp
    assert not replace(kp, extensions=()).verify_signature(suite)

    update = replace(leaf, leaf_node_source=LeafNodeSource.UPDATE, lifetime=None).resign(
        suite, sig_priv, b"group", 5
    )
    assert update.verify_signature(suite, b"group", 5)
    assert not update.verify_signature(suite, b"group", 4)
    assert update.to_tbs(b"group", 5) == LeafNodeTBS.from_bytes(
        update.to_tbs(b"group", 5).to_bytes()
    )

    context = GroupContext(suite_id, b"group", 7, b"t" * 32, b"c" * 32)
    gi = GroupInfoTBS(context, (), b"tag", 0).sign(suite, sig_priv)
    assert gi.verify_signature(suite, sig_pub)
    assert GroupInfo.from_bytes(gi.to_bytes()) == gi


def test_leaf_node_tbs_needs_group_for_update_and_commit() -> None:
    suite = get_cipher_suite(1)
    leaf = LeafNode(
        b"e", b"s", Credential.basic(b"a"), Capabilities(), LeafNodeSource.COMMIT, parent_hash=b""
    )
    with pytest.raises(UsageError):
        leaf.to_tbs()
    tbs = leaf.to_tbs(b"g", 1)
    assert tbs.to_bytes().endswith(b"\x01g\x00\x00\x00\x01")
    assert leaf.verify_signature(suite, b"g", 1) is False
    with pytest.raises(UsageError):
        LeafNode(b"e", b"s", Credential.basic(b"a"), Capabilities(), LeafNodeSource.COMMIT)
    with pytest.raises(UsageError):
        LeafNode(b"e", b"s", Credential.basic(b"a"), Capabilities(), LeafNodeSource.KEY_PACKAGE)
    with pytest.raises(UsageError):
        LeafNodeTBS(b"e", b"s", Credential.basic(b"a"), Capabilities(), LeafNodeSource.UPDATE)


# -- decoding rules ------------------------------------------------------------------------


def test_unknown_credential_type_rejected() -> None:
    assert Credential.from_bytes(bytes.fromhex("00010161")) == Credential.basic(b"a")
    x509 = Credential.x509([b"cert1", b"c2"])
    assert Credential.from_bytes(x509.to_bytes()) == x509
    for raw in ("00000161", "00030161", "0a0a0161"):
        with pytest.raises(DecodeError, match="CredentialType"):
            Credential.from_bytes(bytes.fromhex(raw))
    with pytest.raises(UsageError):
        Credential(CredentialType.BASIC, certificates=(x509.certificates[0],))


def test_unknown_proposal_type_rejected() -> None:
    remove = Proposal(Remove(3))
    assert remove.to_bytes().hex() == "000300000003"
    assert remove.proposal_type == ProposalType.REMOVE
    for raw in ("000000000003", "000800000003", "0a0a00000003"):
        with pytest.raises(DecodeError, match="ProposalType"):
            Proposal.from_bytes(bytes.fromhex(raw))


def test_proposal_or_ref() -> None:
    by_ref = ProposalOrRef.by_reference(b"\xaa" * 32)
    assert by_ref.type == ProposalOrRefType.REFERENCE
    assert by_ref.reference == b"\xaa" * 32
    assert by_ref.proposal is None
    by_value = ProposalOrRef.by_value(Remove(1))
    assert by_value.proposal == Proposal(Remove(1))
    assert by_value.reference is None
    commit = Commit((by_value, by_ref))
    assert Commit.from_bytes(commit.to_bytes()) == commit
    with pytest.raises(DecodeError, match="ProposalOrRefType"):
        ProposalOrRef.from_bytes(b"\x03\x00")


@pytest.mark.parametrize("version", [0, 2, 0x0A0A])
def test_mls_message_version_must_be_mls10(version: int) -> None:
    body = MLSMessage(Welcome(1, (), b"")).to_bytes()
    assert body[:2] == b"\x00\x01"
    with pytest.raises(DecodeError, match="version"):
        MLSMessage.from_bytes(version.to_bytes(2, "big") + body[2:])


@pytest.mark.parametrize("wire_format", [0, 6, 0xF000])
def test_mls_message_unknown_wire_format_rejected(wire_format: int) -> None:
    with pytest.raises(DecodeError, match="WireFormat"):
        MLSMessage.from_bytes(b"\x00\x01" + wire_format.to_bytes(2, "big") + b"\x00\x00\x00")


def test_mls_message_accessor_of_wrong_kind() -> None:
    msg = MLSMessage(Welcome(1, (), b""))
    assert msg.welcome == Welcome(1, (), b"")
    assert msg.version == ProtocolVersion.MLS10
    with pytest.raises(DecodeError, match="expected key_package, got welcome"):
        _ = msg.key_package


def test_ratchet_tree_must_end_in_a_non_blank_node() -> None:
    parent = ParentNode(b"k", b"", (1, 2))
    tree = RatchetTree.from_values([parent, None, None])
    assert tree.nodes == (Node(parent),)
    assert tree.values == (parent,)
    data = tree.to_bytes()
    assert RatchetTree.from_bytes(data) == tree
    with pytest.raises(DecodeError, match="blank"):
        RatchetTree.from_bytes(bytes((data[0] + 1,)) + data[1:] + b"\x00")
    with pytest.raises(DecodeError, match="empty"):
        RatchetTree.from_bytes(b"\x00")
    with pytest.raises(UsageError):
        RatchetTree(())
    with pytest.raises(UsageError):
        _ = Node(parent).leaf
    with pytest.raises(DecodeError, match="NodeType"):
        Node.from_bytes(b"\x03")


def _framed(content: bytes | Proposal | Commit, sender: Sender | None = None) -> FramedContent:
    return FramedContent(b"group", 3, sender or Sender.member(2), b"aad", content)


def test_private_message_content_padding() -> None:
    content = PrivateMessageContent(b"hello", FramedContentAuthData(b"sig"), padding_length=5)
    data = content.to_bytes()
    assert data == b"\x05hello\x03sig" + bytes(5)
    assert PrivateMessageContent.from_bytes(data, ContentType.APPLICATION) == content
    with pytest.raises(DecodeError, match="padding"):
        PrivateMessageContent.from_bytes(data[:-1] + b"\x01", ContentType.APPLICATION)
    with pytest.raises(UsageError, match="content type"):
        PrivateMessageContent.from_bytes(data)
    # Decoded as a commit, the same bytes have a different layout.
    with pytest.raises(DecodeError):
        PrivateMessageContent.from_bytes(data, ContentType.COMMIT)

    commit = PrivateMessageContent(Commit(), FramedContentAuthData(b"s", b"tag"))
    assert PrivateMessageContent.from_bytes(commit.to_bytes(), ContentType.COMMIT) == commit
    with pytest.raises(UsageError, match="confirmation_tag"):
        PrivateMessageContent(Commit(), FramedContentAuthData(b"s"))


def test_framed_content_auth_data_depends_on_content_type() -> None:
    auth = FramedContentAuthData(b"sig", b"tag")
    data = auth.to_bytes()
    assert FramedContentAuthData.from_bytes(data, ContentType.COMMIT) == auth
    with pytest.raises(DecodeError, match="trailing"):
        FramedContentAuthData.from_bytes(data, ContentType.PROPOSAL)


def test_sender_variants() -> None:
    for sender, encoding in [
        (Sender.member(5), "0100000005"),
        (Sender.external(1), "0200000001"),
        (Sender.new_member_proposal(), "03"),
        (Sender.new_member_commit(), "04"),
    ]:
        assert sender.to_bytes().hex() == encoding
        assert Sender.from_bytes(sender.to_bytes()) == sender
    assert Sender.member(5).leaf_index == 5
    assert Sender.external(1).sender_index == 1
    with pytest.raises(UsageError):
        _ = Sender.external(1).leaf_index
    with pytest.raises(UsageError):
        Sender(SenderType.NEW_MEMBER_COMMIT, 3)
    for raw in ("00", "05"):
        with pytest.raises(DecodeError, match="SenderType"):
            Sender.from_bytes(bytes.fromhex(raw))


def test_public_message_membership_tag_iff_member() -> None:
    member = PublicMessage(_framed(b"x"), FramedContentAuthData(b"sig"), b"mac")
    assert PublicMessage.from_bytes(member.to_bytes()) == member
    external = PublicMessage(
        _framed(Proposal(Remove(0)), Sender.external(0)), FramedContentAuthData(b"sig")
    )
    assert PublicMessage.from_bytes(external.to_bytes()) == external
    with pytest.raises(UsageError, match="membership_tag"):
        PublicMessage(_framed(b"x"), FramedContentAuthData(b"sig"))
    with pytest.raises(UsageError, match="confirmation_tag"):
        PublicMessage(_framed(Commit()), FramedContentAuthData(b"sig"), b"mac")


def test_tbs_and_tbm_cover_the_group_context_for_members() -> None:
    context = GroupContext(1, b"group", 3, b"th", b"cth")
    ac = AuthenticatedContent(
        WireFormat.PUBLIC_MESSAGE, _framed(Commit()), FramedContentAuthData(b"s", b"t")
    )
    tbs = ac.tbs(context)
    assert tbs.context == context
    assert FramedContentTBS.from_bytes(tbs.to_bytes()) == tbs
    assert tbs.to_bytes() == b"\x00\x01\x00\x01" + ac.content.to_bytes() + context.to_bytes()
    with pytest.raises(UsageError):
        ac.tbs(None)
    external = framed_content_tbs(
        WireFormat.PUBLIC_MESSAGE, _framed(Proposal(Remove(0)), Sender.external(0)), context
    )
    assert external.context is None
    assert AuthenticatedContent.from_bytes(ac.to_bytes()) == ac
    assert ac.interim_transcript_hash_input().confirmation_tag == b"t"
    assert ac.confirmed_transcript_hash_input().signature == b"s"

    msg = PublicMessage(ac.content, ac.auth, b"mac")
    assert msg.authenticated_content() == ac
    assert msg.tbm(context).to_bytes() == tbs.to_bytes() + ac.auth.to_bytes()


def test_private_message_aads_and_sender_data() -> None:
    msg = PrivateMessage(b"g", 9, ContentType.PROPOSAL, b"ad", b"esd", b"ct")
    assert MLSMessage.from_bytes(MLSMessage(msg).to_bytes()).private_message == msg
    assert msg.sender_data_aad().to_bytes() == b"\x01g" + (9).to_bytes(8, "big") + b"\x02"
    assert msg.content_aad().to_bytes() == msg.sender_data_aad().to_bytes() + b"\x02ad"
    sd = SenderData(3, 4, b"\x00\x01\x02\x03")
    assert sd.to_bytes().hex() == "000000030000000400010203"
    assert SenderData.from_bytes(sd.to_bytes()) == sd
    with pytest.raises(UsageError):
        SenderData(0, 0, b"abc")
    with pytest.raises(DecodeError, match="ContentType"):
        PrivateMessage.from_bytes(b"\x01g" + bytes(8) + b"\x04\x00\x00\x00")


# -- extensions (RFC 9420 §13) ---------------------------------------------------------------


def test_extension_helpers() -> None:
    senders = ExternalSenders((ExternalSender(b"key", Credential.basic(b"ds")),))
    required = RequiredCapabilities((0x1A1A,), (0xF001,), (CredentialType.X509,))
    exts = (
        senders.to_extension(),
        required.to_extension(),
        ExternalPub(b"pub").to_extension(),
        Extension(0x0A0A, b"grease"),
    )
    check_unique_extensions(exts)
    assert find_extension(exts, 0x0A0A) == Extension(0x0A0A, b"grease")
    assert find_extension(exts, ExtensionType.APPLICATION_ID) is None
    assert ExternalSenders.find_in(exts) == senders
    assert RequiredCapabilities.find_in(exts) == required
    assert ExternalPub.find_in(exts) == ExternalPub(b"pub")
    assert ApplicationId.find_in(exts) is None
    with pytest.raises(ValidationError, match="duplicate"):
        check_unique_extensions((*exts, ExternalPub(b"other").to_extension()))
    with pytest.raises(UsageError):
        ExternalPub.from_extension(exts[0])
    with pytest.raises(DecodeError):
        ExternalPub.from_extension(Extension(ExtensionType.EXTERNAL_PUB, b"\x05ab"))
    tree = RatchetTree((Node(ParentNode(b"k")),))
    assert RatchetTree.find_in((tree.to_extension(),)) == tree


def test_group_secrets_and_welcome() -> None:
    secrets = GroupSecrets(
        b"joiner", PathSecret(b"path"), (PreSharedKeyID.external(b"id", b"nonce"),)
    )
    assert GroupSecrets.from_bytes(secrets.to_bytes()) == secrets
    assert GroupSecrets.from_bytes(GroupSecrets(b"j").to_bytes()) == GroupSecrets(b"j")
    entry = EncryptedGroupSecrets(b"ref", HPKECiphertext(b"kem", b"ct"))
    welcome = Welcome(2, (entry,), b"egi")
    assert welcome.secrets_for(b"ref") == entry
    assert welcome.secrets_for(b"other") is None
    assert Welcome.from_bytes(welcome.to_bytes()) == welcome


def test_update_path_round_trip() -> None:
    leaf = LeafNode(
        b"e", b"s", Credential.basic(b"a"), Capabilities(), LeafNodeSource.COMMIT, parent_hash=b"p"
    )
    path = UpdatePath(leaf, (UpdatePathNode(b"k", (HPKECiphertext(b"a", b"b"),)),))
    commit = Commit((ProposalOrRef.by_value(Remove(1)),), path)
    assert Commit.from_bytes(commit.to_bytes()) == commit
    assert commit.to_bytes()[-len(path.to_bytes()) - 1] == 1  # optional<UpdatePath> present
    group_context = GroupContext(1, b"g", 0, b"", b"").next_epoch(b"th", b"cth")
    assert (group_context.epoch, group_context.tree_hash) == (1, b"th")
    assert replace(group_context, epoch=2).next_epoch(b"a", b"b", ()).epoch == 3
