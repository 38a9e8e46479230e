"""Handle lookups are limited to what a person needs (docs/threat-model.md).

An attacker who can look up handles fast can enumerate them (a handle is
findable by anyone who knows it exactly). Lookups are limited per account
and per address (``lookups_per_account_per_minute``, default 30, and
``lookups_per_ip_per_minute``, default 60) with ``429 rate_limited`` and
``Retry-After``. Setting a handle tells whether it is taken, so it draws on
the same limits. The tests use the defaults and a fake clock.
"""

from __future__ import annotations

import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.server.config import ServerConfig, load_config

from .client import ApiClient
from .conftest import FakeClock, ServerFactory

pytestmark = pytest.mark.anyio

#: The documented defaults, which the attack tests run with.
PER_ACCOUNT = 30
PER_ADDRESS = 60


async def _lookup_status(client: ApiClient, handle: str) -> tuple[int, str | None]:
    response = await client.raw("POST", r.HANDLE_LOOKUP, m.HandleLookupRequest(handle))
    return response.status_code, response.headers.get("retry-after")


def test_the_limits_are_settings_with_defaults() -> None:
    defaults = ServerConfig()
    assert (defaults.lookups_per_account_per_minute, defaults.lookups_per_ip_per_minute) == (
        PER_ACCOUNT,
        PER_ADDRESS,
    )
    assert defaults.registrations_per_ip_per_hour == 30
    config = load_config(
        None,
        {
            "MESSENGER_LOOKUPS_PER_ACCOUNT_PER_MINUTE": "5",
            "MESSENGER_LOOKUPS_PER_IP_PER_MINUTE": "7",
        },
    )
    assert (config.lookups_per_account_per_minute, config.lookups_per_ip_per_minute) == (5, 7)


async def test_an_enumerating_account_is_stopped_and_others_are_not(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock) as server:
        victim = await server.registered(handle="victim.handle")
        mallory = await server.registered()
        alice = await server.registered()
        # Mallory tries handle after handle, as fast as the server answers.
        statuses = [
            (await _lookup_status(mallory, f"guess-{i:04d}"))[0] for i in range(PER_ACCOUNT)
        ]
        assert statuses == [404] * PER_ACCOUNT
        status, retry_after = await _lookup_status(mallory, "victim.handle")
        assert status == 429 and retry_after is not None and 1 <= int(retry_after) <= 60
        with pytest.raises(ApiError) as info:
            await mallory.lookup("victim.handle")
        assert info.value.code is ErrorCode.RATE_LIMITED
        # Another account (from the same address) still finds its contact.
        assert (await alice.lookup("victim.handle")).account_id == victim.me.account_id
        # The limit recovers with time: one lookup per two seconds, then all of it.
        clock.advance(int(retry_after))
        assert (await mallory.lookup("victim.handle")).account_id == victim.me.account_id
        assert (await _lookup_status(mallory, "guess-x"))[0] == 429
        clock.advance(60)
        statuses = [
            (await _lookup_status(mallory, f"again-{i:04d}"))[0] for i in range(PER_ACCOUNT)
        ]
        assert statuses == [404] * PER_ACCOUNT
        assert (await _lookup_status(mallory, "again-x"))[0] == 429


async def test_many_accounts_from_one_address_are_stopped(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock) as server:
        sybils = [await server.registered() for _ in range(PER_ADDRESS // PER_ACCOUNT + 1)]
        done = 0
        for sybil in sybils[:-1]:
            for _ in range(PER_ACCOUNT):
                assert (await _lookup_status(sybil, f"guess-{done:04d}"))[0] == 404
                done += 1
        assert done == PER_ADDRESS
        # A fresh account from the same address: the address has had its share.
        status, retry_after = await _lookup_status(sybils[-1], "guess-next")
        assert status == 429 and retry_after is not None and int(retry_after) >= 1
        clock.advance(60)
        assert (await _lookup_status(sybils[-1], "guess-next"))[0] == 404


async def test_setting_handles_cannot_be_used_to_enumerate_them(
    server_factory: ServerFactory,
) -> None:
    """``handle_taken`` answers "does this handle exist?": it counts as a lookup."""
    clock = FakeClock()
    async with server_factory(clock=clock) as server:
        await server.registered(handle="victim.handle")
        mallory = await server.registered()
        answers = []
        for i in range(PER_ACCOUNT + 1):
            response = await mallory.raw(
                "PUT", r.HANDLE, m.SetHandleRequest("victim.handle" if i % 2 else f"m-{i:04d}")
            )
            answers.append(response.status_code)
        assert answers[:PER_ACCOUNT] == [200 if i % 2 == 0 else 409 for i in range(PER_ACCOUNT)]
        assert answers[PER_ACCOUNT] == 429
        clock.advance(60)
        assert (await mallory.raw("PUT", r.HANDLE, m.SetHandleRequest("m-last"))).status_code == 200
