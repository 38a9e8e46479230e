"""A short tour of the MLS core: three members in memory.

Alice creates a group, adds Bob and Carol with one Commit, everyone
exchanges an application message, Bob updates his keys, Alice removes Carol,
and after every epoch the members print their epoch authenticator (RFC 9420
§8.7): equal values show that they agree on the group's state.

Run it with ``python -m messenger.mls_demo``.
"""

from __future__ import annotations

import os
import time

from messenger.mls import (
    ApplicationMessage,
    Credential,
    Group,
    KeyPackageBundle,
    StagedCommit,
    generate_key_package,
    get_cipher_suite,
)

__all__ = ["main"]

SUITE = get_cipher_suite(1)


def _bundle(name: str) -> KeyPackageBundle:
    signature_key, _ = SUITE.generate_signature_key_pair(os.urandom)
    return generate_key_package(
        SUITE, Credential.basic(name.encode()), signature_key, os.urandom, now=int(time.time())
    )


def _show(title: str, groups: dict[str, Group]) -> None:
    print(f"\n{title}")
    for name, group in groups.items():
        tag = group.epoch_authenticator.hex()[:32]
        print(f"  {name:<6} epoch {group.epoch}  authenticator {tag}…")
    authenticators = {group.epoch_authenticator for group in groups.values()}
    print("  all members agree" if len(authenticators) == 1 else "  MEMBERS DISAGREE")


def _deliver(message: bytes, receivers: list[Group]) -> None:
    for group in receivers:
        event = group.process(message, now=int(time.time()))
        if isinstance(event, StagedCommit):
            group.merge(event)


def _say(sender: str, text: str, groups: dict[str, Group]) -> None:
    message = groups[sender].encrypt(text.encode(), os.urandom)
    for name, group in groups.items():
        if name == sender:
            continue
        event = group.process(message, now=int(time.time()))
        assert isinstance(event, ApplicationMessage)
        print(f"  {name} reads from leaf {event.sender.leaf_index}: {event.data.decode()!r}")


def main() -> None:
    print(f"Cipher suite: {SUITE.name}")
    alice = Group.create(_bundle("alice"), os.urandom)
    groups = {"alice": alice}
    _show("Alice creates the group", groups)

    bob_bundle, carol_bundle = _bundle("bob"), _bundle("carol")
    result = alice.commit(os.urandom, add=[bob_bundle.key_package, carol_bundle.key_package])
    alice.merge(result.staged)
    assert result.welcome is not None
    groups["bob"] = Group.join_from_welcome(result.welcome, bob_bundle, now=int(time.time()))
    groups["carol"] = Group.join_from_welcome(result.welcome, carol_bundle, now=int(time.time()))
    _show("Alice adds Bob and Carol in one Commit; they join from the Welcome", groups)

    print("\nMessages, encrypted with each sender's ratchet (RFC 9420 §9):")
    _say("alice", "Hello, both of you.", groups)
    _say("bob", "Hi Alice!", groups)
    _say("carol", "Good to be here.", groups)

    update = groups["bob"].commit(os.urandom, force_path=True)
    groups["bob"].merge(update.staged)
    _deliver(update.message, [groups["alice"], groups["carol"]])
    _show("Bob refreshes his keys (post-compromise security)", groups)

    carol_leaf = groups["carol"].leaf_index
    removal = alice.commit(os.urandom, remove=[carol_leaf])
    alice.merge(removal.staged)
    _deliver(removal.message, [groups["bob"]])
    event = groups["carol"].process(removal.message, now=int(time.time()))
    assert isinstance(event, StagedCommit)
    del groups["carol"]
    _show("Alice removes Carol; the remaining members move to a new epoch", groups)
    _say("bob", "Just us now.", groups)

    state = groups["bob"].to_bytes()
    restored = Group.from_bytes(state)
    print(f"\nBob's whole group state serializes to {len(state)} bytes and restores exactly:")
    same = restored.epoch_authenticator == groups["bob"].epoch_authenticator
    print(f"  same authenticator after restore: {same}")


if __name__ == "__main__":
    main()
