"""Takeover leftovers, and what a restore writes now (a new device, not a takeover).

A restore no longer takes its device over: it registers as a new device
(docs/devices.md §5; end to end in
``tests/client/test_restore_as_new_device.py``). The server keeps the
takeover route and a copy that took over with an earlier version keeps
sending its token: here are what a restore writes, where the token is kept,
how requests carry it, how ``device_replaced`` is mapped, and
:func:`prepare_device` loading the token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import httpx_ws
import pytest

from messenger.api import routes as r
from messenger.api.fields import b64decode, b64encode
from messenger.api.signing import HEADER_DEVICE_TOKEN
from messenger.client import Profiles
from messenger.client.backup import export_backup, restore_backup
from messenger.client.errors import (
    AuthError,
    DeviceReplacedError,
    NetworkError,
)
from messenger.client.events import ConnectionState
from messenger.client.net import Signer, Transport, error_from_response, transport_errors
from messenger.client.restore_device import RESTORE_STATE, prepare_device, restore_pending
from messenger.client.store import AsyncStore, Keychain, Store
from messenger.client.store.identity import Identity
from messenger.client.store.settings import DEVICE_TOKEN, TAKEOVER_PENDING

from .helpers import FAST_KDF, PASSPHRASE

pytestmark = pytest.mark.anyio

BACKUP_PASSPHRASE = "backup passphrase 123"
TOKEN = b"\x07" * 32
OTHER = b"\x08" * 32
REPLACED = {"error": {"code": "device_replaced", "message": "m", "details": {}}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _identity() -> Identity:
    return Identity(
        server_url="https://chat.example",
        account_id="acct-me",
        client_id="client-1",
        queue_id="queue-1",
        cipher_suite=1,
        signature_private_key=b"\x11" * 32,
        signature_public_key=b"\x22" * 32,
        credential=b"cred",
        created_at=1,
    )


def _backup(store: Store, tmp_path: Path) -> Path:
    path = tmp_path / "backup.bin"
    export_backup(store, path, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    return path


def _restore(backup: Path, tmp_path: Path, keychain: Keychain) -> Store:
    profile = restore_backup(
        backup,
        BACKUP_PASSPHRASE,
        Profiles(tmp_path / "other-computer"),
        "restored",
        PASSPHRASE,
        keychain=keychain,
        kdf=FAST_KDF,
    )
    return Store.open(profile, keychain=keychain)


# -- the store ---------------------------------------------------------------------------


def test_a_restore_of_an_account_is_marked_to_become_a_new_device(
    store: Store, tmp_path: Path, keychain: Keychain
) -> None:
    store.identity.save(_identity())
    backup = _backup(store, tmp_path)
    with _restore(backup, tmp_path, keychain) as restored:
        assert restored.settings.get(RESTORE_STATE) == {"step": "register"}
        assert restore_pending(restored.settings)
        assert not restored.settings.takeover_pending()  # no takeover any more
    assert not restore_pending(store.settings)  # the original is not marked


def test_a_restore_without_an_account_has_nothing_to_do(
    store: Store, tmp_path: Path, keychain: Keychain
) -> None:
    backup = _backup(store, tmp_path)
    with _restore(backup, tmp_path, keychain) as restored:
        assert not restore_pending(restored.settings)


def test_the_token_is_kept_in_the_settings_and_read_with_the_identity(store: Store) -> None:
    store.identity.save(_identity())
    assert store.identity.get() == _identity()
    assert store.settings.device_token() is None
    store.settings.set(TAKEOVER_PENDING, True)
    store.settings.took_over(TOKEN)
    assert not store.settings.takeover_pending()
    assert store.settings.get(DEVICE_TOKEN) == TOKEN.hex()
    identity = store.identity.get()
    assert identity is not None and identity.device_token == TOKEN
    assert TOKEN.hex() not in repr(identity)
    store.settings.set(DEVICE_TOKEN, "not hex")
    assert store.settings.device_token() is None


def test_a_backup_of_a_copy_that_took_over_is_marked_as_a_new_device(
    store: Store, tmp_path: Path, keychain: Keychain
) -> None:
    """A backup of a copy that took over (earlier versions) becomes a new device too."""
    store.identity.save(_identity())
    store.settings.set(TAKEOVER_PENDING, True)
    store.settings.took_over(TOKEN)
    with _restore(_backup(store, tmp_path), tmp_path, keychain) as restored:
        assert restored.settings.get(RESTORE_STATE) == {"step": "register"}
        assert not restored.settings.takeover_pending()
        # Signs as the backed-up device (with its token) until it is a new one.
        assert restored.settings.device_token() == TOKEN


# -- signing and the transport ---------------------------------------------------------


def test_the_signer_sends_the_token_once_set() -> None:
    signer = Signer("client-1", b"\x01" * 32)
    assert HEADER_DEVICE_TOKEN not in signer.headers("GET", "/x", b"")
    signer.device_token = TOKEN
    assert b64decode(signer.headers("GET", "/x", b"")[HEADER_DEVICE_TOKEN]) == TOKEN
    with pytest.raises(ValueError):
        signer.device_token = b"short"
    assert "07" * 32 not in repr(signer)


def _transport(handler: Callable[[httpx.Request], httpx.Response]) -> Transport:
    signer = Signer("client-1", b"\x01" * 32)
    return Transport("http://server.test", signer=signer, transport=httpx.MockTransport(handler))


async def test_take_over_sets_the_token_for_every_later_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == r.CLIENT_TAKEOVER:
            return httpx.Response(200, json={})
        return httpx.Response(200, json={"available": 3, "last_resort": True})

    transport = _transport(handler)
    try:
        await transport.take_over(TOKEN)
        await transport.key_package_count()
    finally:
        await transport.aclose()
    takeover, later = seen
    assert json.loads(takeover.content) == {"device_token": b64encode(TOKEN)}
    assert HEADER_DEVICE_TOKEN not in takeover.headers  # the route sets it
    assert later.headers[HEADER_DEVICE_TOKEN] == b64encode(TOKEN)


async def test_device_replaced_is_not_a_network_error_and_is_not_retried() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(401, json=REPLACED)

    transport = _transport(handler)
    try:
        with pytest.raises(DeviceReplacedError) as info:
            await transport.key_package_count()
    finally:
        await transport.aclose()
    assert calls == 1
    assert not isinstance(info.value, NetworkError)
    assert info.value.user_message == (
        "This account was restored on another computer. This copy no longer receives messages."
    )


async def test_a_request_overtaken_by_this_copys_takeover_is_sent_again() -> None:
    """Signed with the old token, refused after this copy took over: once more, new token."""
    transport: Transport | None = None
    tokens: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tokens.append(request.headers.get(HEADER_DEVICE_TOKEN))
        if len(tokens) == 1:
            assert transport is not None and transport.signer is not None
            transport.signer.device_token = OTHER  # the takeover finished meanwhile
            return httpx.Response(401, json=REPLACED)
        return httpx.Response(200, json={"available": 3, "last_resort": True})

    transport = _transport(handler)
    transport.signer.device_token = TOKEN  # type: ignore[union-attr]
    try:
        assert (await transport.key_package_count()).available == 3
    finally:
        await transport.aclose()
    assert tokens == [b64encode(TOKEN), b64encode(OTHER)]


def test_the_error_seam_maps_device_replaced_everywhere() -> None:
    assert isinstance(error_from_response(401, json.dumps(REPLACED).encode()), DeviceReplacedError)
    with pytest.raises(DeviceReplacedError), transport_errors():
        raise httpx_ws.WebSocketDisconnect(1008, "device_replaced")
    # A refused handshake whose body httpx-ws did not read: the status decides.
    request = httpx.Request("GET", "http://server.test/v1/queue/ws")
    unread = httpx.Response(401, request=request, stream=httpx.ByteStream(b"{}"))
    with pytest.raises(AuthError), transport_errors():
        raise httpx_ws.WebSocketUpgradeError(unread)


# -- prepare_device --------------------------------------------------------------------------


async def test_prepare_device_loads_the_token_of_a_copy_that_took_over(
    profiles: Profiles, keychain: Keychain
) -> None:
    """Nothing to do but sign with the token an earlier version took over with."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected: {request.url}")

    transport = _transport(refuse)
    store = await AsyncStore.create(
        profiles.create("restored"), PASSPHRASE, keychain=keychain, kdf=FAST_KDF
    )
    account = SimpleNamespace(account_key=b"\x05" * 32)  # has an account key: no certification
    session = SimpleNamespace(store=store, transport=transport, account=account)
    try:
        await store.run(lambda s: s.settings.took_over(TOKEN))
        assert transport.signer is not None and transport.signer.device_token is None
        assert await prepare_device(session) is False  # type: ignore[arg-type]
        assert transport.signer.device_token == TOKEN
    finally:
        await store.close()
        await transport.aclose()


def test_replaced_is_a_connection_state() -> None:
    assert ConnectionState("replaced") is ConnectionState.REPLACED
