"""Connection limits and timeouts of the HTTP serving layer (hardening item 5).

Each test runs the app under uvicorn on a loopback socket, configured by
``messenger.server.cli.uvicorn_config`` as ``messenger-server`` runs it, and
talks raw HTTP/1.1 over sockets bound to chosen source addresses of
127.0.0.0/8 (Linux routes the whole block to loopback), so that one address
can play the attacker and another the legitimate client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from messenger.api import routes as r
from messenger.server import create_app
from messenger.server.cli import uvicorn_config
from messenger.server.config import ConfigError, ServerConfig, load_config
from messenger.server.transport import (
    ConnectionGuard,
    ConnectionLimits,
    address_key,
    files_wanted,
)

from . import mls_data
from .client import ApiClient
from .conftest import make_config

pytestmark = pytest.mark.anyio

#: The longest any wait in these tests may take.
WAIT = 20.0
HEALTH = b"GET /health HTTP/1.1\r\nhost: test\r\n\r\n"


@dataclass
class Running:
    port: int
    server: uvicorn.Server
    http: httpx.AsyncClient
    conns: list[Raw]

    async def connect(self, source: str) -> Raw:
        """A raw connection from ``source``, closed at the end of the test."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(source, 0)
        )
        conn = Raw(reader, writer)
        self.conns.append(conn)
        return conn

    @property
    def guard(self) -> ConnectionGuard:
        guard: ConnectionGuard = self.server.config.http_protocol_class.guard  # type: ignore[attr-defined]
        return guard


@contextlib.asynccontextmanager
async def running(tmp_path: Path, **overrides: Any) -> AsyncIterator[Running]:
    config = make_config(tmp_path / "data", f"sqlite:///{tmp_path / 'm.db'}", **overrides)
    app = create_app(config, run_sweeper=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: _started(server, task), "uvicorn to start")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as http:
            conns: list[Raw] = []
            try:
                yield Running(port, server, http, conns)
            finally:
                for conn in conns:
                    await conn.close()
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
        raise RuntimeError("uvicorn stopped during start-up")
    return server.started


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Raw:
    """One raw TCP connection from a chosen source address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""
        self.closed = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def poll(self) -> bool:
        """Read what has arrived; whether the server has closed the connection."""
        if self.closed:
            return True
        try:
            chunk = await asyncio.wait_for(self.reader.read(65536), 0.05)
        except TimeoutError:
            return False
        except ConnectionError:
            chunk = b""
        if chunk:
            self.received += chunk
            return False
        self.closed = True
        return True

    async def wait_closed_by_server(self, what: str, trickle: bytes | None = None) -> None:
        """Wait until the server closes; send ``trickle`` meanwhile, a byte at a time."""
        pending = list(trickle or b"")

        async def check() -> bool:
            if pending and not self.closed:
                with contextlib.suppress(ConnectionError):
                    await self.send(bytes([pending.pop(0)]))
            return await self.poll()

        await until(check, what)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def get_health(port: int, source: str) -> int:
    """The status of ``GET /health`` on a fresh connection from ``source``."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=WAIT) as http:
        return (await http.get(f"http://127.0.0.1:{port}/health")).status_code


# -- timeouts -------------------------------------------------------------------------------


async def test_a_request_whose_headers_never_finish_is_closed(tmp_path: Path) -> None:
    async with running(tmp_path, header_timeout_seconds=0.5) as srv:
        silent = await srv.connect("127.0.0.2")
        slow = await srv.connect("127.0.0.2")
        await slow.send(b"GET /health HTTP/1.1\r\nhost: test\r\n")
        # Trickling header bytes does not extend the timeout.
        trickle = b"x-slow: " + b"a" * 10_000
        await slow.wait_closed_by_server("a slow request to be closed", trickle=trickle)
        await silent.wait_closed_by_server("a silent connection to be closed")
        assert slow.received == b""
        await until(lambda: _zero(srv.guard), "the guard to count no connection")
        assert await get_health(srv.port, "127.0.0.2") == 200


async def _zero(guard: ConnectionGuard) -> bool:
    return guard.open_connections == 0


async def test_the_next_request_on_a_kept_alive_connection_is_timed_too(tmp_path: Path) -> None:
    async with running(tmp_path, header_timeout_seconds=0.5) as srv:
        conn = await srv.connect("127.0.0.2")
        await conn.send(HEALTH)
        await until(lambda: _has(conn, b'"status":"ok"'), "the first answer")
        await conn.send(b"GET /health HTTP/1.1\r\n")
        await conn.wait_closed_by_server("the slow second request to be closed", b"x-a: " * 2000)
        assert conn.received.count(b"HTTP/1.1 200") == 1


async def _has(conn: Raw, needle: bytes) -> bool:
    await conn.poll()
    return needle in conn.received


