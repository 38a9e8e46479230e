"""HTTP endpoints: thin adapters from requests to the services.

Every endpoint goes through :func:`endpoint`, which applies the same steps
in the same order: rate limit per address, body size limit, signature check
(signed routes), rate limit per account, JSON validation into the route's
request model, the service call, and one JSON response. Errors become the
typed JSON body of :class:`~messenger.api.errors.ApiError`; nothing else
escapes (a bug is a 500 ``internal`` with no details, logged with its
traceback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import (
    HEADER_BLOB_ACCESS,
    HEADER_GROUP_TOKEN,
    MAX_BLOB_PART_BYTES,
    OCTET_STREAM,
)
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import Field, b64decode
from messenger.api.routes import Route
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_NONCE,
    HEADER_QUEUE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    canonical_target,
)

from .authentication import Principal, QueueCaller
from .blobs import BlobCaller, parse_access, parse_blob_id, parse_group_token
from .links import OPTIONALLY_SIGNED_ROUTES as OPTIONALLY_SIGNED
from .logs import log_event
from .metrics import CONTENT_TYPE
from .openapi import openapi_document
from .state import VERSION, ServerState
from .storage import StorageError

__all__ = [
    "client_address",
    "error_response",
    "http_routes",
    "json_response",
    "request_target",
]

_log = logging.getLogger("messenger.server.http")


def json_response(model: m.Model, status: int = 200) -> Response:
    return Response(model.dumps(), status_code=status, media_type="application/json")


def error_response(error: ApiError) -> Response:
    headers = {}
    retry = error.details.get("retry_after")
    if isinstance(retry, int):
        headers["Retry-After"] = str(retry)
    return Response(
        json.dumps(error.to_json(), separators=(",", ":")),
        status_code=error.status,
        media_type="application/json",
        headers=headers,
    )


def request_target(conn: HTTPConnection) -> str:
    """The path and query string as sent, in the signed form (``canonical_target``)."""
    raw: bytes | None = conn.scope.get("raw_path")
    path = raw.split(b"?", 1)[0] if raw else conn.scope["path"].encode("utf-8", "surrogateescape")
    query: bytes = conn.scope.get("query_string", b"")
    return canonical_target(path + b"?" + query if query else path)


def client_address(conn: HTTPConnection, state: ServerState) -> str:
    """The client's address (from the reverse proxy's X-Forwarded-For if trusted)."""
    if state.config.trust_forwarded_for:
        forwarded = conn.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.rsplit(",", 1)[-1].strip()
    return conn.client.host if conn.client is not None else "unknown"


@dataclass(frozen=True, slots=True)
class Call:
    """One request, as the services see it."""

    state: ServerState
    request: Request
    principal: Principal | None
    body: Any
    #: The queue of a queue request (``Route.queue_request``; then no principal).
    queue_caller: QueueCaller | None = None

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal

    @property
    def queue_id(self) -> str:
        """The queue the request reads: its queue request's, or the one its signed
        request proves (``auth_missing`` if it proves none)."""
        if self.queue_caller is not None:
            return self.queue_caller.queue_id
        return self.me.queue_id

    def group_id(self) -> bytes:
        raw = self.request.path_params["group_id"]
        try:
            group_id = b64decode(raw)
        except ValueError:
            raise ApiError.invalid_field("group_id", "not unpadded base64url") from None
        if not 1 <= len(group_id) <= m.MAX_GROUP_ID_BYTES:
            raise ApiError.invalid_field("group_id", "bad length")
        return group_id


#: A handler answers with a model (JSON), a whole response, or raw bytes (a
#: ``raw_response`` route: ``application/octet-stream``).
Handler = Callable[[Call], Awaitable[m.Model | Response | bytes]]


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError.invalid_field("content-length", "not a number")
        if int(declared) > limit:
            raise ApiError(ErrorCode.BODY_TOO_LARGE, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(ErrorCode.BODY_TOO_LARGE, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _carries_signature(request: Request) -> bool:
    """Whether a request carries any of the signature headers.

    Any one of them makes it a signed request, which must then verify in
    full (a bad or partial signature is a 401, never an anonymous request).
    """
    headers = request.headers
    return any(
        name in headers
        for name in (HEADER_CLIENT, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
    )


def is_queue_request(headers: Mapping[str, str]) -> bool:
    """Whether a request is a queue request: it shows a queue and names no client
    (:func:`~messenger.api.signing.queue_request`)."""
    return HEADER_QUEUE in headers and HEADER_CLIENT not in headers


def queue_limit_key(queue_id: str) -> str:
    """The request budget of a queue's queue requests (a key no account ID takes)."""
    return "queue " + queue_id


