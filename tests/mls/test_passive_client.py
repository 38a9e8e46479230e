"""RFC 9420 §12: the passive-client vectors -- join from a Welcome, then follow
every Commit and compare the epoch authenticators.

passive-client-welcome.json, passive-client-handling-commit.json and
passive-client-random.json (200 epochs), for every suite they contain. A
failure names the case, the epoch and the value that differs.
"""

from __future__ import annotations

from typing import Any

import pytest

from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.events import ProposalReceived, StagedCommit
from messenger.mls.group import Group
from messenger.mls.key_package_bundle import KeyPackageBundle
from messenger.mls.messages import MLSMessage
from tests.mls.vectors import assert_eq, cases, h


def _bundle(tc: dict[str, Any]) -> KeyPackageBundle:
    kp = MLSMessage.from_bytes(h(tc["key_package"])).key_package
    # The vectors drop leading zero bytes of P-521 scalars; RFC 9180 §7.1.2
    # serialises them at their full Nsk length.
    n_sk = get_cipher_suite(kp.cipher_suite).hpke.Nsk
    return KeyPackageBundle(
        kp,
        h(tc["init_priv"]).rjust(n_sk, b"\0"),
        h(tc["encryption_priv"]).rjust(n_sk, b"\0"),
        h(tc["signature_priv"]),
    )


def _check_keys(tc: dict[str, Any]) -> None:
    bundle = _bundle(tc)
    suite = bundle.suite
    kp = bundle.key_package
    assert_eq(
        "signature_key",
        suite.signature_public_key(bundle.signature_private_key),
        kp.leaf_node.signature_key,
    )
    assert_eq(
        "encryption_key",
        suite.hpke_public_key(bundle.encryption_private_key),
        kp.leaf_node.encryption_key,
    )
    assert_eq("init_key", suite.hpke_public_key(bundle.init_private_key), kp.init_key)


def run_passive_client(tc: dict[str, Any], *, round_trip_every: int = 0) -> None:
    _check_keys(tc)
    psks = {h(p["psk_id"]): h(p["psk"]) for p in tc["external_psks"]}
    tree = None if tc["ratchet_tree"] is None else h(tc["ratchet_tree"])
    group = Group.join_from_welcome(
        h(tc["welcome"]), _bundle(tc), ratchet_tree=tree, external_psks=psks
    )
    assert_eq(
        "initial_epoch_authenticator",
        group.epoch_authenticator,
        h(tc["initial_epoch_authenticator"]),
    )
    for i, epoch in enumerate(tc["epochs"]):
        for j, proposal in enumerate(epoch["proposals"]):
            event = group.process(h(proposal))
            assert isinstance(event, ProposalReceived), f"epoch {i} proposal {j}: {event!r}"
        staged = group.process(h(epoch["commit"]))
        assert isinstance(staged, StagedCommit), f"epoch {i} commit: {staged!r}"
        assert_eq(
            f"epoch {i} staged epoch_authenticator",
            staged.epoch_authenticator,
            h(epoch["epoch_authenticator"]),
        )
        group.merge(staged)
        assert_eq(
            f"epoch {i} epoch_authenticator",
            group.epoch_authenticator,
            h(epoch["epoch_authenticator"]),
        )
        if round_trip_every and i % round_trip_every == 0:
            data = group.to_bytes()
            group = Group.from_bytes(data, external_psks=psks)
            assert_eq(f"epoch {i} state round trip", group.to_bytes(), data)


@pytest.mark.parametrize("tc", cases("passive-client-welcome"))
def test_passive_client_welcome(tc: dict[str, Any]) -> None:
    run_passive_client(tc)


@pytest.mark.parametrize("tc", cases("passive-client-handling-commit"))
def test_passive_client_handling_commit(tc: dict[str, Any]) -> None:
    run_passive_client(tc, round_trip_every=1)


@pytest.mark.parametrize("tc", cases("passive-client-random"))
def test_passive_client_random(tc: dict[str, Any]) -> None:
    run_passive_client(tc, round_trip_every=50)
