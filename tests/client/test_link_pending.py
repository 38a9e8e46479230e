"""Links in progress in the store, and what opening a profile does with them."""

from __future__ import annotations

from messenger.client.store import Identity, Store
from messenger.client.store.pending_links import (
    LinkRole,
    LinkState,
    PendingLink,
    recover_new_device,
)


def _identity() -> Identity:
    return Identity(
        server_url="https://chat.example",
        account_id="acct-1",
        client_id="client-2",
        queue_id="queue-2",
        cipher_suite=1,
        signature_private_key=b"\x01" * 32,
        signature_public_key=b"\x02" * 32,
        credential=b"\x03" * 80,
        created_at=1,
    )


def _joined(store: Store, state: LinkState) -> None:
    with store.transaction():
        store.identity.save(_identity())
        store.key_packages.add(b"ref", b"bundle", created_at=1, expires_at=2, last_resort=False)
        store.pending_links.put(PendingLink(b"L" * 16, LinkRole.NEW, state, "client-2", 5))


def test_the_repository(store: Store) -> None:
    creator = PendingLink(b"C" * 16, LinkRole.CREATOR, LinkState.REGISTERED, "client-9", 7)
    store.pending_links.put(creator)
    assert store.pending_links.get(creator.link_id) == creator
    assert store.pending_links.all(LinkRole.NEW) == []
    assert store.pending_links.set_state(creator.link_id, LinkState.ADDING)
    assert store.pending_links.all(LinkRole.CREATOR)[0].state is LinkState.ADDING
    assert store.pending_links.delete(creator.link_id)
    assert not store.pending_links.delete(creator.link_id)
    assert not store.pending_links.set_state(creator.link_id, LinkState.ADDING)


def test_an_identity_never_ready_is_discarded(store: Store) -> None:
    _joined(store, LinkState.ANSWERED)
    assert recover_new_device(store)
    assert store.identity.get() is None
    assert store.key_packages.get(b"ref") is None
    assert store.pending_links.all() == []


def test_a_ready_identity_is_kept(store: Store) -> None:
    _joined(store, LinkState.READY)
    assert not recover_new_device(store)
    assert store.identity.get() is not None
    assert store.key_packages.get(b"ref") is not None
    assert store.pending_links.all() == []


def test_nothing_to_recover(store: Store) -> None:
    assert not recover_new_device(store)
    creator = PendingLink(b"C" * 16, LinkRole.CREATOR, LinkState.REGISTERED, "client-9", 7)
    store.pending_links.put(creator)
    assert not recover_new_device(store)
    assert store.pending_links.all() == [creator]  # the creator's are undone at start
