"""No input on any route gives a 500 (security-hardening item 10).

Arbitrary paths, query strings, headers and bodies go to every route of
``messenger.api.routes.ROUTES``, unsigned and validly signed, through
httpx's ASGI transport against :func:`create_app`. Every answer must be
below 500, and every error a JSON body ``{"error": {"code", "message",
"details"}}`` with a known code and its status. A validly signed request is
never refused as unauthenticated: the client and the server agree on the
canonical form of any target (``messenger.api.signing.canonical_target``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import assume, event, given, note
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from messenger.api import routes as r
from messenger.api.errors import HTTP_STATUS, ErrorCode
from messenger.api.fields import b64encode
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_BYTES,
    canonical_request,
    canonical_target,
)
from messenger.server import create_app

from .client import ApiClient
from .conftest import make_config

T = TypeVar("T")

GID = b"fuzz-group-0001"
_AUTH_HEADERS = {
    h.lower() for h in (HEADER_CLIENT, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
}
_CODES = {code.value: code for code in ErrorCode}


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient
    client: ApiClient

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One app (SQLite) and one registered client for all examples."""
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = make_config(root / "data", f"sqlite:///{root / 'messenger.db'}")
    app = create_app(config, run_sweeper=False)
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()

    async def start() -> Harness:
        await stack.enter_async_context(app.router.lifespan_context(app))
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app), base_url="http://testserver", timeout=30
            )
        )
        client = ApiClient(http)
        await client.register()
        await client.create_group(GID)
        return Harness(loop, http, client)

    try:
        yield loop.run_until_complete(start())
    finally:
        loop.run_until_complete(stack.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- strategies -------------------------------------------------------------------------

_TRICKY = [
    "%",
    "%%",
    "%0",
    "%zz",
    "%00",
    "%0A",
    "%0d%0a",
    "%2F",
    "%2f",
    "%3F",
    "%23",
    "%C3%A9",
    "%ff",
    "%FF%FE",
    "/",
    "//",
    ".",
    "..",
    "?",
    "??",
    "&",
    "=",
    "+",
    " ",
    ";",
    ",",
    ":",
    "@",
    "!",
    "$",
    "'",
    "(",
    ")",
    "*",
    "[",
    "]",
    "{",
    "}",
    "|",
    "\\",
    "^",
    "`",
    '"',
    "<",
    ">",
    "~",
    "é",
    "ß",
    "中",
    "😀",
    "\u00a0",
    "\u2028",
    "\u200b",
    "\ufeff",
    "\ufffd",
    "A" * 300,
    "AAAAAAAAAAAAAAAAAAAAAA",
    "after",
    "limit",
    "wait",
    "-1",
    "0",
    "1e3",
    "٣",
    "99999999999999999999999",
    "0x10",
]

#: Text a URL can carry (httpx refuses control characters; '#' starts a fragment).
_url_text = st.text(
    alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="#"), max_size=40
)
_fragment = st.one_of(_url_text, st.sampled_from(_TRICKY))
_piece = st.lists(_fragment, max_size=5).map("".join)

_query_value = st.one_of(
    st.sampled_from(
        ["0", "1", "3", "100", "200", "201", "-1", "", "٣", "1e3", " 1", "+1", "0" * 30]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    _piece,
)
_structured_query = st.lists(
    st.tuples(st.sampled_from(["after", "limit", "wait", "x", ""]), _query_value), max_size=4
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
_query = st.one_of(st.just(""), st.just(""), _structured_query, _piece)


@st.composite
def _paths(draw: st.DrawFn, route: r.Route) -> str:
    kind = draw(st.sampled_from(["template"] * 6 + ["suffix", "any"]))
    if kind == "any":
        # Not "//...": httpx would read the request target as a host.
        return "/" + draw(_piece).lstrip("/")
    group = draw(st.one_of(st.just(b64encode(GID)), _piece, st.binary(max_size=300).map(b64encode)))
    path = route.path.replace("{group_id}", group)
    if kind == "suffix":
        path += draw(st.sampled_from(["/", "//", "/x", "?", "%", "/..", ";x"])) + draw(_piece)
    return path


_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
        st.binary(max_size=64).map(b64encode),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def _bodies(draw: st.DrawFn, route: r.Route) -> bytes:
    kind = draw(st.sampled_from(["none", "bytes", "json", "model"]))
    if kind == "none":
        return b""
    if kind == "bytes":
        return draw(st.binary(max_size=600))
    if kind == "json":
        return json.dumps(draw(_json), allow_nan=True).encode()
    names = [f.name for f in route.request.FIELDS] if route.request is not None else ["x"]
    obj = draw(st.dictionaries(st.sampled_from([*names, "extra"]), _json, max_size=len(names) + 1))
    return json.dumps(obj, allow_nan=True).encode()


_header_name = st.one_of(
    st.sampled_from(
        [
            "content-type",
            "content-length",
            "content-encoding",
            "transfer-encoding",
            "accept",
            "connection",
            "upgrade",
            "expect",
            "x-forwarded-for",
            "host",
            "cookie",
            *sorted(_AUTH_HEADERS),
        ]
    ),
    st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", fullmatch=True),
)
_header_value = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "APPLICATION/JSON",
            "0",
            "-1",
            "99999999999999999999",
            "٣",
            "websocket",
            "Upgrade",
            "100-continue",
            "1.2.3.4, 5.6.7.8",
            "",
            "AAAAAAAAAAAAAAAAAAAAAA",
        ]
    ),
    st.binary(max_size=60).map(lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F)),
)
_headers = st.lists(st.tuples(_header_name, _header_value), max_size=4)


