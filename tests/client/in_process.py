"""The real server in this process, and clients that reach it without a socket.

:func:`in_process_server` runs :func:`messenger.server.create_app` (SQLite in
a temporary directory) with its lifespan, and gives a :class:`WireTap`: an
httpx transport over httpx-ws's ``ASGIWebSocketTransport`` (plain requests
and the push WebSocket), one per client, that records every exchange in a
shared :class:`Wire` and can lose the answer of a chosen request after the
server has handled it. Clients get it through
:attr:`messenger.client.ClientOptions.http_transport`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httpx_ws.transport import ASGIWebSocketTransport
from starlette.applications import Starlette

from messenger.client import ClientOptions, MessengerClient
from messenger.client.net import Backoff
from messenger.client.store import Keychain
from messenger.server import ServerConfig, create_app
from messenger.server.state import ServerState

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

SERVER_URL = "http://testserver"


@dataclass(frozen=True)
class Exchange:
    """One request and what became of it."""

    method: str
    path: str
    body: bytes
    status: int | None  # None: the answer was lost
    error: str | None = None  # the API error code of a refusal


@dataclass
class Wire:
    """What went over the wire between the clients and the server; answers to lose."""

    exchanges: list[Exchange] = field(default_factory=list)
    lose: list[Callable[[httpx.Request], bool]] = field(default_factory=list)

    def lose_answer_once(self, which: Callable[[httpx.Request], bool]) -> None:
        """The next request ``which`` matches reaches the server; its answer does not."""
        self.lose.append(which)

    def sent(self, method: str, path: str) -> list[Exchange]:
        return [x for x in self.exchanges if x.method == method and x.path == path]


@dataclass
class WireTap(httpx.AsyncBaseTransport):
    """One client's transport: passes requests on, records them in the wire."""

    wire: Wire
    inner: httpx.AsyncBaseTransport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content if request.method != "GET" else b""
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        for which in self.wire.lose:
            if which(request):
                self.wire.lose.remove(which)
                await response.aread()
                await response.aclose()
                self.wire.exchanges.append(Exchange(request.method, path, body, None))
                raise httpx.ReadError("the answer was lost (test)", request=request)
        error = None
        if response.status_code >= 400:
            content = await response.aread()
            with contextlib.suppress(ValueError, KeyError, TypeError):
                error = str(json.loads(content)["error"]["code"])
            response = httpx.Response(
                response.status_code, headers=response.headers, content=content, request=request
            )
        status = response.status_code
        self.wire.exchanges.append(Exchange(request.method, path, body, status, error))
        return response

    async def aclose(self) -> None:
        """Kept open: each of the client's transports closes it; the server closes it last."""


@dataclass
class InProcessServer:
    app: Starlette
    root: Path
    transports: contextlib.AsyncExitStack
    wire: Wire = field(default_factory=Wire)
    opened: list[MessengerClient] = field(default_factory=list)

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.server
        return state

    def counter(self, name: str, **labels: str) -> float:
        """A counter of the server's metrics (``messenger_<name>_total``)."""
        value = self.state.metrics.registry.get_sample_value(f"messenger_{name}_total", labels)
        return value or 0.0

    async def client(self, name: str) -> MessengerClient:
        """A new profile with an account on this server, not started.

        Each client has an ASGI transport of its own: httpx-ws's keeps the
        scope of a WebSocket being opened on the transport, so two clients
        connecting at once through one transport would mix up their requests.
        """
        inner = await self.transports.enter_async_context(ASGIWebSocketTransport(self.app))
        options = ClientOptions(
            http_transport=WireTap(self.wire, inner),
            backoff=Backoff(base=0.01, maximum=0.05),
            timeout=10.0,
        )
        client = await MessengerClient.create(
            name,
            PASSPHRASE,
            data_dir=self.root / "clients" / name,
            keychain=Keychain(backend=MemoryKeyring()),
            kdf=FAST_KDF,
            options=options,
        )
        self.opened.append(client)
        await client.create_account(SERVER_URL, handle=name)
        return client


@contextlib.asynccontextmanager
async def in_process_server(root: Path) -> AsyncIterator[InProcessServer]:
    data = root / "server"
    config = ServerConfig(
        data_dir=data,
        database_url=f"sqlite:///{data / 'messenger.db'}",
        pow_difficulty=6,
        ip_requests_per_minute=1_000_000,
        account_requests_per_minute=1_000_000,
        registrations_per_ip_per_hour=1_000_000,
        lookups_per_account_per_minute=1_000_000,
        lookups_per_ip_per_minute=1_000_000,
    )
    app = create_app(config, run_sweeper=False)
    async with app.router.lifespan_context(app), contextlib.AsyncExitStack() as transports:
        server = InProcessServer(app, root, transports)
        try:
            yield server
        finally:
            for client in server.opened:
                await client.close()