def endpoint(route: Route, handler: Handler) -> StarletteRoute:
    """A Starlette route running ``handler`` behind the common steps."""

    async def run(request: Request) -> Response:
        state: ServerState = request.app.state.server
        started = time.perf_counter()
        try:
            response = await _handle(request, state)
        except ApiError as exc:
            response = error_response(exc)
        except ClientDisconnect:
            # The client went away mid-body: nobody reads the answer, nothing
            # was done, and it is not a server fault.
            _log.debug("client disconnected", extra={"fields": {"route": route.path}})
            response = error_response(ApiError(ErrorCode.MALFORMED_JSON, "the body was cut off"))
        except StorageError:
            _log.exception("database failure", extra={"fields": {"route": route.path}})
            response = error_response(
                ApiError(ErrorCode.UNAVAILABLE, "the database is unavailable; retry later")
            )
        except Exception:
            _log.exception("unexpected failure", extra={"fields": {"route": route.path}})
            response = error_response(ApiError(ErrorCode.INTERNAL, "internal server error"))
        elapsed = time.perf_counter() - started
        state.metrics.requests.labels(route.method, route.path, str(response.status_code)).inc()
        state.metrics.latency.labels(route.path).observe(elapsed)
        log_event(
            _log,
            "request",
            logging.DEBUG if response.status_code < 400 else logging.INFO,
            method=route.method,
            route=route.path,
            status=response.status_code,
            duration_ms=round(elapsed * 1000, 2),
        )
        return response

    async def _handle(request: Request, state: ServerState) -> Response:
        try:
            state.ip_limiter.hit(client_address(request, state))
        except ApiError:
            state.metrics.rate_limited.labels(limit="address").inc()
            raise
        # A raw part (a blob) may be larger than any JSON body.
        limit = MAX_BLOB_PART_BYTES if route.raw_body else state.config.max_body_bytes
        body = await _read_body(request, limit)
        principal = None
        queue_caller = None
        if route.queue_request and is_queue_request(request.headers):
            queue_caller = await state.auth.authenticate_queue(
                request.method, request_target(request), request.headers, body
            )
            try:
                state.account_limiter.hit(queue_limit_key(queue_caller.queue_id))
            except ApiError:
                state.metrics.rate_limited.labels(limit="queue").inc()
                raise
        elif route.signed or (
            (route.method, route.path) in OPTIONALLY_SIGNED and _carries_signature(request)
        ):
            principal = await state.auth.authenticate(
                request.method,
                request_target(request),
                request.headers,
                body,
                check_device_token=route.path != r.CLIENT_TAKEOVER,
            )
            try:
                state.account_limiter.hit(principal.account_id)
            except ApiError:
                state.metrics.rate_limited.labels(limit="account").inc()
                raise
            if not route.proves_queue:
                # Checked (a bad proof is refused), but shown only to the
                # routes that need the queue (docs/metadata.md §1).
                principal = principal.without_queue()
        parsed: Any = None
        if route.raw_body:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != OCTET_STREAM:
                raise ApiError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, f"send {OCTET_STREAM}")
            parsed = body
        elif route.request is not None and not (route.optional_body and not body):
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise ApiError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "send application/json")
            parsed = route.request.loads(body)
        result = await handler(Call(state, request, principal, parsed, queue_caller))
        if isinstance(result, Response):
            return result
        if isinstance(result, bytes):
            assert route.raw_response
            return Response(result, media_type=OCTET_STREAM)
        return json_response(result)

    return StarletteRoute(route.path, run, methods=[route.method], name=route.summary)


