"""The client refuses plain HTTP off this computer and certificates it does not trust.

The refusals of plain ``http://`` happen before any connection (the hosts
here do not exist); the certificate tests run a real server over TLS on
127.0.0.1 (uvicorn in this process) with a throwaway certificate authority
made by :mod:`tests.tls_certs`, trusted only through ``MESSENGER_CA_FILE``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from messenger.client import ClientOptions, MessengerClient
from messenger.client.errors import (
    CertificateAuthorityFileError,
    InsecureServerAddressError,
    InvalidServerAddressError,
    UntrustedCertificateError,
)
from messenger.client.net import Transport
from messenger.client.net.transport_security import (
    CA_FILE_ENV,
    check_server_security,
    is_loopback_host,
)
from messenger.client.store import Keychain
from messenger.server import ServerConfig, create_app
from tests.tls_certs import CertificateAuthority

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

pytestmark = pytest.mark.anyio

NOT_TRUSTED = "The server's certificate is not trusted"
PLAIN_HTTP = "uses plain http://, which is not encrypted"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_inherited_trust(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (CA_FILE_ENV, "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.8.9.10", "[::1]", "localhost", "LOCALHOST", "chat.localhost", "localhost."],
)
def test_loopback_forms_are_recognised(host: str) -> None:
    assert is_loopback_host(host)
    check_server_security(f"http://{host}:8080")


@pytest.mark.parametrize(
    "host",
    [
        "chat.example.org",
        "192.168.1.10",
        "10.0.0.1",
        "0.0.0.0",
        "[::]",
        "[fe80::1]",
        "localhost.example.org",
        "notlocalhost",
        "128.0.0.1",
    ],
)
def test_plain_http_to_another_computer_is_refused_before_connecting(host: str) -> None:
    url = f"http://{host}:8080"
    with pytest.raises(InsecureServerAddressError) as caught:
        Transport(url)
    assert PLAIN_HTTP in caught.value.user_message
    # A kind of InvalidServerAddressError: every caller that handles a bad
    # address handles this one too.
    assert isinstance(caught.value, InvalidServerAddressError)
    # https to the same host is fine, and so is the explicit override.
    check_server_security(f"https://{host}:8443")
    check_server_security(url, allow_insecure_http=True)


async def test_the_facade_refuses_plain_http_unless_allowed(
    tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    """create_account refuses at once (no name lookup: the host does not exist)."""
    client = await MessengerClient.create(
        "alice", PASSPHRASE, data_dir=tmp_path / "a", keychain=Keychain(), kdf=FAST_KDF
    )
    try:
        with pytest.raises(InsecureServerAddressError) as caught:
            await client.create_account("http://chat.example.invalid")
        assert PLAIN_HTTP in caught.value.user_message
        assert not client.has_account
    finally:
        await client.close()


# -- TLS certificates --------------------------------------------------------------------


def _free_socket() -> socket.socket:
    # IPPROTO_TCP, as uvicorn's own listener: asyncio then sets TCP_NODELAY on what it
    # accepts (with protocol 0, each answer waited ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, CertificateAuthority, Path]]:
    """A real server over TLS on 127.0.0.1, its CA, and a second CA's certificate.

    The server's certificate names ``localhost`` only (not 127.0.0.1).
    """
    ca = CertificateAuthority(tmp_path / "ca")
    other = CertificateAuthority(tmp_path / "other-ca", "Some other CA")
    leaf = ca.issue("server", ["localhost"], [])
    config = ServerConfig(
        data_dir=tmp_path / "server",
        pow_difficulty=4,
        ip_requests_per_minute=1_000_000,
        account_requests_per_minute=1_000_000,
        registrations_per_ip_per_hour=1_000_000,
    )
    app = create_app(config, run_sweeper=False)
    sock = _free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            ssl_certfile=str(leaf.cert_file),
            ssl_keyfile=str(leaf.key_file),
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="websockets-sansio",
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"https://localhost:{port}", ca, other.cert_file
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _new_client(tmp_path: Path, name: str) -> MessengerClient:
    return await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=tmp_path / name,
        keychain=Keychain(),
        kdf=FAST_KDF,
        options=ClientOptions(timeout=10.0),
    )


async def test_an_untrusted_certificate_is_refused_with_a_sentence(
    tls_server: tuple[str, CertificateAuthority, Path],
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, ca, other_ca = tls_server
    client = await _new_client(tmp_path, "alice")
    try:
        # Nobody trusts the throwaway CA: not the certifi bundle, not the system.
        with pytest.raises(UntrustedCertificateError) as caught:
            await client.create_account(url)
        assert caught.value.user_message.startswith(NOT_TRUSTED)
        # Trusting some other private CA does not help.
        monkeypatch.setenv(CA_FILE_ENV, str(other_ca))
        with pytest.raises(UntrustedCertificateError):
            await client.create_account(url)
        # The right CA, but a name the certificate does not carry.
        monkeypatch.setenv(CA_FILE_ENV, str(ca.cert_file))
        port = url.rsplit(":", 1)[1]
        with pytest.raises(UntrustedCertificateError):
            await client.create_account(f"https://127.0.0.1:{port}")
        assert not client.has_account
        # With MESSENGER_CA_FILE naming the CA, the same server is trusted.
        info = await client.create_account(url)
        assert info.server_url == url
    finally:
        await client.close()


async def test_the_ca_file_also_covers_the_push_socket(
    tls_server: tuple[str, CertificateAuthority, Path],
    tmp_path: Path,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both clients come online over wss:// (push) with the CA from MESSENGER_CA_FILE."""
    url, ca, _ = tls_server
    monkeypatch.setenv(CA_FILE_ENV, str(ca.cert_file))
    alice = await _new_client(tmp_path, "alice")
    bob = await _new_client(tmp_path, "bob")
    try:
        await alice.create_account(url, "alicetls")
        await bob.create_account(url, "bobtls")
        await alice.start()
        await bob.start()
        contact = await alice.add_contact("bobtls")
        conversation = await alice.create_conversation(contact.account_id)
        await alice.send_text(conversation.id, "over TLS")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:
            views = await bob.conversations()
            if views and any(v.message.body == "over TLS" for v in await bob.messages(views[0].id)):
                break
            assert loop.time() < deadline, "Bob did not receive the message over TLS"
            await asyncio.sleep(0.05)
    finally:
        await alice.close()
        await bob.close()


async def test_an_unreadable_ca_file_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "not-a-certificate.pem"
    bad.write_text("hello\n")
    monkeypatch.setenv(CA_FILE_ENV, str(bad))
    with pytest.raises(CertificateAuthorityFileError) as caught:
        Transport("https://chat.example.org")
    assert "MESSENGER_CA_FILE" in caught.value.user_message
    monkeypatch.setenv(CA_FILE_ENV, str(tmp_path / "missing.pem"))
    with pytest.raises(CertificateAuthorityFileError):
        Transport("https://chat.example.org")
