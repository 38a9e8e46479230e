"""The real server in this process, and clients that reach it without a socket.

:func:`in_process_server` runs :func:`messenger.server.create_app` (SQLite in
a temporary directory) with its lifespan, and gives a :class:`WireTap`: an
httpx transport over httpx-ws's ``ASGIWebSocketTransport`` (plain requests
and the push WebSocket), one per client, that records every exchange in a
shared :class:`Wire` and can lose the answer of a chosen request after the
server has handled it. Clients get it through
:attr:`messenger.client.ClientOptions.http_transport`.

Every step of the teardown is bounded (:data:`TEARDOWN_S`): a step that
hangs fails the test with a sentence naming it instead of stalling the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
from httpx_ws.transport import ASGIWebSocketAsyncNetworkStream, ASGIWebSocketTransport
from starlette.applications import Starlette

from messenger.api.signing import HEADER_CLIENT, HEADER_QUEUE
from messenger.client import ClientOptions, MessengerClient
from messenger.client.net import Backoff
from messenger.client.store import Keychain
from messenger.server import ServerConfig, create_app
from messenger.server.state import ServerState

from .helpers import FAST_KDF, PASSPHRASE, MemoryKeyring

SERVER_URL = "http://testserver"

_T = TypeVar("_T")

#: The most each step of the fixture's teardown may take.
TEARDOWN_S = 30.0


class _HandshakeSafeStream(ASGIWebSocketAsyncNetworkStream):
    """httpx-ws's in-process WebSocket stream, made safe to cancel during the handshake.

    httpx-ws starts the app's WebSocket session in the transport's task
    group, then waits for the app to accept. A client cancelled in that wait
    (a client closed while its listener connects) leaves with the stream
    never registered for closing: the app, having accepted, waits for a
    message forever and the transport's task group never exits. Here an
    interrupted handshake tells the app the client went away
    (``websocket.disconnect``), as a real socket's close would.
    """

    async def __aenter__(self) -> tuple[ASGIWebSocketAsyncNetworkStream, bytes]:
        try:
            return await super().__aenter__()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise


class _InProcessTransport(ASGIWebSocketTransport):
    """:class:`ASGIWebSocketTransport` with :class:`_HandshakeSafeStream` streams."""

    async def _create_asgi_websocket_async_network_stream(
        self, *, task_status: Any = anyio.TASK_STATUS_IGNORED
    ) -> None:
        stream = _HandshakeSafeStream(
            self.app,  # type: ignore[arg-type]
            self.scope,
            self._task_group,
            self._initial_receive_timeout,
        )
        assert self._exit_stack is not None
        result = await self._exit_stack.enter_async_context(stream)
        task_status.started(result)


@contextlib.asynccontextmanager
async def _bounded(step: str) -> AsyncIterator[None]:
    """Fail with a sentence naming ``step`` if it takes longer than :data:`TEARDOWN_S`."""
    try:
        with anyio.fail_after(TEARDOWN_S):
            yield
    except TimeoutError:
        raise AssertionError(
            f"in-process server teardown: {step} did not finish within {TEARDOWN_S:.0f} s"
        ) from None


@contextlib.asynccontextmanager
async def _bounded_exit(
    step: str, cm: contextlib.AbstractAsyncContextManager[_T]
) -> AsyncIterator[_T]:
    """``cm``, whose exit fails with a sentence naming ``step`` after :data:`TEARDOWN_S`.

    The deadline starts when the exit does, not while the test runs.
    """
    with anyio.CancelScope() as scope:
        async with cm as value:
            try:
                yield value
            finally:
                scope.deadline = anyio.current_time() + TEARDOWN_S
    if scope.cancelled_caught:
        raise AssertionError(
            f"in-process server teardown: {step} did not finish within {TEARDOWN_S:.0f} s"
        )


@dataclass(frozen=True)
class Exchange:
    """One request and what became of it."""

    method: str
    path: str
    body: bytes
    status: int | None  # None: the answer was lost
    error: str | None = None  # the API error code of a refusal
    client: str | None = None  # the signing client (X-Messenger-Client), if signed
    queue: str | None = None  # the queue the request proves (X-Messenger-Queue), if any


@dataclass
class Wire:
    """What went over the wire between the clients and the server; answers to lose."""

    exchanges: list[Exchange] = field(default_factory=list)
    lose: list[Callable[[httpx.Request], bool]] = field(default_factory=list)
    before: list[tuple[Callable[[httpx.Request], bool], Callable[[], Awaitable[None]]]] = field(
        default_factory=list
    )

    def lose_answer_once(self, which: Callable[[httpx.Request], bool]) -> None:
        """The next request ``which`` matches reaches the server; its answer does not."""
        self.lose.append(which)

    def before_once(
        self, which: Callable[[httpx.Request], bool], action: Callable[[], Awaitable[None]]
    ) -> None:
        """``action`` runs (to its end) before the next request ``which`` matches
        reaches the server: another client's doing, in between."""
        self.before.append((which, action))

    def sent(self, method: str, path: str) -> list[Exchange]:
        return [x for x in self.exchanges if x.method == method and x.path == path]


