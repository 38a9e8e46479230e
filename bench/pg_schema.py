"""A fresh PostgreSQL schema for one benchmark run (imported by the server benchmarks).

Each run's server makes a new secret key file; rows another run sealed under
its own key would make the server refuse to start (docs/metadata.md §1), and
one run's rows would weigh on the next. So every run gets a schema of its
own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import asyncpg


@contextlib.asynccontextmanager
async def fresh_schema(url: str | None) -> AsyncIterator[str | None]:
    """``url`` with a fresh PostgreSQL schema, dropped afterwards (SQLite: ``None``)."""
    if url is None:
        yield None
        return
    schema = "bench_" + secrets.token_hex(6)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    try:
        yield f"{url}{'&' if '?' in url else '?'}search_path={schema}"
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()
