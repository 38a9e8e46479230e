"""Anonymous registration: proof of work, proof of possession, invites, handles."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.pow import pow_ok, solve_pow
from messenger.api.signing import credential_tbs, possession_message
from messenger.server.registration import mint_invites

from .client import public_bytes
from .conftest import FakeClock, ServerFactory, TestServer
from .dbtools import count, rows

pytestmark = pytest.mark.anyio


async def _request(server: TestServer, **changes: object) -> m.RegisterRequest:
    client = server.client()
    challenge = await client.call("POST", r.REGISTER_CHALLENGE, None, m.Challenge, signed=False)
    key = Ed25519PrivateKey.generate()
    pub = public_bytes(key)
    values: dict[str, object] = {
        "signature_key": pub,
        "challenge": challenge.challenge,
        "pow_nonce": solve_pow(challenge.challenge, pub, challenge.difficulty),
        "proof": key.sign(possession_message(challenge.challenge, pub)),
    }
    values.update(changes)
    return m.RegisterRequest(**values)  # type: ignore[arg-type]


async def _register(server: TestServer, request: m.RegisterRequest) -> m.RegisterResponse:
    return await server.client().call("POST", r.REGISTER, request, m.RegisterResponse, signed=False)


async def _expect(code: ErrorCode, server: TestServer, request: m.RegisterRequest) -> None:
    with pytest.raises(ApiError) as info:
        await _register(server, request)
    assert info.value.code is code


async def test_register_issues_pseudonymous_ids_and_a_credential(server: TestServer) -> None:
    client = server.client()
    info = await client.server_info()
    assert info.pow_difficulty == 6 and info.signup_policy == "open"
    response = await client.register()
    ids = {response.account_id, response.client_id, response.queue_id}
    assert len(ids) == 3
    cred = response.credential
    assert cred.signature_key == public_bytes(client.me.key)
    Ed25519PublicKey.from_public_bytes(info.server_key).verify(
        cred.signature,
        credential_tbs(cred.account_id, cred.client_id, cred.signature_key, cred.issued_at),
    )
    assert await count(server, "accounts") == 1
    # The new client can make signed requests at once.
    assert (await client.key_package_count()).available == 0


async def test_challenge_difficulty_is_the_servers(server_factory: ServerFactory) -> None:
    async with server_factory(pow_difficulty=12) as server:
        challenge = await server.client().call(
            "POST", r.REGISTER_CHALLENGE, None, m.Challenge, signed=False
        )
        assert challenge.difficulty == 12
        request = await _request(server)
        assert pow_ok(request.challenge, request.signature_key, request.pow_nonce, 12)
        await _register(server, request)


async def test_wrong_proof_of_work_is_refused(server: TestServer) -> None:
    request = await _request(server)
    bad = next(
        n for n in range(10_000) if not pow_ok(request.challenge, request.signature_key, n, 6)
    )
    await _expect(ErrorCode.POW_INVALID, server, _replace(request, pow_nonce=bad))
    assert await count(server, "accounts") == 0


def _replace(request: m.RegisterRequest, **changes: object) -> m.RegisterRequest:
    return dataclasses.replace(request, **changes)  # type: ignore[arg-type]


async def test_forged_challenge_is_refused(server: TestServer) -> None:
    request = await _request(server)
    forged = bytearray(request.challenge)
    forged[5] ^= 1
    await _expect(ErrorCode.CHALLENGE_INVALID, server, _replace(request, challenge=bytes(forged)))
    await _expect(ErrorCode.CHALLENGE_INVALID, server, _replace(request, challenge=b"x" * 10))


async def test_expired_challenge_is_refused(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(clock=clock, challenge_ttl_seconds=60) as server:
        request = await _request(server)
        clock.advance(61)
        await _expect(ErrorCode.CHALLENGE_EXPIRED, server, request)


async def test_a_challenge_registers_once(server: TestServer) -> None:
    request = await _request(server)
    await _register(server, request)
    key = Ed25519PrivateKey.generate()
    pub = public_bytes(key)
    again = _replace(
        request,
        signature_key=pub,
        pow_nonce=solve_pow(request.challenge, pub, 6),
        proof=key.sign(possession_message(request.challenge, pub)),
    )
    await _expect(ErrorCode.CHALLENGE_USED, server, again)
    assert await count(server, "accounts") == 1


async def test_proof_of_possession_is_required(server: TestServer) -> None:
    request = await _request(server)
    other = Ed25519PrivateKey.generate()
    await _expect(
        ErrorCode.PROOF_INVALID,
        server,
        _replace(
            request, proof=other.sign(possession_message(request.challenge, request.signature_key))
        ),
    )


async def test_a_key_registers_once(server: TestServer) -> None:
    key = Ed25519PrivateKey.generate()
    await server.client().register(key=key)
    with pytest.raises(ApiError) as info:
        await server.client().register(key=key)
    assert info.value.code is ErrorCode.KEY_IN_USE
    assert await count(server, "accounts") == 1


async def test_closed_sign_up(server_factory: ServerFactory) -> None:
    async with server_factory(signup_policy="closed") as server:
        with pytest.raises(ApiError) as info:
            await server.client().register()
        assert info.value.code is ErrorCode.SIGNUP_CLOSED
        assert info.value.status == 403


async def test_invite_codes(server_factory: ServerFactory) -> None:
    async with server_factory(signup_policy="invite") as server:
        with pytest.raises(ApiError) as info:
            await server.client().register()
        assert info.value.code is ErrorCode.INVITE_REQUIRED
        with pytest.raises(ApiError) as info:
            await server.client().register(invite_code="not-a-real-code")
        assert info.value.code is ErrorCode.INVITE_INVALID
        (code,) = await mint_invites(server.state.db, 1, 2, None)
        await server.client().register(invite_code=code)
        await server.client().register(invite_code=code)
        with pytest.raises(ApiError) as info:
            await server.client().register(invite_code=code)
        assert info.value.code is ErrorCode.INVITE_INVALID
        assert await count(server, "accounts") == 2
        # Only hashes are stored.
        assert not any(code.encode() in repr(row).encode() for row in await _invite_rows(server))


async def test_invite_codes_are_safe_to_type_and_paste(server_factory: ServerFactory) -> None:
    """A code never starts with "-" (argparse would take it for a flag) and
    needs no escaping in an invite link."""
    async with server_factory(signup_policy="invite") as server:
        codes = await mint_invites(server.state.db, 200, 1, None)
    assert len(set(codes)) == 200
    for code in codes:
        assert code.isascii() and code.isalnum() and len(code) >= 22, code


async def _invite_rows(server: TestServer) -> list[tuple[object, ...]]:
    return await rows(server, "invites")


async def test_expired_invite(server_factory: ServerFactory) -> None:
    clock = FakeClock()
    async with server_factory(signup_policy="invite", clock=clock) as server:
        (code,) = await mint_invites(server.state.db, 1, 5, int((clock.now + 10) * 1000))
        clock.advance(11)
        with pytest.raises(ApiError) as info:
            await server.client().register(invite_code=code)
        assert info.value.code is ErrorCode.INVITE_INVALID


async def test_handles_are_found_by_exact_handle_only(server: TestServer) -> None:
    alice = await server.registered(handle="alice.w")
    bob = await server.registered()
    assert (await bob.lookup("alice.w")).account_id == alice.me.account_id
    for other in ("alice", "alice.w2", "alice_w"):
        with pytest.raises(ApiError) as info:
            await bob.lookup(other)
        assert info.value.code is ErrorCode.UNKNOWN_ACCOUNT
    with pytest.raises(ApiError) as info:
        await server.client().register(handle="alice.w")
    assert info.value.code is ErrorCode.HANDLE_TAKEN
    with pytest.raises(ApiError) as info:
        await bob.set_handle("alice.w")
    assert info.value.code is ErrorCode.HANDLE_TAKEN
    await bob.set_handle("bobby")
    await alice.set_handle("alice.w")  # setting one's own handle again is fine
    assert (await alice.lookup("bobby")).account_id == bob.me.account_id
    await bob.raw("DELETE", r.HANDLE)
    with pytest.raises(ApiError):
        await alice.lookup("bobby")


async def test_add_a_client_to_the_account(server: TestServer) -> None:
    alice = await server.registered()
    laptop = await alice.add_client()
    assert laptop.me.account_id == alice.me.account_id
    assert laptop.me.queue_id != alice.me.queue_id
    assert (await laptop.key_package_count()).available == 0
    bad = m.AddClientRequest(public_bytes(Ed25519PrivateKey.generate()), b"\x00" * 64)
    with pytest.raises(ApiError) as info:
        await alice.call("POST", r.CLIENTS, bad, m.AddClientResponse)
    assert info.value.code is ErrorCode.PROOF_INVALID


async def test_client_limit_per_account(server_factory: ServerFactory) -> None:
    async with server_factory(max_clients_per_account=2) as server:
        alice = await server.registered()
        await alice.add_client()
        with pytest.raises(ApiError) as info:
            await alice.add_client()
        assert info.value.code is ErrorCode.LIMIT_EXCEEDED


async def test_registrations_are_rate_limited_per_address(server_factory: ServerFactory) -> None:
    async with server_factory(registrations_per_ip_per_hour=2) as server:
        await server.client().register()
        await server.client().register()
        request = await _request(server)
        response = await server.client().raw("POST", r.REGISTER, request, signed=False)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) > 0
        assert await count(server, "accounts") == 2


async def test_requests_are_rate_limited_per_account(server_factory: ServerFactory) -> None:
    async with server_factory(account_requests_per_minute=3) as server:
        alice = await server.registered()
        for _ in range(3):
            await alice.key_package_count()
        with pytest.raises(ApiError) as info:
            await alice.key_package_count()
        assert info.value.code is ErrorCode.RATE_LIMITED
        # Another account is not affected.
        bob = await server.registered()
        await bob.key_package_count()


async def test_requests_are_rate_limited_per_address(server_factory: ServerFactory) -> None:
    async with server_factory(ip_requests_per_minute=3) as server:
        client = server.client()
        for _ in range(3):
            await client.server_info()
        with pytest.raises(ApiError) as info:
            await client.server_info()
        assert info.value.code is ErrorCode.RATE_LIMITED


def test_new_ids_never_start_with_a_dash() -> None:
    """One base64url ID in 64 would, and would read as an option on a command
    line (tests/client/test_cli_dash_ids.py)."""
    from messenger.server.ids import new_id

    ids = [new_id() for _ in range(2_000)]  # (63/64)^2000 < 1e-13 by chance
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert any("-" in i for i in ids), "a dash elsewhere is still drawn"
