"""Which ReInit proposals a client follows (RFC 9420 §12.1.5; docs/pq-suites.md)."""

from __future__ import annotations

import pytest

from messenger.client.groups import ConversationInfo, group_extensions, new_key_package
from messenger.client.identity import HYBRID_SUITE
from messenger.client.store import ConversationKind
from messenger.client.suite_upgrade import reinit_acceptable
from messenger.mls.proposals import ReInit

EXTENSIONS = tuple(group_extensions(ConversationInfo(ConversationKind.GROUP, "club")))
NEW_ID = b"\x07" * 32


@pytest.mark.parametrize("suite", [1, HYBRID_SUITE])
def test_a_reinit_to_a_suite_the_client_uses_is_followed(suite: int) -> None:
    assert reinit_acceptable(ReInit(NEW_ID, 1, suite, EXTENSIONS), EXTENSIONS)


@pytest.mark.parametrize(
    ("reinit", "why"),
    [
        (ReInit(NEW_ID, 1, 3, EXTENSIONS), "a suite MLS knows but this client does not use"),
        (ReInit(NEW_ID, 1, 0xF006, EXTENSIONS), "a post-quantum suite signing with ML-DSA"),
        (ReInit(NEW_ID, 1, 0x7777, EXTENSIONS), "an unknown suite"),
        (ReInit(NEW_ID, 2, HYBRID_SUITE, EXTENSIONS), "another protocol version"),
        (ReInit(b"", 1, HYBRID_SUITE, EXTENSIONS), "an empty group ID"),
        (ReInit(b"\x01" * 256, 1, HYBRID_SUITE, EXTENSIONS), "a group ID the server refuses"),
        (
            ReInit(
                NEW_ID,
                1,
                HYBRID_SUITE,
                tuple(group_extensions(ConversationInfo(ConversationKind.GROUP, "renamed"))),
            ),
            "changed extensions (a rename through the back door)",
        ),
    ],
)
def test_other_reinits_are_refused(reinit: ReInit, why: str) -> None:
    assert not reinit_acceptable(reinit, EXTENSIONS), why


def test_key_packages_are_made_only_in_the_clients_suites() -> None:
    with pytest.raises(ValueError, match="no groups in cipher suite"):
        new_key_package(None, bytes, now=0, suite=3)  # type: ignore[arg-type]
