"""The network seam: signing, and every failure mapped to a typed client error."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import httpx_ws
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from messenger.api import routes as r
from messenger.api.fields import b64decode
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    canonical_request,
)
from messenger.client.errors import (
    AuthError,
    GroupExistsError,
    HandleTakenError,
    InvalidServerAddressError,
    NoKeyPackageError,
    NotAMemberError,
    ProtocolError,
    RateLimitedError,
    ServerRejectedError,
    ServerUnavailableError,
    SignupRefusedError,
    StaleEpochError,
    UnknownAccountError,
)
from messenger.client.net import (
    Backoff,
    Signer,
    Transport,
    error_from_response,
    normalize_server_url,
    transport_errors,
)

pytestmark = pytest.mark.anyio

KEY = Ed25519PrivateKey.generate()
RAW_KEY = KEY.private_bytes_raw()
GROUP = b"\x01group"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def api_error(status: int, code: str, **details: object) -> httpx.Response:
    body = {"error": {"code": code, "message": "m", "details": details}}
    return httpx.Response(status, json=body)


def transport_with(handler: Callable[[httpx.Request], httpx.Response]) -> Transport:
    signer = Signer("client-1", RAW_KEY, clock=lambda: 1_700_000_000.5)
    return Transport("http://server.test", signer=signer, transport=httpx.MockTransport(handler))


async def test_requests_are_signed_over_the_canonical_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"epoch": 3, "recipients": 2})

    transport = transport_with(handler)
    await transport.commit(GROUP, b'{"epoch":2}', sealed=False)
    await transport.aclose()
    request = seen[0]
    headers = request.headers
    assert headers[HEADER_CLIENT] == "client-1"
    assert headers[HEADER_TIMESTAMP] == "1700000000500"
    message = canonical_request(
        "POST",
        r.group_path(r.GROUP_COMMITS, GROUP),
        "client-1",
        1_700_000_000_500,
        headers[HEADER_NONCE],
        request.content,
    )
    KEY.public_key().verify(b64decode(headers[HEADER_SIGNATURE]), message)
    assert headers["content-type"] == "application/json"


async def test_sealed_sends_carry_nothing_that_names_the_client() -> None:
    """docs/metadata.md §3: the send routes are sealed: no client, signature or device token."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/batch"):
            return httpx.Response(200, json={"results": [{"epoch": 3, "recipients": 2}]})
        return httpx.Response(200, json={"epoch": 3, "recipients": 2})

    transport = transport_with(handler)
    await transport.send(GROUP, b'{"message":"AQ"}')
    await transport.send_batch(GROUP, [b'{"message":"AQ"}'])
    await transport.aclose()
    assert len(seen) == 2
    for request in seen:
        for header in (HEADER_CLIENT, HEADER_SIGNATURE, HEADER_TIMESTAMP, HEADER_NONCE):
            assert header not in request.headers, header
        assert not any("device" in name.lower() for name in request.headers)


async def test_unsigned_routes_carry_no_signature() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert HEADER_SIGNATURE not in request.headers
        return httpx.Response(200, json={"challenge": "AQ", "difficulty": 8, "expires_at": 1})

    transport = transport_with(handler)
    assert (await transport.challenge()).difficulty == 8
    await transport.aclose()


@pytest.mark.parametrize(
    ("response", "error", "check"),
    [
        (api_error(409, "stale_epoch", current_epoch=7), StaleEpochError, "current_epoch"),
        (api_error(429, "rate_limited", retry_after=12), RateLimitedError, "retry_after"),
        (api_error(401, "auth_expired"), AuthError, None),
        (api_error(401, "auth_replayed"), AuthError, None),
        (api_error(503, "unavailable"), ServerUnavailableError, None),
        (api_error(500, "internal"), ServerUnavailableError, None),
        (api_error(409, "handle_taken"), HandleTakenError, None),
        (api_error(403, "invite_required"), SignupRefusedError, None),
        (api_error(404, "unknown_account"), UnknownAccountError, None),
        (api_error(404, "no_key_package"), NoKeyPackageError, None),
        (api_error(403, "not_a_member"), NotAMemberError, None),
        (api_error(409, "group_exists"), GroupExistsError, None),
        (api_error(400, "invalid_field", field="x"), ServerRejectedError, None),
        (api_error(400, "a_code_from_the_future"), ServerRejectedError, None),
        (httpx.Response(404, text="<html>not found</html>"), ProtocolError, None),
        (httpx.Response(502, text="bad gateway"), ServerUnavailableError, None),
        (httpx.Response(429, headers={"retry-after": "3"}), RateLimitedError, None),
        (httpx.Response(200, json={"unexpected": True}), ProtocolError, None),
        (httpx.Response(200, text="not json"), ProtocolError, None),
    ],
)
async def test_answers_are_mapped_to_typed_errors(
    response: httpx.Response, error: type[Exception], check: str | None
) -> None:
    transport = transport_with(lambda request: response)
    with pytest.raises(error) as info:
        await transport.send(GROUP, b"{}")
    await transport.aclose()
    if check == "current_epoch":
        assert info.value.current_epoch == 7  # type: ignore[attr-defined]
    if check == "retry_after":
        assert info.value.retry_after == 12  # type: ignore[attr-defined]
    assert info.value.user_message  # type: ignore[attr-defined]