async def test_a_body_that_never_finishes_is_closed(tmp_path: Path) -> None:
    async with running(tmp_path, body_timeout_seconds=0.5) as srv:
        conn = await srv.connect("127.0.0.2")
        await conn.send(
            b"POST /v1/register HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            b"content-length: 100000\r\n\r\n{"
        )
        await conn.wait_closed_by_server("a slow body to be closed", trickle=b" " * 10_000)
        assert await get_health(srv.port, "127.0.0.2") == 200


async def test_slow_answers_are_not_cut(tmp_path: Path) -> None:
    # A long poll outlasts both timeouts: no timer runs while the app works.
    async with running(tmp_path, header_timeout_seconds=0.3, body_timeout_seconds=0.3) as srv:
        client = ApiClient(srv.http)
        await client.register()
        group = os.urandom(16)
        await client.create_group(group)
        poll = asyncio.create_task(client.fetch(after=0, wait=30))
        # Probes opened with the poll show when both timeouts have passed.
        silent = await srv.connect("127.0.0.2")
        slow_body = await srv.connect("127.0.0.2")
        await slow_body.send(b"POST /v1/register HTTP/1.1\r\nhost: t\r\ncontent-length: 9\r\n\r\n{")
        await silent.wait_closed_by_server("the header timeout to pass")
        await slow_body.wait_closed_by_server("the body timeout to pass")
        assert not poll.done()
        # A message ends the poll, on its connection that is still open.
        await client.commit(group, 0, mls_data.commit(group, 0), [client.me.queue_id])
        await until(lambda: _done(poll), "the long poll to answer")
        (commit,) = poll.result().messages
        assert commit.data.startswith(b"\x00\x01\x00\x02")  # the commit, a PrivateMessage
        assert (await srv.http.get(r.HEALTH)).status_code == 200


async def _done(task: asyncio.Task[Any]) -> bool:
    return task.done()


async def test_accepted_connections_send_without_waiting_for_acks(tmp_path: Path) -> None:
    # The listener here is made with socket.socket(): protocol 0, on which asyncio
    # sets no TCP_NODELAY. Without it each response's body waited for the client's
    # delayed ACK of its headers, about 40 ms a request on a kept-alive connection.
    async with running(tmp_path) as srv:
        probe = await srv.connect("127.0.0.3")
        await probe.send(HEALTH)
        await until(lambda: _has(probe, b"200 OK"), "the answer to the probe")
        (connection,) = [
            c
            for c in srv.server.server_state.connections
            if c.transport.get_extra_info("peername")[0] == "127.0.0.3"
        ]
        sock = connection.transport.get_extra_info("socket")
        assert sock.proto == 0  # the case asyncio leaves alone
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_garbage_gets_a_json_400(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        conn = await srv.connect("127.0.0.2")
        await conn.send(b"\x16\x03\x01 not http\r\n\r\n")
        await conn.wait_closed_by_server("the server to close a bad request")
        head, _, body = conn.received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400")
        assert b'"code":"invalid_field"' in body


async def test_no_raw_request_gets_a_server_error(tmp_path: Path) -> None:
    # Bytes a client library would never send, straight onto the socket.
    requests = [
        b"GET /v1/groups/\xc3\xa9/messages HTTP/1.1\r\nhost: t\r\n\r\n",
        b"POST /v1/groups/%C3%A9/messages HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}",
        b"GET /v1/queue/messages?after=\xff HTTP/1.1\r\nhost: t\r\n\r\n",
        b"GET /v1/queue/messages?after=%FF%FE HTTP/1.1\r\nhost: t\r\n"
        b"x-messenger-client: \xe9\r\n\r\n",
        b"GET /v1/queue/ws?after=\xe9 HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\n"
        b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"GET /v1/queue/ws?after=%E9 HTTP/1.1\r\nhost: t\r\nconnection: upgrade\r\n"
        b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
        b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        b"G\xc3\xa9T /health HTTP/1.1\r\nhost: t\r\n\r\n",
        b"GET /health HTTP/1.1\r\nhost: t\r\n" + b"x-big: " + b"a" * 200_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nhost: t\r\n" + b"x-many: a\r\n" * 5_000 + b"\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nhost: t\r\n\r\n",
    ]
    async with running(tmp_path) as srv:
        for raw in requests:
            conn = await srv.connect("127.0.0.2")
            await conn.send(raw)
            await until(functools.partial(_answered, conn), f"an answer to {raw[:40]!r}")
            status = int(conn.received.split(b" ", 2)[1])
            assert 400 <= status < 500, (raw[:60], conn.received[:300])
            await conn.close()


async def _answered(conn: Raw) -> bool:
    await conn.poll()
    return b"\r\n\r\n" in conn.received or conn.closed


# -- connection caps ------------------------------------------------------------------------


def _refused(conn: Raw) -> bool:
    return conn.closed and (conn.received == b"" or conn.received.startswith(b"HTTP/1.1 503"))


async def test_connections_per_address_are_capped(tmp_path: Path) -> None:
    async with running(tmp_path, max_connections_per_address=3) as srv:
        held = [await srv.connect("127.0.0.2") for _ in range(3)]
        await until(lambda: _count(srv.guard, 3), "three connections to be admitted")
        over = await srv.connect("127.0.0.2")
        await over.wait_closed_by_server("the fourth connection to be refused")
        assert _refused(over), over.received
        assert b'"code":"unavailable"' in over.received or over.received == b""
        # Another address is served meanwhile.
        assert await get_health(srv.port, "127.0.0.3") == 200
        assert srv.guard.open_from(("127.0.0.2", 1)) == 3
        # A closed connection frees its slot.
        await held.pop().close()
        await until(lambda: _count(srv.guard, 2), "the slot to be freed")
        assert await get_health(srv.port, "127.0.0.2") == 200


async def _count(guard: ConnectionGuard, n: int) -> bool:
    return guard.open_connections == n


async def test_connections_in_all_are_capped(tmp_path: Path) -> None:
    async with running(tmp_path, max_connections=4, max_connections_per_address=0) as srv:
        held = [await srv.connect(f"127.0.0.{10 + i}") for i in range(4)]
        await until(lambda: _count(srv.guard, 4), "four connections to be admitted")
        over = await srv.connect("127.0.0.20")
        await over.wait_closed_by_server("the fifth connection to be refused")
        assert _refused(over), over.received
        await held.pop().close()
        await until(lambda: _count(srv.guard, 3), "the slot to be freed")
        assert await get_health(srv.port, "127.0.0.20") == 200


async def test_behind_a_proxy_the_per_address_cap_is_off(tmp_path: Path) -> None:
    async with running(tmp_path, trust_forwarded_for=True, max_connections_per_address=2) as srv:
        held = [await srv.connect("127.0.0.2") for _ in range(4)]
        await until(lambda: _count(srv.guard, 4), "four connections from the proxy")
        for conn in held:
            await conn.send(HEALTH)
        for conn in held:
            await until(functools.partial(_has, conn, b"HTTP/1.1 200"), "every proxied request")


async def test_a_websocket_keeps_its_slot_until_it_closes(tmp_path: Path) -> None:
    async with running(tmp_path) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
            client = ApiClient(http)
            await client.register()
        await until(lambda: _count(srv.guard, 0), "the registration connection to close")
        async with httpx.AsyncClient(base_url=base, timeout=WAIT) as http:
            client.http = http
            async with client.websocket(after=0):
                await until(lambda: _count(srv.guard, 1), "the WebSocket to hold one slot")
        await until(lambda: _count(srv.guard, 0), "the WebSocket's slot to be freed")


# -- pieces ---------------------------------------------------------------------------------


def test_address_keys() -> None:
    assert address_key(("192.0.2.7", 5000)) == "192.0.2.7"
    assert address_key(("::ffff:192.0.2.7", 5000, 0, 0)) == "192.0.2.7"
    assert address_key(("2001:db8:1:2:aaaa::1", 5000, 0, 0)) == "2001:db8:1:2::/64"
    assert address_key(("2001:db8:1:2:bbbb::9", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert address_key(("fe80::1%eth0", 1, 0, 2)) == "fe80::/64"
    assert address_key("") is None
    assert address_key(None) is None


def test_the_connection_cap_fits_in_the_file_limit() -> None:
    config = ServerConfig(max_connections=2048, db_pool_size=10)
    assert files_wanted(config) >= 2 * 2048
    roomy = ConnectionLimits.from_config(config, files_wanted(config))
    assert (roomy.max_connections, roomy.backlog) == (2048, 2048)
    assert ConnectionLimits.from_config(config, None).max_connections == 2048
    tight = ConnectionLimits.from_config(config, 1024)
    assert tight.max_connections + tight.backlog < 1024
    assert tight.max_connections >= 400
    proxied = ConnectionLimits.from_config(config.replace(trust_forwarded_for=True))
    assert proxied.max_per_address == 0


def test_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        "[limits]\nheader_timeout_seconds = 5\nmax_connections = 100\n"
        "max_connections_per_address = 0\nbody_timeout_seconds = 30.5\n"
    )
    config = load_config(path, {"MESSENGER_MAX_CONNECTIONS": "50"})
    assert config.header_timeout_seconds == 5.0
    assert config.body_timeout_seconds == 30.5
    assert config.max_connections == 50
    assert config.max_connections_per_address == 0
    for env in (
        {"MESSENGER_HEADER_TIMEOUT_SECONDS": "0"},
        {"MESSENGER_BODY_TIMEOUT_SECONDS": "-1"},
        {"MESSENGER_MAX_CONNECTIONS": "0"},
        {"MESSENGER_MAX_CONNECTIONS_PER_ADDRESS": "-1"},
        {"MESSENGER_MAX_CONNECTIONS": "many"},
    ):
        with pytest.raises(ConfigError):
            load_config(None, env)
