"""No log line names a client (hardening item 9).

A ``messenger-server`` process runs at log level DEBUG. A client connecting
from 127.0.0.3 registers with a handle, uploads KeyPackages, creates a
group, commits, sends, fetches, acknowledges, opens the push WebSocket, and
sends bad requests (garbage bytes, a bad signature, an unknown route, a
non-ASCII path). Then the whole log is read: it must not contain the
client's address or any peer ``address:port``, nor any account, client or
queue ID, group ID, handle, nonce or signature. The server's own bind
address appears once, in the ``listening`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx_ws
import pytest

from messenger.api import routes as r
from messenger.api.fields import b64encode
from messenger.api.signing import HEADER_NONCE, HEADER_SIGNATURE
from messenger.server.logs import PrivacyFilter, scrub_addresses

from . import mls_data
from .client import ApiClient

pytestmark = pytest.mark.anyio

CLIENT_ADDRESS = "127.0.0.3"
WAIT = 30.0
GID = os.urandom(16)
HANDLE = "logtest.secret-handle"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def debug_server(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    port = free_port()
    env = dict(
        os.environ,
        MESSENGER_HOST="127.0.0.1",
        MESSENGER_PORT=str(port),
        MESSENGER_DATA_DIR=str(tmp_path / "data"),
        MESSENGER_DATABASE_URL="",
        MESSENGER_POW_DIFFICULTY="8",
        MESSENGER_LOG_LEVEL="DEBUG",
    )
    env.pop("MESSENGER_CONFIG", None)
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "messenger.server"], env=env, stderr=stderr
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + r.HEALTH, timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield url, port, log
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection from the client's address; the answer."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(CLIENT_ADDRESS, 0)
    )
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), WAIT)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _conversation(url: str, port: int) -> list[str]:
    """Everything a client does; the secrets it used."""
    secrets: list[str] = []
    transport = httpx.AsyncHTTPTransport(local_address=CLIENT_ADDRESS)
    async with httpx.AsyncClient(transport=transport, base_url=url, timeout=WAIT) as http:
        alice = ApiClient(http)
        await alice.register(handle=HANDLE)
        bob = ApiClient(http)
        await bob.register()
        me = alice.me
        secrets += [me.account_id, me.client_id, me.queue_id, bob.me.account_id]
        secrets += [bob.me.client_id, bob.me.queue_id, HANDLE]
        secrets += [b64encode(GID), GID.hex()]
        await alice.upload_key_packages([alice.key_package() for _ in range(2)])
        await alice.key_package_count()
        await bob.upload_key_packages([bob.key_package()])
        (bob_kp,) = (await alice.claim(bob.me.account_id)).key_packages
        await alice.create_group(GID)
        queues = [me.queue_id, bob.me.queue_id]
        await alice.commit(
            GID,
            0,
            mls_data.commit(GID, 0),
            queues,
            welcome=mls_data.welcome([mls_data.key_package_ref(bob_kp.key_package)]),
            welcome_to=queues[1:],
            group_info=mls_data.group_info(GID, 1),
        )
        await alice.send(GID, mls_data.application(GID, 1, b"log test"))
        fetched = await bob.fetch(after=0)
        await bob.ack(fetched.messages[-1].seq)
        await alice.group_info(GID)
        # The push WebSocket, with its signed handshake headers.
        headers = alice.sign("GET", f"{r.QUEUE_WEBSOCKET}?after=0", b"")
        secrets += [headers[HEADER_NONCE], headers[HEADER_SIGNATURE]]
        async with alice.websocket(after=0, headers=headers) as ws:
            pushed = await ws.messages(2)
            await ws.ack(pushed[-1].seq)
        # Bad requests: a bad signature, an unknown route, a non-ASCII path.
        bad = alice.sign("GET", r.QUEUE_MESSAGES, b"")
        bad[HEADER_SIGNATURE] = b64encode(b"\x00" * 64)
        assert (await alice.raw("GET", r.QUEUE_MESSAGES, headers=bad)).status_code == 401
        assert (await http.get(f"/v1/nothing/{me.client_id}")).status_code == 404
        odd = await alice.raw("POST", f"/v1/groups/{me.queue_id}%C3%A9/messages", {"x": 1})
        assert odd.status_code < 500
        bad_ws = alice.sign("GET", f"{r.QUEUE_WEBSOCKET}?after=0", b"")
        bad_ws[HEADER_SIGNATURE] = b64encode(b"\x01" * 64)
        with pytest.raises(httpx_ws.WebSocketUpgradeError):
            async with alice.websocket(after=0, headers=bad_ws):
                pass
    # Garbage on the wire.
    answer = await _raw(port, b"\x16\x03\x01\x02\x00 hello\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    answer = await _raw(port, b"GET /health HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    return secrets


async def test_no_log_line_names_a_client(tmp_path: Path) -> None:
    with debug_server(tmp_path) as (url, port, log):
        secrets = await _conversation(url, port)
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line["event"] == "request" for line in lines), text  # DEBUG was on
    assert CLIENT_ADDRESS not in text
    for secret in secrets:
        assert secret not in text, secret
    # The server's own address appears only where it says where it listens.
    for line in lines:
        raw = json.dumps(line)
        if line["event"] == "listening":
            assert line["host"] == "127.0.0.1" and line["port"] == port
            continue
        assert "127.0.0.1" not in raw, raw
        assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}:\d+", raw), raw
    # The WebSocket handshakes were logged, without their peer and path.
    assert any(line["event"] == "websocket accepted" for line in lines), text
    assert any(line["event"] == "websocket refused" for line in lines), text


def _record(name: str, msg: str, *args: object) -> dict[str, object]:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    assert PrivacyFilter().filter(record)
    return {"event": record.getMessage(), **getattr(record, "fields", {})}


def test_uvicorn_lines_are_rewritten() -> None:
    accepted = _record(
        "uvicorn.error", '%s - "WebSocket %s" [accepted]', "203.0.113.9:5000", "/v1/queue/ws"
    )
    assert accepted == {"event": "websocket accepted"}
    refused = _record("uvicorn.error", '%s - "WebSocket %s" %d', "[2001:db8::1]:5000", "/x", 401)
    assert refused == {"event": "websocket refused", "status": 401}
    started = _record(
        "uvicorn.error", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", "http", "::", 80
    )
    assert started == {"event": "listening", "scheme": "http", "host": "::", "port": 80}


def test_addresses_are_scrubbed() -> None:
    for text in (
        "peer 203.0.113.9:5000 went away",
        "peer 203.0.113.9 went away",
        "peer [2001:db8::1]:443 went away",
        "peer 2001:db8:0:1:2:3:4:5 went away",
        "peer ::ffff:192.0.2.1 went away",
        "peer fe80::1 went away",
        "('10.1.2.3', 5555)",
        "('::1', 5555, 0, 0)",
    ):
        scrubbed = scrub_addresses(text)
        assert "[address]" in scrubbed, (text, scrubbed)
        for part in ("203.0", "2001:db8", "192.0", "fe80", "10.1", "'::1'"):
            assert part not in scrubbed, (text, scrubbed)
    for text in ("took 12:34:56", "version 1.2.3", "epoch 5, seq 7", "/v1/queue/ws?after=0"):
        assert scrub_addresses(text) == text
