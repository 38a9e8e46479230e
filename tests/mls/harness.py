"""An in-memory group of MLS clients: the network of the multi-member tests.

Like h11's ``ConnectionPair``, :class:`Network` stands in for the Delivery
Service: it hands every message a member sends to every other member, merges
Commits everywhere once they are "accepted", and has new members join from
the Welcome. After each change :meth:`Network.check` verifies that all
members agree (RFC 9420 test-scenarios.md, "Verifying Common State"): the
same epoch, GroupContext and epoch authenticator, and an application message
from each member decrypts at every other one.
"""

from __future__ import annotations

import random as _random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite
from messenger.mls.credentials import Credential
from messenger.mls.events import (
    ApplicationMessage,
    CommitResult,
    Event,
    ProposalReceived,
    StagedCommit,
)
from messenger.mls.group import Group
from messenger.mls.group_state import GroupConfig
from messenger.mls.key_package_bundle import KeyPackageBundle, generate_key_package
from messenger.mls.messages import MLSMessage

NOW = 1_700_000_000


@dataclass
class Client:
    """A client: its identity, signature key and unused KeyPackages."""

    name: str
    suite: CipherSuite
    credential: Credential
    signature_private_key: bytes
    bundles: dict[bytes, KeyPackageBundle] = field(default_factory=dict)


