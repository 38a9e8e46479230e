"""What one account can store as rejoin boxes (messenger.server.rejoin_boxes).

Any registered client may write any handle, so each test plays an account
that tries to fill the server with boxes: new boxes are limited per account
and hour, all boxes together by a cap, and a box that is not written again
expires. A refusal stores nothing; replacing a box is never refused by
these limits; another account is not held to the first one's allowance.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.server.config import ConfigError, ServerConfig, load_config
from messenger.server.rejoin_boxes import EXPIRY_BUCKET_MS
from messenger.server.storage import Tx

from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import rows

pytestmark = pytest.mark.anyio

_DAY = 24 * 3600


async def _put(client: ApiClient, handle: bytes, box: bytes | None = None) -> Any:
    body = m.RejoinBox(box if box is not None else os.urandom(68))
    return await client.raw("PUT", r.rejoin_box_path(handle), body)


def _error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def _stored(server: TestServer) -> dict[bytes, tuple[bytes, int | None]]:
    return {h: (b, e) for h, b, e in await rows(server, "rejoin_boxes")}


async def test_new_boxes_are_limited_per_account_and_hour(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(
        clock=clock, new_rejoin_boxes_burst=3, new_rejoin_boxes_per_account_per_hour=2
    ) as server:
        mallory, alice = await server.registered(), await server.registered()
        handles = [os.urandom(32) for _ in range(4)]
        for h in handles[:3]:
            assert (await _put(mallory, h)).status_code == 200
        before = await _stored(server)
        refused = await _put(mallory, handles[3])
        assert _error(refused) == (429, "rate_limited")
        assert refused.json()["error"]["details"]["retry_after"] > 0
        assert await _stored(server) == before  # nothing stored
        # Replacing a stored box is free: it adds nothing to the server.
        replaced = os.urandom(68)
        assert (await _put(mallory, handles[0], replaced)).status_code == 200
        assert (await _stored(server))[handles[0]][0] == replaced
        # Another account has its own allowance.
        assert (await _put(alice, os.urandom(32))).status_code == 200
        # Half an hour later, the allowance has one new box again.
        clock.advance(1800)
        assert (await _put(mallory, handles[3])).status_code == 200
        assert _error(await _put(mallory, os.urandom(32))) == (429, "rate_limited")
        assert len(await _stored(server)) == 5


async def test_the_server_stores_at_most_its_cap(server_factory: ServerFactory) -> None:
    async with server_factory(max_rejoin_boxes=2) as server:
        alice, mallory = await server.registered(), await server.registered()
        first, second = os.urandom(32), os.urandom(32)
        assert (await _put(alice, first)).status_code == 200
        assert (await _put(mallory, second)).status_code == 200
        before = await _stored(server)
        assert _error(await _put(mallory, os.urandom(32))) == (507, "no_space")
        assert _error(await _put(alice, os.urandom(32))) == (507, "no_space")
        assert await _stored(server) == before
        # A stored box may still be replaced, and a deleted one makes room.
        assert (await _put(alice, first)).status_code == 200
        await mallory.call("DELETE", r.rejoin_box_path(second), None, m.Empty)
        third = os.urandom(32)
        assert (await _put(alice, third)).status_code == 200
        assert set(await _stored(server)) == {first, third}
        # The sweep counts again what is stored (other processes write too).
        await server.state.rejoin_boxes.sweep()
        assert _error(await _put(alice, os.urandom(32))) == (507, "no_space")


async def test_a_box_not_written_again_expires(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, rejoin_box_ttl_seconds=90 * _DAY) as server:
        alice = await server.registered()
        kept, dropped = os.urandom(32), os.urandom(32)
        await _put(alice, kept)
        await _put(alice, dropped)
        expires_at = (await _stored(server))[kept][1]
        assert expires_at is not None
        # A week boundary at least the TTL away, at most a week more: the time a
        # box was written is not stored finer than the week.
        assert expires_at % EXPIRY_BUCKET_MS == 0
        now_ms = int(clock() * 1000)
        assert now_ms + 90 * _DAY * 1000 <= expires_at < now_ms + 97 * _DAY * 1000
        clock.advance(60 * _DAY)
        await _put(alice, kept)  # a device rewrites its box every 60 days
        assert await server.state.rejoin_boxes.sweep() == 0
        clock.advance(40 * _DAY)
        assert await server.state.rejoin_boxes.sweep() == 1
        assert set(await _stored(server)) == {kept}
        response = await alice.raw("GET", r.rejoin_box_path(dropped))
        assert _error(response) == (404, "not_found")
        clock.advance(100 * _DAY)
        assert await server.state.rejoin_boxes.sweep() == 1
        assert await _stored(server) == {}


async def test_boxes_from_before_expiry_times_get_one_at_the_next_sweep(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock) as server:
        handle, box = os.urandom(32), os.urandom(68)

        async def old_row(tx: Tx) -> None:  # as server migration 20 left it
            await tx.execute("INSERT INTO rejoin_boxes (handle, box) VALUES (?, ?)", handle, box)

        await server.state.db.transaction(old_row)
        assert await server.state.rejoin_boxes.sweep() == 0
        [(stored, expires_at)] = (await _stored(server)).values()
        assert stored == box and expires_at is not None
        assert expires_at >= int(clock() * 1000) + 180 * _DAY * 1000


def test_the_limits_are_configured_and_checked(tmp_path: Any) -> None:
    path = tmp_path / "server.toml"
    path.write_text(
        "[rejoin_boxes]\nnew_per_account_per_hour = 5\nnew_burst = 50\n"
        "max_boxes = 1000\nttl_seconds = 8000000\n"
    )
    config = load_config(path, environ={})
    assert (
        config.new_rejoin_boxes_per_account_per_hour,
        config.new_rejoin_boxes_burst,
        config.max_rejoin_boxes,
        config.rejoin_box_ttl_seconds,
    ) == (5, 50, 1000, 8_000_000)
    env = {"MESSENGER_MAX_REJOIN_BOXES": "9", "MESSENGER_REJOIN_BOX_TTL_SECONDS": "8000001"}
    from_env = load_config(path, environ=env)
    assert (from_env.max_rejoin_boxes, from_env.rejoin_box_ttl_seconds) == (9, 8_000_001)
    with pytest.raises(ConfigError, match="90 days"):
        ServerConfig(rejoin_box_ttl_seconds=60 * _DAY)
    with pytest.raises(ConfigError, match="max_rejoin_boxes"):
        ServerConfig(max_rejoin_boxes=0)
