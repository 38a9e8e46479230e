"""Fixtures for the server tests: every test runs on each database backend
(SQLite always; PostgreSQL when MESSENGER_TEST_POSTGRES_DSN is set, and
required when CI=true) and over each transport (in-process through httpx's
ASGI transport, and a real uvicorn on a loopback socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_ws.transport import ASGIWebSocketTransport
from starlette.applications import Starlette

from messenger.server import ServerConfig, create_app
from messenger.server.cli import UvicornServer, uvicorn_config
from messenger.server.state import ServerState

from .client import ApiClient

POSTGRES_ENV = "MESSENGER_TEST_POSTGRES_DSN"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def postgres_dsn() -> str:
    """The test PostgreSQL DSN; fails in CI and skips elsewhere when unset."""
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} must be set in CI: the suite runs on PostgreSQL too")
        pytest.skip(f"{POSTGRES_ENV} is not set (PostgreSQL runs are required in CI)")
    return dsn


def with_search_path(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}search_path={schema}"


@contextlib.asynccontextmanager
async def named_postgres_schema(prefix: str = "t_") -> AsyncIterator[tuple[str, str]]:
    """A fresh schema, dropped afterwards: the DSN that uses it, and its name."""
    dsn = postgres_dsn()
    schema = prefix + secrets.token_hex(6)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    try:
        yield with_search_path(dsn, schema), schema
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema for one test; the DSN that uses it."""
    async with named_postgres_schema() as (dsn, _schema):
        yield dsn


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'messenger.db'}"
    else:
        async with postgres_schema() as dsn:
            yield dsn


@pytest.fixture(params=["asgi", "uvicorn"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class FakeClock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_config(data_dir: Path, database_url: str, **overrides: Any) -> ServerConfig:
    """Small proof of work and rate limits that tests do not hit by accident."""
    base = ServerConfig(
        data_dir=data_dir,
        database_url=database_url,
        pow_difficulty=6,
        ip_requests_per_minute=1_000_000,
        account_requests_per_minute=1_000_000,
        registrations_per_ip_per_hour=1_000_000,
    )
    return base.replace(**overrides)


@dataclass
class TestServer:
    app: Starlette
    http: httpx.AsyncClient
    clock: Callable[[], float]
    transport: str

    __test__ = False

    @property
    def state(self) -> ServerState:
        state: ServerState = self.app.state.server
        return state

    def client(self) -> ApiClient:
        return ApiClient(self.http, clock=self.clock)

    async def registered(self, **kwargs: Any) -> ApiClient:
        client = self.client()
        await client.register(**kwargs)
        return client

    async def group(self, group_id: bytes, size: int) -> list[ApiClient]:
        """``size`` registered clients; the first made ``group_id`` with the others (epoch 1)."""
        members = [await self.registered() for _ in range(size)]
        await members[0].start_group(group_id, *members[1:])
        return members


@contextlib.asynccontextmanager
async def serve(
    app: Starlette, transport: str, clock: Callable[[], float]
) -> AsyncIterator[TestServer]:
    """Run ``app`` in-process (ASGI) or on a loopback socket (uvicorn)."""
    if transport == "asgi":
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=ASGIWebSocketTransport(app), base_url="http://testserver", timeout=30
            ) as http,
        ):
            yield TestServer(app, http, clock, transport)
        return
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = UvicornServer(uvicorn_config(app, "127.0.0.1", port), app.state.server.hub)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped during start-up")
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield TestServer(app, http, clock, transport)
    finally:
        server.should_exit = True
        await task
        sock.close()


ServerFactory = Callable[..., contextlib.AbstractAsyncContextManager[TestServer]]


@pytest.fixture
def server_factory(database_url: str, transport: str, tmp_path: Path) -> ServerFactory:
    """Start a server with config overrides (``clock=`` for a fake clock)."""

    @contextlib.asynccontextmanager
    async def factory(
        *, clock: Callable[[], float] = time.time, **overrides: Any
    ) -> AsyncIterator[TestServer]:
        config = make_config(tmp_path / "data", database_url, **overrides)
        app = create_app(config, clock=clock, run_sweeper=False)
        async with serve(app, transport, clock) as server:
            yield server

    return factory


@pytest.fixture
async def server(server_factory: ServerFactory) -> AsyncIterator[TestServer]:
    async with server_factory() as s:
        yield s