@dataclass
class WireTap(httpx.AsyncBaseTransport):
    """One client's transport: passes requests on, records them in the wire."""

    wire: Wire
    inner: httpx.AsyncBaseTransport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = request.content if request.method != "GET" else b""
        for hook in list(self.wire.before):
            which, action = hook
            if which(request):
                self.wire.before.remove(hook)
                await action()
                break
        response = await self.inner.handle_async_request(request)
        path = request.url.path
        signer = request.headers.get(HEADER_CLIENT)
        queue = request.headers.get(HEADER_QUEUE)
        for which in self.wire.lose:
            if which(request):
                self.wire.lose.remove(which)
                await response.aread()
                await response.aclose()
                self.wire.exchanges.append(
                    Exchange(request.method, path, body, None, client=signer)
                )
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
        self.wire.exchanges.append(
            Exchange(request.method, path, body, status, error, signer, queue)
        )
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
    introduced: list[MessengerClient] = field(default_factory=list)

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.server
        return state

    def counter(self, name: str, **labels: str) -> float:
        """A counter of the server's metrics (``messenger_<name>_total``)."""
        value = self.state.metrics.registry.get_sample_value(f"messenger_{name}_total", labels)
        return value or 0.0

    async def client(
        self,
        name: str,
        *,
        clock: Callable[[], float] | None = None,
        introduce: bool = True,
    ) -> MessengerClient:
        """A new profile with an account on this server, not started.

        Each client has an ASGI transport of its own: httpx-ws's keeps the
        scope of a WebSocket being opened on the transport, so two clients
        connecting at once through one transport would mix up their requests.

        With ``introduce``, it and the other clients made so with an account
        know each other's contact tokens, as if they had exchanged invite
        links (docs/metadata.md §1): the tests add each other by account ID.
        """
        inner = await self.transports.enter_async_context(_InProcessTransport(self.app))
        options = ClientOptions(
            http_transport=WireTap(self.wire, inner),
            backoff=Backoff(base=0.01, maximum=0.05),
            timeout=10.0,
        )
        if clock is not None:  # the test's: the client's time moves when the test says
            options = dataclasses.replace(options, clock=clock)
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
        if introduce:
            await self._introduce(client)
        return client

    async def _introduce(self, client: MessengerClient) -> None:
        """Give ``client`` and the clients introduced before it each other's tokens."""
        await introduce(self, client)


async def introduce(server: InProcessServer, client: MessengerClient) -> None:
    """Give ``client`` (with an account) and the clients ``server`` introduced before
    it each other's contact tokens, as an exchange of invite links would."""
    from messenger.client.contact_tokens import own_token

    def known(c: MessengerClient) -> tuple[str, bytes] | None:
        session = c._session
        token = None if session is None else own_token(session.account)
        return None if token is None or session is None else (session.account.account_id, token)

    mine = known(client)
    for other in server.introduced:
        if other._closed or other._session is None:
            continue
        theirs = known(other)
        for to, token in ((other, mine), (client, theirs)):
            if token is not None and token[0] != to._require().account.account_id:
                who, value = token
                await to._store.run(lambda s, w=who, v=value: s.contact_tokens.set(w, v, now=0))
    server.introduced.append(client)


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
    async with (
        _bounded_exit("the app's lifespan shutdown", app.router.lifespan_context(app)),
        _bounded_exit("closing the transports", contextlib.AsyncExitStack()) as transports,
    ):
        server = InProcessServer(app, root, transports)
        try:
            yield server
        finally:
            for client in server.opened:
                async with _bounded(f"closing client {client.profile.name!r}"):
                    await client.close()