def _waits(query: str) -> bool:
    """Whether the query asks the server to long-poll (slow; never fuzzed)."""
    raw = QueryParams(query).get("wait")
    return raw is not None and raw.isascii() and raw.isdigit() and int(raw) > 0


def _check_answer(response: httpx.Response, method: str) -> None:
    assert response.status_code < 500, response.content[:300]
    if response.status_code < 400 or method == "HEAD":
        return
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message", "details"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert error["code"] in _CODES, error
    assert HTTP_STATUS[_CODES[error["code"]]] == response.status_code


_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]


@given(data=st.data())
def test_no_input_gives_a_server_error(harness: Harness, data: st.DataObject) -> None:
    route = data.draw(st.sampled_from(r.ROUTES), label="route")
    method = data.draw(st.sampled_from([route.method] * 12 + _METHODS), label="method")
    path = data.draw(_paths(route), label="path")
    query = data.draw(_query, label="query")
    target = f"{path}?{query}" if query else path
    assume(not _waits(target.partition("?")[2]))
    body = data.draw(_bodies(route), label="body")
    headers = data.draw(_headers, label="headers")
    signed = data.draw(st.booleans(), label="signed")

    extra = [
        (name.encode(), value.encode() if isinstance(value, str) else value)
        for name, value in headers
        if not (signed and name.lower() in _AUTH_HEADERS)
    ]
    if body and data.draw(st.integers(0, 4), label="json type") > 0:
        extra.insert(0, (b"content-type", b"application/json"))
    request = harness.http.build_request(method, target, content=body, headers=extra)
    sent = request.url.raw_path
    assume(not _waits(request.url.query.decode("ascii")))
    agree = canonical_target(target) == canonical_target(sent)
    if signed:
        me = harness.client.me
        timestamp = int(time.time() * 1000)
        nonce = b64encode(os.urandom(NONCE_BYTES))
        # Signed as a client signs: the target it asked for, before httpx encodes it.
        message = canonical_request(method, target, me.client_id, timestamp, nonce, body)
        request.headers[HEADER_CLIENT] = me.client_id
        request.headers[HEADER_TIMESTAMP] = str(timestamp)
        request.headers[HEADER_NONCE] = nonce
        request.headers[HEADER_SIGNATURE] = b64encode(me.key.sign(message))
    note(f"sent {method} {sent!r}")
    response = harness.run(harness.http.send(request))
    event(f"status {response.status_code}")
    _check_answer(response, method)
    if signed and agree:
        event("signed, target agrees")
        assert response.status_code != 401, response.text


#: Path segments as a client builds them: no "/" inside, no dot segment (httpx
#: resolves "." and ".." before sending), no fragment.
_segment = st.one_of(
    st.text(
        alphabet=st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="#/"),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([t for t in _TRICKY if "/" not in t]),
).filter(lambda part: part not in (".", ".."))
_client_targets = st.lists(_segment, min_size=1, max_size=6).map(lambda p: "/v1/" + "/".join(p))


@given(target=_client_targets)
def test_a_client_target_and_its_wire_form_sign_alike(harness: Harness, target: str) -> None:
    # What httpx sends for a target (as messenger.client.net does: a client with
    # a base URL) canonicalises to what the client signed.
    sent = harness.http.build_request("GET", target).url.raw_path
    assert canonical_target(target) == canonical_target(sent)
    assert canonical_target(canonical_target(target)) == canonical_target(target)
    assert canonical_target(target).isascii()


def test_a_non_ascii_path_on_a_signed_route_is_not_a_server_error(harness: Harness) -> None:
    # The report: a non-ASCII path on a signed route gave 500 and a traceback.
    targets = (
        "/v1/groups/%C3%A9/messages",  # what a client sends for .../é/...
        "/v1/groups/%FF/commits",
        "/v1/groups/é/messages",
        "/v1/key-packages/claim?x=é",
    )
    for target in targets:
        response = harness.run(harness.client.raw("POST", target, {"x": 1}))
        _check_answer(response, "POST")
        assert response.status_code != 401, (target, response.text)


def test_the_canonical_target() -> None:
    assert canonical_target("/v1/queue/messages?after=3") == "/v1/queue/messages?after=3"
    assert canonical_target("/v1/groups/é/x") == "/v1/groups/%C3%A9/x"
    assert canonical_target(b"/v1/groups/\xc3\xa9/x") == "/v1/groups/%C3%A9/x"
    assert canonical_target("/v1/groups/%C3%A9/x") == "/v1/groups/%C3%A9/x"  # kept as sent
    assert canonical_target("/a b?c=d e") == "/a%20b?c=d%20e"
    assert canonical_target("/a\nb") == "/a%0Ab"  # no line can be added to the signed text
    assert canonical_target(b"/\xff") == "/%FF"
    assert canonical_target("/x?") == "/x"  # an empty query is not reported by servers
    assert canonical_target("/x??") == "/x??"
    assert canonical_target('/{}|^`"<>\\') == "/%7B%7D%7C%5E%60%22%3C%3E%5C"
    message = canonical_request("get", "/é", "c\nd", 1, "n", b"")
    assert message.isascii() and message.count(b"\n") == 6
