"""Choosing a group's cipher suite, and KeyPackages kept per suite (docs/pq-suites.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api import routes as r
from messenger.client.identity import CIPHER_SUITE, GROUP_SUITES, HYBRID_SUITE
from messenger.client.net import Signer, Transport
from messenger.client.suite_choice import SuiteNotSupportedError, claim_in_one_suite
from messenger.client.sync import KeyPackagePool
from messenger.mls.messages import MLSMessage

from .sync_helpers import UNREACHABLE, Authority, address_answer, close_session, make_session

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Directory:
    """Answers claims like the server: the first listed suite the account provides."""

    def __init__(self, provides: dict[str, tuple[int, ...]]) -> None:
        self.provides = provides
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    async def __call__(self, account: str, suites: Sequence[int]) -> tuple[int, list[bytes]]:
        self.calls.append((account, tuple(suites)))
        for suite in suites:
            if suite in self.provides[account]:
                return suite, [f"{account}/{suite}/{len(self.calls)}".encode()]
        raise LookupError(f"{account} has none of {suites}")


async def test_everyone_hybrid_means_a_hybrid_group_with_one_claim_each() -> None:
    directory = Directory({"a": GROUP_SUITES, "b": GROUP_SUITES})
    suite, found = await claim_in_one_suite(directory, ["a", "b"])
    assert suite == HYBRID_SUITE
    assert directory.calls == [("a", GROUP_SUITES), ("b", GROUP_SUITES)]
    assert found == {"a": [b"a/61441/1"], "b": [b"b/61441/2"]}


async def test_one_old_account_makes_the_earlier_ones_claimed_again_in_suite_1() -> None:
    directory = Directory({"a": GROUP_SUITES, "b": GROUP_SUITES, "old": (1,), "d": GROUP_SUITES})
    suite, found = await claim_in_one_suite(directory, ["a", "b", "old", "d"])
    assert suite == CIPHER_SUITE
    assert directory.calls == [
        ("a", GROUP_SUITES),
        ("b", GROUP_SUITES),
        ("old", GROUP_SUITES),
        ("a", (1,)),
        ("b", (1,)),
        ("d", (1,)),  # after the old one, suite 1 only: no second claim
    ]
    assert all(kp.split(b"/")[1] == b"1" for kps in found.values() for kp in kps)
    assert list(found) == ["a", "b", "old", "d"]


async def test_no_accounts_means_the_first_suite_and_errors_pass_through() -> None:
    assert await claim_in_one_suite(Directory({}), []) == (HYBRID_SUITE, {})
    assert await claim_in_one_suite(Directory({}), [], suites=(1,)) == (1, {})
    with pytest.raises(LookupError):
        await claim_in_one_suite(Directory({"x": ()}), ["x"])


async def test_an_answer_in_a_suite_not_asked_for_is_refused() -> None:
    async def liar(account: str, suites: Sequence[int]) -> tuple[int, list[bytes]]:
        return 3, [b"kp"]

    with pytest.raises(ValueError, match="not in"):
        await claim_in_one_suite(liar, ["a"])


def test_the_error_names_the_member() -> None:
    error = SuiteNotSupportedError("x", who="Olga")
    assert error.user_message == "Olga's app does not support this conversation's encryption yet."
    assert "app does not support" in SuiteNotSupportedError().user_message


class SuiteServer:
    """Counts KeyPackages per suite like the server (or like one from before suites)."""

    def __init__(self, *, with_suites: bool = True) -> None:
        self.with_suites = with_suites
        self.available: dict[int, int] = {1: 0, HYBRID_SUITE: 0}
        self.last_resort: dict[int, bytes] = {}
        self.uploads: list[m.UploadKeyPackagesRequest] = []

    def count(self) -> m.KeyPackageCount:
        suites = tuple(
            m.SuiteKeyPackageCount(s, n, s in self.last_resort) for s, n in self.available.items()
        )
        return m.KeyPackageCount(
            self.available[1], 1 in self.last_resort, suites if self.with_suites else None
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        address = address_answer(request)
        if address is not None:
            return address
        if request.url.path == r.KEY_PACKAGE_COUNT:
            return httpx.Response(200, content=self.count().dumps())
        assert request.url.path == r.KEY_PACKAGES
        upload = m.UploadKeyPackagesRequest.from_json(json.loads(request.content))
        self.uploads.append(upload)
        suites = {_suite(kp) for kp in upload.key_packages}
        if upload.last_resort is not None:
            suites.add(_suite(upload.last_resort))
            self.last_resort[_suite(upload.last_resort)] = upload.last_resort
        assert len(suites) == 1, "one suite per upload (one last-resort KeyPackage per suite)"
        for kp in upload.key_packages:
            self.available[_suite(kp)] += 1
        count = self.count()
        answer = m.UploadKeyPackagesResponse(count.available, count.last_resort, count.suites)
        return httpx.Response(200, content=answer.dumps())


def _suite(data: bytes) -> int:
    return int(MLSMessage.from_bytes(data).key_package.cipher_suite)


async def _pool_run(
    tmp_path: Path, server: SuiteServer, suites: tuple[int, ...] | None = None
) -> int:
    session = await make_session(tmp_path, "bob", Authority())
    await session.transport.aclose()
    session.transport = Transport(
        UNREACHABLE,
        signer=Signer(session.account.client_id, session.account.signature_private_key),
        transport=httpx.MockTransport(server),
    )
    try:
        return await KeyPackagePool(session, target=4, low_water=2, suites=suites).replenish()
    finally:
        await close_session(session)


async def test_the_pool_keeps_both_suites_stocked(tmp_path: Path) -> None:
    server = SuiteServer()
    assert await _pool_run(tmp_path, server) == 10  # 4 + 1 in each suite
    assert server.available == {1: 4, HYBRID_SUITE: 4}
    assert set(server.last_resort) == {1, HYBRID_SUITE}
    # Each KeyPackage lists both suites among its capabilities (RFC 9420 §7.2).
    for data in server.last_resort.values():
        caps = MLSMessage.from_bytes(data).key_package.leaf_node.capabilities
        assert set(caps.cipher_suites) == set(GROUP_SUITES)


async def test_a_server_from_before_suites_gets_suite_1_only(tmp_path: Path) -> None:
    server = SuiteServer(with_suites=False)
    assert await _pool_run(tmp_path, server) == 5
    assert server.available == {1: 4, HYBRID_SUITE: 0}


async def test_a_client_limited_to_suite_1_keeps_only_suite_1(tmp_path: Path) -> None:
    server = SuiteServer()
    assert await _pool_run(tmp_path, server, suites=(1,)) == 5
    assert server.available == {1: 4, HYBRID_SUITE: 0} and set(server.last_resort) == {1}
    with pytest.raises(ValueError):
        await _pool_run(tmp_path / "x", SuiteServer(), suites=(3,))