# -- handlers -------------------------------------------------------------------------


async def health(call: Call) -> Response:
    ok = await call.state.db.ping()
    return json_response(
        m.Health("ok" if ok else "degraded", "ok" if ok else "unreachable"), 200 if ok else 503
    )


async def server_info(call: Call) -> m.Model:
    c = call.state.config
    return m.ServerInfo(
        server_key=call.state.keys.credential_public_key,
        signup_policy=c.signup_policy,
        pow_difficulty=c.pow_difficulty,
        timestamp_window_seconds=c.timestamp_window_seconds,
        max_body_bytes=c.max_body_bytes,
        retention_seconds=c.retention_seconds,
        max_blob_bytes=c.max_blob_bytes,
    )


async def register_challenge(call: Call) -> m.Model:
    return call.state.registration.challenge()


async def register(call: Call) -> m.Model:
    state = call.state
    try:
        state.registration_limiter.hit(client_address(call.request, state))
    except ApiError:
        state.metrics.rate_limited.labels(limit="registration").inc()
        raise
    response = await state.registration.register(call.body)
    state.metrics.registrations.inc()
    log_event(_log, "account registered")
    return response


async def add_client(call: Call) -> m.Model:
    return await call.state.registration.add_client(call.me, call.body)


async def certify_client(call: Call) -> m.Model:
    return await call.state.registration.certify(call.me, call.body)


async def remove_client(call: Call) -> m.Model:
    client_id = call.request.path_params["client_id"]
    body = call.body
    if body is None:
        await call.state.devices.remove(call.me, client_id)
    else:
        await call.state.devices.remove(call.me, client_id, body.queue_kill, body.contact_kill)
    return m.Empty()


async def give_queue_key(call: Call) -> m.Model:
    client_id = call.me.client_id
    key_packages = call.state.key_packages
    await call.state.queue_links.give_key(
        call.state.db,
        call.me,
        call.body,
        also=lambda tx: key_packages.drop_unreachable(tx, client_id),
    )
    call.state.auth.forget(call.me.client_id)  # its cached link is gone
    return m.Empty()


async def give_contact_queue(call: Call) -> m.Model:
    return await call.state.contact_queues.give(call.state.db, call.me, call.body)


async def take_over(call: Call) -> m.Model:
    await call.state.devices.take_over(call.me, call.body.device_token)
    return m.Empty()


def _lookup_limit(call: Call) -> None:
    """Handle lookups and handle changes: per account and per address (handles.py)."""
    state = call.state
    try:
        state.handles.limit(call.me.account_id, client_address(call.request, state))
    except ApiError:
        state.metrics.rate_limited.labels(limit="lookup").inc()
        raise


async def set_handle(call: Call) -> m.Model:
    _lookup_limit(call)  # "handle_taken" tells whether a handle exists
    await call.state.handles.set(call.me, call.body.handle, call.body.contact_box)
    return m.Empty()


async def remove_handle(call: Call) -> m.Model:
    await call.state.handles.remove(call.me)
    return m.Empty()


async def lookup_handle(call: Call) -> m.Model:
    _lookup_limit(call)
    return await call.state.handles.lookup(call.body.handle)


async def upload_key_packages(call: Call) -> m.Model:
    return await call.state.key_packages.upload(call.me, call.body)


async def count_key_packages(call: Call) -> m.Model:
    return await call.state.key_packages.count(call.me)


async def queue_address(call: Call) -> m.Model:
    return m.QueueAddressResponse(call.state.addresses.issue(call.queue_id))


async def claim_key_packages(call: Call) -> m.Model:
    try:
        return await call.state.key_packages.claim(call.me, call.body)
    except ApiError as exc:
        if exc.code is ErrorCode.RATE_LIMITED:
            call.state.metrics.rate_limited.labels(limit="key_package_claims").inc()
        raise


def _query_int(call: Call, name: str, default: int) -> int:
    field = next(f for f in r.FETCH_QUERY if f.name == name)
    raw = call.request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise ApiError.invalid_field(name, "expected a non-negative integer")
    value: int = field.parse(int(raw), name)
    return value