def test_retry_after_header_is_used_when_the_body_has_none() -> None:
    error = error_from_response(
        429, json.dumps({"error": {"code": "rate_limited"}}).encode(), {"retry-after": "9"}
    )
    assert isinstance(error, RateLimitedError) and error.retry_after == 9


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        (httpx.ConnectError("refused"), ServerUnavailableError),
        (httpx.ReadTimeout("slow"), ServerUnavailableError),
        (httpx.RemoteProtocolError("closed"), ServerUnavailableError),
        (httpx.DecodingError("gzip"), ProtocolError),
        (httpx.UnsupportedProtocol("ftp"), InvalidServerAddressError),
    ],
)
async def test_transport_exceptions_are_mapped(
    exception: Exception, error: type[Exception]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exception

    transport = transport_with(handler)
    with pytest.raises(error):
        await transport.fetch(0)
    await transport.aclose()


def test_websocket_exceptions_are_mapped() -> None:
    refused = httpx.Response(
        401, json={"error": {"code": "auth_invalid", "message": "m", "details": {}}}
    )
    cases: list[tuple[Exception, type[Exception]]] = [
        (httpx_ws.WebSocketUpgradeError(refused), AuthError),
        (httpx_ws.WebSocketUpgradeError(httpx.Response(200)), ProtocolError),
        (httpx_ws.WebSocketDisconnect(1011, "oops"), ServerUnavailableError),
        (httpx_ws.WebSocketDisconnect(1008, "rate_limited"), RateLimitedError),
        (httpx_ws.WebSocketNetworkError(), ServerUnavailableError),
        (ConnectionResetError("reset"), ServerUnavailableError),
    ]
    for exception, error in cases:
        with pytest.raises(error), transport_errors():
            raise exception


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), transport_errors():
        raise KeyError("a bug stays a bug")


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://chat.example.org", "https://chat.example.org"),
        ("chat.example.org", "https://chat.example.org"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("HTTP://Example.ORG:443", "http://example.org:443"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_server_urls_are_normalized(url: str, normal: str) -> None:
    assert normalize_server_url(url) == normal


@pytest.mark.parametrize(
    "url", ["ftp://example.org", "http://", "https://example.org/path", "http://host:99999", ""]
)
def test_unusable_server_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidServerAddressError):
        normalize_server_url(url)


def test_backoff_grows_is_capped_and_jittered() -> None:
    fixed = Backoff(base=1, factor=2, maximum=10, jitter=0, random=lambda: 0.5)
    assert [fixed.delay(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    low = Backoff(base=1, maximum=10, jitter=0.5, random=lambda: 1.0)
    assert low.delay(3) == 4
    assert Backoff().delay(10_000) <= Backoff().maximum
    with pytest.raises(ValueError):
        Backoff(base=0)


async def test_a_sealed_commit_is_unsigned_and_sent_signed_only_after_unknown_group() -> None:
    """docs/metadata.md §3: a member's commit goes sealed; the server's
    ``unknown_group`` (no usable token for the epoch) makes the client send the
    same commit once more, signed; any other answer is not retried signed."""
    seen: list[httpx.Request] = []
    answers = [api_error(404, "unknown_group"), httpx.Response(200, json=COMMITTED)]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    transport = transport_with(handler)
    answer = await transport.commit(GROUP, b'{"epoch":2}', sealed=True)
    assert (answer.epoch, answer.recipients) == (3, 2)
    assert [HEADER_CLIENT in r.headers for r in seen] == [False, True]
    assert seen[0].content == seen[1].content

    seen.clear()
    answers[:] = [api_error(409, "stale_epoch", current_epoch=4)]
    with pytest.raises(StaleEpochError):
        await transport.commit(GROUP, b'{"epoch":2}', sealed=True)
    assert [HEADER_CLIENT in r.headers for r in seen] == [False]

    seen.clear()
    answers[:] = [httpx.Response(200, json=COMMITTED)]
    await transport.commit(GROUP, b'{"epoch":2}', sealed=True)
    assert [HEADER_CLIENT in r.headers for r in seen] == [False]
    await transport.aclose()


COMMITTED = {"epoch": 3, "recipients": 2}