class Network:
    """Members of one group, by name, and the randomness they all draw from."""

    def __init__(
        self,
        suite_id: int = 1,
        *,
        seed: int = 0,
        config: GroupConfig | None = None,
        psks: dict[bytes, bytes] | None = None,
    ) -> None:
        self.suite = get_cipher_suite(suite_id)
        self.rng = _random.Random(seed)
        self.config = config
        self.psks = psks or {}
        self.clients: dict[str, Client] = {}
        self.groups: dict[str, Group] = {}

    # -- randomness and clients -------------------------------------------------------

    def random(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def client(self, name: str, suite: CipherSuite | None = None) -> Client:
        found = self.clients.get(name)
        if found is None:
            suite = suite or self.suite
            private, _ = suite.generate_signature_key_pair(self.random)
            found = Client(name, suite, Credential.basic(name.encode()), private)
            self.clients[name] = found
        return found

    def key_package(self, name: str, suite: CipherSuite | None = None, **kwargs: Any) -> bytes:
        """A fresh KeyPackage of ``name``, as an MLSMessage."""
        client = self.client(name)
        suite = suite or client.suite
        if suite is not client.suite:  # a client in another suite needs another key
            client.signature_private_key, _ = suite.generate_signature_key_pair(self.random)
            client.suite = suite
        bundle = generate_key_package(
            suite, client.credential, client.signature_private_key, self.random, now=NOW, **kwargs
        )
        client.bundles[bundle.ref()] = bundle
        return bundle.message()

    def bundle(self, name: str, key_package: bytes) -> KeyPackageBundle:
        kp = MLSMessage.from_bytes(key_package).key_package
        client = self.clients[name]
        return client.bundles[kp.ref(get_cipher_suite(kp.cipher_suite))]

    # -- group membership ------------------------------------------------------------------

    def create(self, name: str, **kwargs: Any) -> Group:
        kp = self.key_package(name)
        group = Group.create(
            self.bundle(name, kp),
            self.random,
            config=self.config,
            external_psks=self.psks,
            **kwargs,
        )
        self.groups[name] = group
        return group

    def names(self) -> list[str]:
        return sorted(self.groups, key=lambda n: self.groups[n].leaf_index)

    def name_at(self, leaf_index: int) -> str:
        for name, group in self.groups.items():
            if group.leaf_index == leaf_index:
                return name
        raise KeyError(leaf_index)

    def deliver(self, sender: str | None, message: bytes) -> dict[str, Event]:
        """``message`` to every member but ``sender``; their events, by name."""
        return {
            name: group.process(message, now=NOW)
            for name, group in self.groups.items()
            if name != sender
        }

    def propose(self, sender: str, message: bytes) -> None:
        """A proposal ``sender`` made, delivered to everyone else."""
        for name, event in self.deliver(sender, message).items():
            assert isinstance(event, ProposalReceived), (name, event)

    def accept(
        self,
        committer: str,
        result: CommitResult,
        joiners: Iterable[str] = (),
        *,
        ratchet_tree_out_of_band: bool = False,
    ) -> None:
        """``result`` accepted by the DS: everyone merges it, joiners join."""
        staged = self.deliver(committer, result.message)
        removed = []
        for name, event in staged.items():
            assert isinstance(event, StagedCommit), (name, event)
            self.groups[name].merge(event)
            if event.self_removed:
                removed.append(name)
        self.groups[committer].merge(result.staged)
        for name in removed:
            del self.groups[name]
        joiners = list(joiners)
        if joiners:
            assert result.welcome is not None
            tree = None
            if ratchet_tree_out_of_band:
                tree = self.groups[committer].ratchet_tree.to_bytes()
            for name in joiners:
                client = self.clients[name]
                bundle = self._bundle_for(client, result.welcome)
                self.groups[name] = Group.join_from_welcome(
                    result.welcome,
                    bundle,
                    ratchet_tree=tree,
                    now=NOW,
                    config=self.config,
                    external_psks=self.psks,
                )
                del client.bundles[bundle.ref()]

    def _bundle_for(self, client: Client, welcome: bytes) -> KeyPackageBundle:
        message = MLSMessage.from_bytes(welcome).welcome
        for ref, bundle in client.bundles.items():
            if message.secrets_for(ref) is not None:
                return bundle
        raise AssertionError(f"no KeyPackage of {client.name} in the Welcome")

    def commit(self, committer: str, **kwargs: Any) -> CommitResult:
        """``committer`` commits; everyone merges; the added join."""
        adds: Sequence[str] = kwargs.pop("add_names", ())
        oob = kwargs.pop("ratchet_tree_out_of_band", False)
        if adds:
            kwargs["add"] = [self.key_package(n) for n in adds]
        if oob:
            kwargs["inline_tree"] = False
        result = self.groups[committer].commit(self.random, now=NOW, **kwargs)
        self.accept(committer, result, adds, ratchet_tree_out_of_band=oob)
        return result

    def join_external(
        self, name: str, via: str, *, resync: bool = False, **kwargs: Any
    ) -> CommitResult:
        """``name`` joins by external Commit from ``via``'s GroupInfo.

        With ``resync``, ``name`` is a member that lost its state and rejoins,
        removing its old leaf in the same Commit (RFC 9420 §12.4.3.2).
        """
        client = self.client(name)
        if resync:
            kwargs["resync"] = self.groups.pop(name).leaf_index
        info = self.groups[via].group_info()
        group, result = Group.join_external(
            info,
            credential=client.credential,
            signature_private_key=client.signature_private_key,
            random=self.random,
            now=NOW,
            config=self.config,
            external_psks=self.psks,
            **kwargs,
        )
        for other, event in self.deliver(None, result.message).items():
            assert isinstance(event, StagedCommit), (other, event)
            self.groups[other].merge(event)
            if event.self_removed:
                del self.groups[other]
        self.groups[name] = group
        return result

    # -- agreement ---------------------------------------------------------------------------

    def check(self, *, messages: bool = True, senders: int | None = None) -> None:
        """Every member agrees on the group state (test-scenarios.md).

        With ``messages``, an application message from each member (or from
        ``senders`` of them) must decrypt at every other one.
        """
        groups = list(self.groups.values())
        first = groups[0]
        for group in groups[1:]:
            assert group.epoch == first.epoch
            assert group.group_context == first.group_context
            assert group.epoch_authenticator == first.epoch_authenticator
            assert group.members() == first.members()
        assert sorted(g.leaf_index for g in groups) == [m.leaf_index for m in first.members()]
        if messages:
            chosen = list(self.groups.items())
            if senders is not None:
                chosen = self.rng.sample(chosen, min(senders, len(chosen)))
            for name, group in chosen:
                if not group.active or group.pending_proposals():
                    continue
                text = f"hello from {name} in epoch {group.epoch}".encode()
                data = group.encrypt(text, self.random, authenticated_data=name.encode())
                for other, event in self.deliver(name, data).items():
                    assert isinstance(event, ApplicationMessage), (other, event)
                    assert event.data == text
                    assert event.sender.leaf_index == group.leaf_index
                    assert event.authenticated_data == name.encode()

    def round_trip(self, *names: str) -> None:
        """Serialize and restore members mid-stream; the bytes must not change."""
        for name in names or list(self.groups):
            data = self.groups[name].to_bytes()
            restored = Group.from_bytes(data, external_psks=self.psks)
            assert restored.to_bytes() == data
            self.groups[name] = restored