async def _client_gone(request: Request) -> None:
    """Until the client of ``request`` closes its connection (its body is read
    first: a GET has none worth keeping)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _long_poll(
    call: Call, after: int, limit: int, wait: int
) -> tuple[list[m.QueueMessage], bool] | None:
    """:meth:`~.delivery.DeliveryService.fetch_wait`, ended early (None) when the
    client goes away: nobody would read the answer, and the wait would hold a
    task, and the process's shutdown, until it ran out."""
    polling = asyncio.ensure_future(
        call.state.delivery.fetch_wait(call.queue_id, after, limit, wait)
    )
    gone = asyncio.ensure_future(_client_gone(call.request))
    try:
        await asyncio.wait((polling, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (polling, gone):
            if not task.done():
                task.cancel()
        await asyncio.gather(polling, gone, return_exceptions=True)
    if polling.cancelled():
        return None
    return polling.result()


async def fetch(call: Call) -> m.Model:
    after = _query_int(call, "after", 0)
    limit = _query_int(call, "limit", 100)
    wait = _query_int(call, "wait", 0)
    if wait:
        polled = await _long_poll(call, after, limit, wait)
        if polled is None:
            return m.FetchResponse((), False)  # the client is gone: nobody reads it
        messages, more = polled
    else:
        messages, more = await call.state.delivery.fetch(call.queue_id, after, limit)
    # A long poll outlives its authentication: the client may have been taken
    # over or removed meanwhile (devices.py), and then these messages are not
    # this copy's. (A queue with a key of its own is never taken over, and
    # its removal is checked the same way.)
    if wait:
        if call.queue_caller is not None:
            await call.state.devices.check_queue_current(call.queue_caller.queue_id)
        else:
            await call.state.devices.check_current(call.me.client_id, call.request.headers)
    return m.FetchResponse(tuple(messages), more)


async def ack(call: Call) -> m.Model:
    deleted = await call.state.delivery.ack(call.queue_id, call.body.up_to)
    return m.AckResponse(deleted)


async def create_group(call: Call) -> m.Model:
    return await call.state.delivery.create_group(call.queue_id, call.body)


async def commit(call: Call) -> m.Model:
    # Sealed when unsigned (docs/metadata.md §3): the send token proves
    # membership; signed for an external commit, or a member that signs.
    return await call.state.delivery.commit(call.principal, call.group_id(), call.body)


async def send(call: Call) -> m.Model:
    # Sealed (docs/metadata.md §3): no signature, so no account; the send
    # token proves membership, and the address's budget counts the request.
    return await call.state.delivery.send(call.group_id(), call.body)


async def send_batch(call: Call) -> m.Model:
    group_id = call.group_id()
    items: tuple[m.SendRequest, ...] = call.body.messages
    # The address's request budget counts each message, as if sent one by
    # one (the request itself took one token already). A sealed send names
    # no account, so the group's budget towards each recipient (delivery.py)
    # is what bounds a member.
    if len(items) > 1:
        state = call.state
        try:
            state.ip_limiter.hit(client_address(call.request, state), len(items) - 1)
        except ApiError:
            state.metrics.rate_limited.labels(limit="address").inc()
            raise
    results = await call.state.delivery.send_batch(group_id, items)
    return m.SendBatchResponse(tuple(results))


async def put_send_token(call: Call) -> m.Model:
    await call.state.delivery.register_send_token(call.me, call.group_id(), call.body)
    return m.Empty()


async def get_group_info(call: Call) -> m.Model:
    return await call.state.delivery.group_info(call.me, call.group_id())


async def put_group_info(call: Call) -> m.Model:
    await call.state.delivery.put_group_info(call.me, call.group_id(), call.body)
    return m.Empty()


async def rejoin_info(call: Call) -> m.Model:
    return await call.state.delivery.rejoin_info(call.me, call.group_id(), call.body)


def _path_bytes(call: Call, name: str, length: int) -> bytes:
    """The path parameter ``name``: ``length`` bytes in unpadded base64url."""
    try:
        value = b64decode(call.request.path_params[name])
    except ValueError:
        raise ApiError.invalid_field(name, "not unpadded base64url") from None
    if len(value) != length:
        raise ApiError.invalid_field(name, "bad length")
    return value


def _rejoin_handle(call: Call) -> bytes:
    return _path_bytes(call, "handle", m.REJOIN_HANDLE_BYTES)


async def put_rejoin_box(call: Call) -> m.Model:
    await call.state.rejoin_boxes.put(call.me.account_id, _rejoin_handle(call), call.body.box)
    return m.Empty()


async def get_rejoin_box(call: Call) -> m.Model:
    return await call.state.rejoin_boxes.get(_rejoin_handle(call))


async def delete_rejoin_box(call: Call) -> m.Model:
    await call.state.rejoin_boxes.delete(_rejoin_handle(call))
    return m.Empty()


def _link_limit(call: Call) -> None:
    """Unsigned link requests: the link budget of the address (never logged)."""
    if call.principal is not None:
        return
    state = call.state
    try:
        state.link_limiter.hit(client_address(call.request, state))
    except ApiError:
        state.metrics.rate_limited.labels(limit="link").inc()
        raise


def _link_id(call: Call) -> bytes:
    return _path_bytes(call, "link_id", m.LINK_ID_BYTES)


def _link_query_int(call: Call, name: str) -> int:
    field = next(f for f in r.LINK_FETCH_QUERY if f.name == name)
    raw = call.request.query_params.get(name)
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise ApiError.invalid_field(name, "expected a non-negative integer")
    value: int = field.parse(int(raw), name)
    return value


async def create_link(call: Call) -> m.Model:
    return await call.state.links.create(call.me, call.body.link_id)


async def post_link(call: Call) -> m.Model:
    _link_limit(call)
    return await call.state.links.post(call.principal, _link_id(call), call.body.sealed)


async def fetch_link(call: Call) -> m.Model:
    _link_limit(call)
    link_id = _link_id(call)
    after = _link_query_int(call, "after")
    wait = _link_query_int(call, "wait")
    return await call.state.links.fetch(call.principal, link_id, after, wait)


async def close_link(call: Call) -> m.Model:
    _link_limit(call)
    await call.state.links.close(call.principal, _link_id(call))
    return m.Empty()


def _route_query_int(call: Call, fields: tuple[Field, ...], name: str) -> int | None:
    """Query parameter ``name`` as its field of ``fields`` allows; ``None`` if absent."""
    field = next(f for f in fields if f.name == name)
    raw = call.request.query_params.get(name)
    if raw is None:
        if not field.optional:
            raise ApiError.invalid_field(name, "missing")
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 20:
        raise ApiError.invalid_field(name, "expected a non-negative integer")
    value: int = field.parse(int(raw), name)
    return value


def _blob_id(call: Call) -> bytes:
    return parse_blob_id(call.request.path_params["blob_id"])


def _blob_access(call: Call) -> bytes | None:
    return parse_access(call.request.headers.get(HEADER_BLOB_ACCESS))


def _group_token(call: Call) -> bytes | None:
    return parse_group_token(call.request.headers.get(HEADER_GROUP_TOKEN))


def _blob_caller(call: Call) -> BlobCaller:
    """A blob request's caller: the queue it shows (``auth_missing`` if none,
    before anything is read) and, if signed, its account (docs/attachments.md §3)."""
    account_id = None if call.principal is None else call.principal.account_id
    return BlobCaller(call.queue_id, account_id)


async def create_blob(call: Call) -> m.Model:
    return await call.state.blobs.create(_blob_caller(call), call.body)


async def upload_blob(call: Call) -> m.Model:
    offset = _route_query_int(call, r.BLOB_UPLOAD_QUERY, "offset")
    assert offset is not None  # required
    return await call.state.blobs.upload(
        _blob_caller(call), _blob_id(call), offset, call.body, _group_token(call)
    )


async def download_blob(call: Call) -> bytes:
    offset = _route_query_int(call, r.BLOB_DOWNLOAD_QUERY, "offset") or 0
    length = _route_query_int(call, r.BLOB_DOWNLOAD_QUERY, "length")
    return await call.state.blobs.download(
        call.queue_id, _blob_id(call), _blob_access(call), offset, length, _group_token(call)
    )


async def blob_status(call: Call) -> m.Model:
    return await call.state.blobs.status(
        _blob_caller(call), _blob_id(call), _blob_access(call), _group_token(call)
    )


async def blob_fetched(call: Call) -> m.Model:
    await call.state.blobs.fetched(
        call.queue_id, _blob_id(call), _blob_access(call), _group_token(call)
    )
    return m.Empty()


async def delete_blob(call: Call) -> m.Model:
    await call.state.blobs.delete(_blob_caller(call), _blob_id(call))
    return m.Empty()


async def metrics(call: Call) -> Response:
    return Response(call.state.metrics.render(), media_type=CONTENT_TYPE)


async def openapi(call: Call) -> Response:
    return Response(json.dumps(openapi_document(VERSION)), media_type="application/json")


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("GET", r.HEALTH): health,
    ("GET", r.SERVER_INFO): server_info,
    ("POST", r.REGISTER_CHALLENGE): register_challenge,
    ("POST", r.REGISTER): register,
    ("POST", r.CLIENTS): add_client,
    ("POST", r.CLIENT_TAKEOVER): take_over,
    ("POST", r.CLIENT_CERTIFICATE): certify_client,
    ("DELETE", r.CLIENT): remove_client,
    ("POST", r.LINKS): create_link,
    ("POST", r.LINK_MESSAGES): post_link,
    ("GET", r.LINK_MESSAGES): fetch_link,
    ("DELETE", r.LINK): close_link,
    ("PUT", r.HANDLE): set_handle,
    ("DELETE", r.HANDLE): remove_handle,
    ("POST", r.HANDLE_LOOKUP): lookup_handle,
    ("POST", r.KEY_PACKAGES): upload_key_packages,
    ("GET", r.KEY_PACKAGE_COUNT): count_key_packages,
    ("POST", r.CLAIM_KEY_PACKAGES): claim_key_packages,
    ("GET", r.QUEUE_ADDRESS): queue_address,
    ("PUT", r.QUEUE_KEY): give_queue_key,
    ("PUT", r.CONTACT_QUEUE): give_contact_queue,
    ("GET", r.QUEUE_MESSAGES): fetch,
    ("POST", r.ACK): ack,
    ("POST", r.GROUPS): create_group,
    ("POST", r.GROUP_COMMITS): commit,
    ("POST", r.GROUP_MESSAGES): send,
    ("POST", r.GROUP_MESSAGES_BATCH): send_batch,
    ("GET", r.GROUP_INFO): get_group_info,
    ("PUT", r.GROUP_INFO): put_group_info,
    ("PUT", r.GROUP_SEND_TOKEN): put_send_token,
    ("POST", r.GROUP_REJOIN_INFO): rejoin_info,
    ("PUT", r.REJOIN_BOX): put_rejoin_box,
    ("GET", r.REJOIN_BOX): get_rejoin_box,
    ("DELETE", r.REJOIN_BOX): delete_rejoin_box,
    ("POST", r.BLOBS): create_blob,
    ("PUT", r.BLOB): upload_blob,
    ("GET", r.BLOB): download_blob,
    ("DELETE", r.BLOB): delete_blob,
    ("GET", r.BLOB_STATUS): blob_status,
    ("POST", r.BLOB_FETCHED): blob_fetched,
}

_OPERATIONAL = (
    Route("GET", r.METRICS, "Prometheus metrics", None, signed=False),
    Route("GET", r.OPENAPI, "OpenAPI description", None, signed=False),
)


def http_routes() -> list[StarletteRoute]:
    """Every HTTP route of the API, plus metrics and the OpenAPI description."""
    routes = [endpoint(route, _HANDLERS[(route.method, route.path)]) for route in r.ROUTES]
    routes.append(endpoint(_OPERATIONAL[0], metrics))
    routes.append(endpoint(_OPERATIONAL[1], openapi))
    return routes
