"""Attack: draining someone's one-time KeyPackages (security issue, item 7).

Before the fix one stranger claimed all 19 of a victim's one-time
KeyPackages in 0.2 s. Now claims are limited per claiming account
(``key_package_claims_per_hour``, then ``rate_limited``), and one-time
KeyPackages are handed out at most
``one_time_key_packages_per_claimer_per_target_per_hour`` times an hour to
one claimer and ``one_time_key_packages_per_target_per_hour`` times an hour
in all; past either a claim returns the last-resort KeyPackage, so the
victim stays reachable and an honest claimer still gets a KeyPackage it can
add her with.
"""

from __future__ import annotations

import pytest

from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode

from . import mls_data
from .client import ApiClient
from .conftest import FakeClock, ServerFactory, TestServer

pytestmark = pytest.mark.anyio

GID = b"\x07honest-group"


async def _victim(server: TestServer, one_time: int = 19) -> tuple[ApiClient, bytes]:
    victim = await server.registered()
    last_resort = victim.key_package()
    await victim.upload_key_packages([victim.key_package() for _ in range(one_time)], last_resort)
    return victim, last_resort


async def test_a_stranger_cannot_drain_one_time_key_packages(
    server_factory: ServerFactory,
) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, one_time_key_packages_per_target_per_hour=5) as server:
        victim, last_resort = await _victim(server)
        mallory = await server.registered()
        claims = [(await mallory.claim(victim.me.account_id)).key_packages[0] for _ in range(19)]
        assert sum(not c.last_resort for c in claims) == 5
        assert all(c.key_package == last_resort for c in claims[5:])
        assert (await victim.key_package_count()).available == 14
        # An honest claimer still gets a KeyPackage (the last-resort one) and
        # can add the victim with it.
        carol = await server.registered()
        (claimed,) = (await carol.claim(victim.me.account_id)).key_packages
        assert claimed.last_resort and claimed.key_package == last_resort
        await carol.create_group(GID)
        await carol.commit(
            GID,
            0,
            mls_data.commit(GID, 0),
            [carol.me.queue_id, victim.me.queue_id],
            welcome=mls_data.welcome([mls_data.key_package_ref(claimed.key_package)]),
            welcome_to=[victim.me.queue_id],
        )
        # The limit refills over the hour.
        clock.advance(3600)
        (claimed,) = (await carol.claim(victim.me.account_id)).key_packages
        assert not claimed.last_resort
        assert (await victim.key_package_count()).available == 13


async def test_one_claimer_gets_only_a_share_of_the_targets_limit(server: TestServer) -> None:
    config = server.state.config
    per_claimer = config.one_time_key_packages_per_claimer_per_target_per_hour
    per_target = config.one_time_key_packages_per_target_per_hour
    assert (per_claimer, per_target) == (5, 10)  # the documented defaults
    victim, last_resort = await _victim(server)
    mallory = await server.registered()
    claims = [(await mallory.claim(victim.me.account_id)).key_packages[0] for _ in range(19)]
    assert sum(not c.last_resort for c in claims) == per_claimer
    # An honest claimer still gets a one-time KeyPackage ...
    carol = await server.registered()
    assert not (await carol.claim(victim.me.account_id)).key_packages[0].last_resort
    # ... until, with a second account, Mallory has used up the target's limit.
    puppet = await server.registered()
    for _ in range(19):
        await puppet.claim(victim.me.account_id)
    assert (await victim.key_package_count()).available == 19 - per_target
    (claimed,) = (await carol.claim(victim.me.account_id)).key_packages
    assert claimed.last_resort and claimed.key_package == last_resort


async def test_claims_are_limited_per_claimer(server_factory: ServerFactory) -> None:
    async with server_factory(key_package_claims_per_hour=20) as server:
        victims = [(await _victim(server, one_time=3))[0] for _ in range(3)]
        mallory = await server.registered()
        for i in range(20):
            await mallory.claim(victims[i % 3].me.account_id)
        response = await mallory.raw(
            "POST", r.CLAIM_KEY_PACKAGES, {"account_id": victims[0].me.account_id}
        )
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
        with pytest.raises(ApiError) as info:
            await mallory.claim(victims[1].me.account_id)
        assert info.value.code is ErrorCode.RATE_LIMITED
        # Others can still claim.
        carol = await server.registered()
        (claimed,) = (await carol.claim(victims[2].me.account_id)).key_packages
        assert claimed.client_id == victims[2].me.client_id
