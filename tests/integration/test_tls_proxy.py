"""TLS through a real nginx: two clients chat over https:// and wss://.

nginx (the Debian package) runs as the current user from a temporary prefix,
listening on 127.0.0.1 only, with the configuration shipped in
``packaging/server/nginx/messenger.conf`` rendered with test values, and a
certificate from a throwaway CA (:mod:`tests.tls_certs`) that only
``MESSENGER_CA_FILE`` makes the clients trust. It proxies HTTP, long polls
and the WebSocket upgrade to a ``messenger-server`` subprocess on loopback.

nginx is required: a missing nginx fails these tests (in CI and elsewhere),
it never skips them.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from messenger.client import ClientOptions, ConnectionState, MessengerClient
from messenger.client.errors import UntrustedCertificateError
from messenger.client.net import Backoff
from messenger.client.net.transport_security import CA_FILE_ENV
from tests.tls_certs import CertificateAuthority

from .conftest import (
    FAST_KDF,
    PASSPHRASE,
    WAIT,
    ServerProcess,
    eventually,
    free_port,
    keychain,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.anyio

TEMPLATE = Path(__file__).parents[2] / "packaging" / "server" / "nginx" / "messenger.conf"
OPTIONS = ClientOptions(backoff=Backoff(base=0.05, maximum=1.0), timeout=10.0)


def nginx_binary() -> str:
    """The nginx program; a failure (never a skip) when it is not installed."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail("nginx is not installed (Debian: apt-get install nginx); this test needs it")
    return found


def render_site(values: dict[str, str]) -> str:
    """The shipped template with every @NAME@ replaced; no placeholder may remain."""
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    leftover = [line for line in text.splitlines() if "@" in line.split("#", 1)[0]]
    assert not leftover, f"placeholders left: {leftover}"
    return text


def write_nginx_prefix(prefix: Path, site: str) -> Path:
    """A main nginx.conf in ``prefix`` that includes ``site``: pid, logs, temp files there."""
    for sub in ("logs", "tmp", "acme"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "messenger.conf").write_text(site)
    user = ""
    if os.geteuid() == 0:  # workers would drop to "nobody", which cannot read tmp_path
        user = "user root root;"
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/messenger.conf;
}}
"""
    )
    return conf


def nginx_command(prefix: Path, conf: Path, *extra: str) -> list[str]:
    return [nginx_binary(), "-p", str(prefix), "-e", str(prefix / "logs" / "error.log"),
            "-c", str(conf), *extra]  # fmt: skip


@dataclass
class Proxy:
    url: str
    http_url: str
    ca: CertificateAuthority
    server: ServerProcess
    error_log: Path


def site_values(tmp: Path, ca: CertificateAuthority, upstream: str) -> dict[str, str]:
    leaf = ca.issue("localhost", ["localhost"], ["127.0.0.1"])
    return {
        "SERVER_NAME": "localhost",
        "HTTPS_LISTEN": f"127.0.0.1:{free_port()}",
        "HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "CERTIFICATE": str(leaf.cert_file),
        "CERTIFICATE_KEY": str(leaf.key_file),
        "ACME_ROOT": str(tmp / "nginx" / "acme"),
        "UPSTREAM": upstream,
    }


def test_the_shipped_nginx_config_passes_nginx_t(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path / "ca")
    values = site_values(tmp_path, ca, "127.0.0.1:8080")
    conf = write_nginx_prefix(tmp_path / "nginx", render_site(values))
    result = subprocess.run(
        nginx_command(tmp_path / "nginx", conf, "-t"), capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"test is successful" in result.stderr


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    monkeypatch.setenv("MESSENGER_TRUST_FORWARDED_FOR", "true")
    server = start_server(tmp_path / "server")
    ca = CertificateAuthority(tmp_path / "ca")
    values = site_values(tmp_path, ca, server.host)
    prefix = tmp_path / "nginx"
    conf = write_nginx_prefix(prefix, render_site(values))
    nginx = subprocess.Popen(
        nginx_command(prefix, conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"https://localhost:{values['HTTPS_LISTEN'].rsplit(':', 1)[1]}"
    trust = ssl.create_default_context(cafile=str(ca.cert_file))
    try:
        deadline = time.monotonic() + 30
        while True:
            if nginx.poll() is not None:
                err = nginx.stderr.read().decode() if nginx.stderr else ""
                pytest.fail(f"nginx exited with {nginx.returncode}: {err}")
            try:
                if httpx.get(url + "/health", verify=trust, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("nginx did not start proxying")
            time.sleep(0.05)
        yield Proxy(
            url,
            f"http://{values['HTTP_LISTEN']}",
            ca,
            server,
            prefix / "logs" / "error.log",
        )
    finally:
        nginx.terminate()
        try:
            nginx.wait(10)
        except subprocess.TimeoutExpired:
            nginx.kill()
            nginx.wait()
        if nginx.stderr is not None:
            nginx.stderr.close()
        stop_server(server)


@pytest.fixture
async def made(tmp_path: Path) -> AsyncIterator[list[MessengerClient]]:
    clients: list[MessengerClient] = []
    try:
        yield clients
    finally:
        for client in clients:
            await client.close()


async def new_client(tmp_path: Path, name: str, made: list[MessengerClient]) -> MessengerClient:
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=tmp_path / "clients" / name,
        keychain=keychain(),
        kdf=FAST_KDF,
        options=OPTIONS,
    )
    made.append(client)
    return client


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    return [v.message.body or "" for v in await client.messages(conversation_id)]


async def test_two_clients_chat_over_https_and_wss_through_nginx(
    proxy: Proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    made: list[MessengerClient],
) -> None:
    # Without the CA the proxy's certificate is refused with the sentence.
    stranger = await new_client(tmp_path, "stranger", made)
    monkeypatch.delenv(CA_FILE_ENV, raising=False)
    with pytest.raises(UntrustedCertificateError) as caught:
        await stranger.create_account(proxy.url)
    assert "certificate is not trusted" in caught.value.user_message

    monkeypatch.setenv(CA_FILE_ENV, str(proxy.ca.cert_file))
    alice = await new_client(tmp_path, "alice", made)
    bob = await new_client(tmp_path, "bob", made)
    info = await alice.create_account(proxy.url, "alicetls")
    await bob.create_account(proxy.url, "bobtls")
    assert info.server_url == proxy.url and info.address == f"alicetls@{proxy.url[8:]}"

    pushed_before = proxy.server.metric("messenger_pushed_messages_total")
    alice_events = alice.events()
    bob_events = bob.events()
    await alice.start()
    await bob.start()
    # Online means the push WebSocket is open: wss:// through nginx.
    await alice.wait_online(WAIT)
    await bob.wait_online(WAIT)
    assert proxy.server.metric("messenger_websocket_connections") == 2

    contact = await alice.add_contact("bobtls")
    chat = await alice.create_conversation(contact.account_id)
    await alice.send_text(chat.id, "Hello Bob, over TLS")

    async def bob_has_a_conversation() -> bool:
        return bool(await bob.conversations())

    await eventually(bob_has_a_conversation, "Bob to get the conversation")
    bob_chat = (await bob.conversations())[0].id

    async def bob_got_it() -> bool:
        return "Hello Bob, over TLS" in await texts(bob, bob_chat)

    await eventually(bob_got_it, "Bob to receive Alice's message")
    await bob.send_text(bob_chat, "Hello Alice, over wss")

    async def alice_got_it() -> bool:
        return "Hello Alice, over wss" in await texts(alice, chat.id)

    await eventually(alice_got_it, "Alice to receive Bob's answer")
    # Both messages reached their recipient by push over the proxied WebSocket.
    assert proxy.server.metric("messenger_pushed_messages_total") >= pushed_before + 2
    states = [e for e in alice_events.pending() + bob_events.pending()]
    online = [e for e in states if getattr(e, "state", None) is ConnectionState.ONLINE]
    assert len(online) >= 2
    alice_events.close()
    bob_events.close()

    # What the proxy adds around the API: /metrics stays private, plain http
    # only redirects to https.
    trust = ssl.create_default_context(cafile=str(proxy.ca.cert_file))
    async with httpx.AsyncClient(verify=trust, timeout=10) as http:
        assert (await http.get(proxy.url + "/metrics")).status_code == 404
        redirect = await http.get(proxy.http_url + "/v1/server")
        assert redirect.status_code == 301
        assert redirect.headers["location"].startswith("https://")
