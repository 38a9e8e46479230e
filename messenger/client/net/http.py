"""The HTTP transport: one ``httpx.AsyncClient`` per server, signed requests.

:class:`Transport` speaks the API of :mod:`messenger.api` route by route.
Bodies are the API's models (:mod:`messenger.api.models`); a finished
request body may also be sent as bytes (the outbox stores them so). Every
failure leaves through :mod:`.error_mapping` as a typed
:class:`~messenger.client.errors.NetworkError`; a 200 whose body does not
validate is a :class:`~messenger.client.errors.ProtocolError`.

Transport security (:mod:`.transport_security`): a plain ``http://`` URL to
anything but this computer is refused before connecting
(:class:`~messenger.client.errors.InsecureServerAddressError`) unless
``allow_insecure_http``; TLS trusts httpx's default authorities plus
``MESSENGER_CA_FILE``. A transport given by the caller (``transport``,
for tests: an in-memory ``httpx.MockTransport`` or ``ASGITransport``)
decides itself where bytes go and how, so neither applies to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Final, TypeVar

import httpx

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.blobs import HEADER_BLOB_ACCESS, HEADER_GROUP_TOKEN, OCTET_STREAM
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64encode

from ..errors import AuthError, DeviceReplacedError, ProtocolError, ServerRejectedError
from .claim_tokens import ClaimTokens
from .error_mapping import error_from_response, transport_errors
from .push import PushSocket, connect_push
from .server_url import normalize_server_url
from .signing import QueueSigner, Signer
from .timeouts import DEFAULT_TIMEOUT
from .transport_security import check_server_security, ssl_context

__all__ = ["DEFAULT_TIMEOUT", "Transport", "normalize_server_url"]

M = TypeVar("M", bound=m.Model)

_JSON: Final = {"content-type": "application/json"}
#: An answer larger than this is parsed (JSON, base64) in a thread, not on the event
#: loop: a queue page holding a Welcome to a 1,000-member group (~630 KB) takes ~15 ms.
#: Smaller ones, such as a catch-up page of 200 messages (~80 KB), stay on the loop.
PARSE_OFF_LOOP_BYTES: Final = 256 * 1024


class Transport:
    """The API of one server; requests are signed once a :class:`Signer` is set."""

    def __init__(
        self,
        server_url: str,
        *,
        signer: Signer | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        self.server_url = normalize_server_url(server_url)
        if transport is None:
            check_server_security(self.server_url, allow_insecure_http=allow_insecure_http)
        self.signer = signer
        self._timeout = timeout
        self._http = self._client(transport)
        #: Sealed sends (docs/metadata.md §3) go over connections of their own,
        #: which never carry a signed request, so that a connection does not
        #: tie them to the client.
        self._sealed_http = self._client(transport)
        #: Queue requests (docs/metadata.md §1) go over connections of their own
        #: too, so that a connection does not tie the reading of the queue to
        #: the client's signed requests.
        self._queue_http = self._client(transport)
        #: The contact queue (docs/metadata.md §1) is read over connections of its
        #: own: a connection shared with the client's queue would join the two.
        self._contact_http = self._client(transport)
        #: The kinds of queue request (:func:`_queue_kind`) the server answered
        #: ``auth_missing`` (a server from before them): those are then signed.
        self._queue_requests_refused: set[str] = set()
        #: The evidence of claims until an intent takes it (docs/metadata.md §3).
        self.claim_tokens = ClaimTokens()

    def _client(self, transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server_url,
            timeout=httpx.Timeout(self._timeout),
            transport=transport,
            verify=ssl_context() if transport is None else True,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._sealed_http.aclose()
        await self._queue_http.aclose()
        await self._contact_http.aclose()

    # -- the one request path -------------------------------------------------------

    async def call(
        self,
        method: str,
        target: str,
        body: m.Model | bytes | None,
        out: type[M],
        *,
        signed: bool = True,
        sealed: bool = False,
        queue: bool = False,
        timeout: float | None = None,
        as_queue: QueueSigner | None = None,
        prove_queue: bool = True,
    ) -> M:
        """Send one request and parse the answer as ``out``.

        A ``sealed`` request is unsigned and goes over the sealed connections.
        A ``queue`` request (a route that takes one, ``Route.queue_request``)
        is signed by the queue key alone and goes over the queue connections,
        once the server has the key (:attr:`reads_by_queue`); before that, and
        with a server from before queue requests, it is a signed request.

        A request ``as_queue`` is a queue request signed by that queue's key (the
        contact queue, :mod:`messenger.client.contact_queue`), over connections
        of its own. Without ``prove_queue`` a signed request carries no queue
        proof, even on a route that takes one.

        A request refused as ``device_replaced`` is sent once more if this
        copy's device token changed while it was under way (this copy took
        the client over meanwhile): the server refused it before doing
        anything.
        """
        data = body.dumps() if isinstance(body, m.Model) else (body or b"")
        content = await self._exchange(
            method,
            target,
            data,
            _JSON if body is not None else {},
            signed and not sealed,
            timeout,
            sealed=sealed,
            queue=queue,
            as_queue=as_queue,
            prove_queue=prove_queue,
        )
        try:
            if len(content) > PARSE_OFF_LOOP_BYTES:  # e.g. a page with a Welcome to a big group
                return await asyncio.to_thread(out.loads, content)
            return out.loads(content)
        except ApiError as exc:
            raise ProtocolError(f"{method} {target}: unexpected answer ({exc})") from exc

    async def call_raw(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        queue: bool = False,
    ) -> bytes:
        """Send one signed request with a raw body (``application/octet-stream``,
        covered by the signature like any body); the raw answer. ``queue`` as
        for :meth:`call`."""
        base = dict(headers or {})
        if body is not None:
            base["content-type"] = OCTET_STREAM
        return await self._exchange(method, target, body or b"", base, True, timeout, queue=queue)

    async def _exchange(
        self,
        method: str,
        target: str,
        data: bytes,
        base_headers: dict[str, str],
        signed: bool,
        timeout: float | None,
        *,
        sealed: bool = False,
        queue: bool = False,
        as_queue: QueueSigner | None = None,
        prove_queue: bool = True,
    ) -> bytes:
        """One request (signed over ``data``), resent once after a takeover, or as a
        signed request after a queue request that the server does not take; the
        200's body."""
        extensions = {}
        if timeout is not None:
            extensions["timeout"] = httpx.Timeout(timeout).as_dict()
        if as_queue is not None:
            headers = {**base_headers, **as_queue.headers(method, target, data)}
            with transport_errors():
                response = await self._contact_http.request(
                    method, target, content=data, headers=headers, extensions=extensions
                )
                content = await response.aread()
            if response.status_code == 200:
                return content
            raise error_from_response(response.status_code, content, response.headers)
        kind = _queue_kind(target)
        for attempt in (1, 2):
            by_queue = signed and queue and self._by_queue(kind)
            http = self._sealed_http if sealed else self._queue_http if by_queue else self._http
            headers = dict(base_headers)
            token = None
            if signed:
                if self.signer is None:
                    raise RuntimeError("a signed request needs a signer (no account yet)")
                if by_queue:
                    headers.update(self.signer.queue_headers(method, target, data))
                else:
                    token = self.signer.device_token
                    headers.update(
                        self.signer.headers(method, target, data, prove_queue=prove_queue)
                    )
            with transport_errors():
                response = await http.request(
                    method, target, content=data, headers=headers, extensions=extensions
                )
                content = await response.aread()
            if response.status_code == 200:
                return content
            error = error_from_response(response.status_code, content, response.headers)
            if by_queue and isinstance(error, AuthError) and self.signer is not None:
                if error.code == ErrorCode.AUTH_MISSING:
                    # A server from before queue requests (of this kind) took it
                    # for an unsigned one.
                    self._queue_requests_refused.add(kind)
                elif error.code == ErrorCode.AUTH_INVALID:
                    # The server does not know the queue's key: restored from a
                    # backup made before it was given. Read with signed requests
                    # (the restored row still names the queue) until the key is
                    # given again (messenger/client/queue_keys.py).
                    self.signer.queue_key_given = False
                if attempt == 1 and not self._by_queue(kind):
                    continue
            replaced_before_token = (
                not by_queue
                and isinstance(error, DeviceReplacedError)
                and self.signer is not None
                and self.signer.device_token != token
            )
            if attempt == 2 or not replaced_before_token:
                raise error
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def reads_by_queue(self) -> bool:
        """Whether the queue is read with queue requests: the server has the queue
        key (:attr:`Signer.signs_queue_requests`) and has not refused one."""
        return self._by_queue(_QUEUE_READS)

    def _by_queue(self, kind: str) -> bool:
        """Whether requests of ``kind`` (:func:`_queue_kind`) go as queue requests."""
        return (
            self.signer is not None
            and self.signer.signs_queue_requests
            and kind not in self._queue_requests_refused
        )

    @contextlib.asynccontextmanager
    async def push(self, after: int) -> AsyncIterator[PushSocket]:
        """The push WebSocket from sequence number ``after``."""
        if self.signer is None:
            raise RuntimeError("the push socket needs a signer (no account yet)")
        by_queue = self.reads_by_queue
        http = self._queue_http if by_queue else self._http
        async with connect_push(http, self.signer, after, by_queue=by_queue) as socket:
            yield socket

    # -- the routes ---------------------------------------------------------------------

    async def server_info(self) -> m.ServerInfo:
        return await self.call("GET", r.SERVER_INFO, None, m.ServerInfo, signed=False)

    async def challenge(self) -> m.Challenge:
        return await self.call("POST", r.REGISTER_CHALLENGE, None, m.Challenge, signed=False)

    async def register(self, request: m.RegisterRequest) -> m.RegisterResponse:
        return await self.call("POST", r.REGISTER, request, m.RegisterResponse, signed=False)

    async def take_over(self, device_token: bytes) -> None:
        """Make this copy the client's only one on the server (a restored backup).

        From the answer on, the server serves only requests carrying
        ``device_token``; this sets it on the signer. Any other copy gets
        :class:`~messenger.client.errors.DeviceReplacedError`.
        """
        if self.signer is None:
            raise RuntimeError("a takeover needs a signer (no account yet)")
        await self.call("POST", r.CLIENT_TAKEOVER, m.TakeoverRequest(device_token), m.Empty)
        self.signer.device_token = device_token

    # -- devices (docs/devices.md) -------------------------------------------------

    async def add_client(self, request: m.AddClientRequest) -> m.AddClientResponse:
        """Register another device of this account (signed by this one)."""
        return await self.call("POST", r.CLIENTS, request, m.AddClientResponse)

    async def certify_client(self, request: m.CertifyClientRequest) -> m.Credential:
        """Give this client the account key's certificate; its re-issued credential."""
        response = await self.call("POST", r.CLIENT_CERTIFICATE, request, m.ClientCredential)
        return response.credential

    async def remove_client(
        self,
        client_id: str,
        queue_kill: bytes | None = None,
        contact_kill: bytes | None = None,
    ) -> None:
        """Remove a device of this account (this one included) from the server; its
        queue's kill secret names the queue once it has a key of its own, and its
        contact queue's names that queue once it has a kill hash."""
        body = (
            None
            if queue_kill is None and contact_kill is None
            else m.RemoveClientRequest(queue_kill, contact_kill)
        )
        await self.call("DELETE", r.client_path(client_id), body, m.Empty)

    async def give_queue_key(self, request: m.QueueKeyRequest) -> None:
        """Give this client's queue a key of its own (messenger/client/queue_keys.py)."""
        await self.call("PUT", r.QUEUE_KEY, request, m.Empty)

    async def create_link(self, link_id: bytes) -> m.CreateLinkResponse:
        return await self.call("POST", r.LINKS, m.CreateLinkRequest(link_id), m.CreateLinkResponse)

    async def post_link(self, link_id: bytes, sealed: bytes, *, signed: bool) -> int:
        """Post into a link: signed (its creator) to the new device, else to the creator."""
        response = await self.call(
            "POST",
            r.link_path(r.LINK_MESSAGES, link_id),
            m.LinkPostRequest(sealed),
            m.LinkPostResponse,
            signed=signed,
        )
        return response.seq

    async def fetch_link(
        self, link_id: bytes, after: int, *, signed: bool, wait: int = 0
    ) -> m.LinkMessages:
        """Messages of a link after ``after``: to the creator if signed, else to the new device."""
        target = f"{r.link_path(r.LINK_MESSAGES, link_id)}?after={after}"
        if wait:
            target += f"&wait={wait}"
        return await self.call(
            "GET",
            target,
            None,
            m.LinkMessages,
            signed=signed,
            timeout=self._timeout + wait if wait else None,
        )

    async def close_link(self, link_id: bytes, *, signed: bool) -> None:
        await self.call("DELETE", r.link_path(r.LINK, link_id), None, m.Empty, signed=signed)

    async def set_handle(self, handle: str, contact_box: bytes | None = None) -> None:
        """Set this account's handle, with its contact token sealed under a key from
        the handle (``contact_box``, :mod:`messenger.api.contact_token`)."""
        await self.call("PUT", r.HANDLE, m.SetHandleRequest(handle, contact_box), m.Empty)

    async def lookup_handle(self, handle: str) -> str:
        """The account ID that holds ``handle``."""
        return (await self.look_up_handle(handle)).account_id

    async def look_up_handle(self, handle: str) -> m.HandleLookupResponse:
        """The account that holds ``handle``, and its contact box if it gave one."""
        request = m.HandleLookupRequest(handle)
        return await self.call("POST", r.HANDLE_LOOKUP, request, m.HandleLookupResponse)

    async def upload_key_packages(
        self,
        key_packages: tuple[bytes, ...],
        last_resort: bytes | None = None,
        *,
        prove_queue: bool = True,
        contact_proof: bytes | None = None,
    ) -> m.UploadKeyPackagesResponse:
        """Upload KeyPackages; without ``prove_queue`` (their leaves name the contact
        queue, which the server knows from the client, or from ``contact_proof``:
        the contact key's signature over the client and that key) the request
        shows no queue."""
        request = m.UploadKeyPackagesRequest(key_packages, last_resort, contact_proof)
        return await self.call(
            "POST",
            r.KEY_PACKAGES,
            request,
            m.UploadKeyPackagesResponse,
            prove_queue=prove_queue,
        )

    async def queue_address(self, queue: QueueSigner | None = None) -> str:
        """A fresh delivery address of this client's queue (sealed by the server), or
        of ``queue`` (its contact queue), asked with a queue request of that queue."""
        response = await self.call(
            "GET",
            r.QUEUE_ADDRESS,
            None,
            m.QueueAddressResponse,
            queue=queue is None,
            as_queue=queue,
        )
        return response.address

    async def contact_queue(self, request: m.ContactQueueRequest) -> str:
        """This client's contact queue, made for the key in ``request`` (the same
        queue again for the same key): its ID (docs/metadata.md §1)."""
        response = await self.call("PUT", r.CONTACT_QUEUE, request, m.ContactQueueResponse)
        return response.queue_id

    async def key_package_count(self) -> m.KeyPackageCount:
        return await self.call("GET", r.KEY_PACKAGE_COUNT, None, m.KeyPackageCount)

    async def claim_key_packages(
        self,
        account_id: str,
        suites: Sequence[int] | None = None,
        *,
        contact_token: bytes | None = None,
    ) -> tuple[m.ClaimedKeyPackage, ...]:
        """One KeyPackage per client of the account, all in the first of ``suites``
        (most wanted first; default: suite 1) that every client can provide.

        ``contact_token``: the account's (docs/metadata.md §1); without it, or
        with another, a KeyPackage that carries one is refused
        (:class:`~messenger.client.errors.ContactTokenError`)."""
        request = m.ClaimKeyPackagesRequest(
            account_id, None if suites is None else tuple(suites), contact_token
        )
        response = await self.call(
            "POST", r.CLAIM_KEY_PACKAGES, request, m.ClaimKeyPackagesResponse
        )
        for claimed in response.key_packages:
            if claimed.claim_token is not None:
                self.claim_tokens.record(claimed.key_package, claimed.claim_token)
        return response.key_packages

    async def fetch(
        self, after: int, *, limit: int = 500, wait: int = 0, queue: QueueSigner | None = None
    ) -> m.FetchResponse:
        """Messages after ``after`` of this client's queue, or of ``queue`` (its
        contact queue); a long poll of up to ``wait`` seconds."""
        target = f"{r.QUEUE_MESSAGES}?after={after}&limit={limit}"
        if wait:
            target += f"&wait={wait}"
        return await self.call(
            "GET",
            target,
            None,
            m.FetchResponse,
            queue=queue is None,
            timeout=self._timeout + wait if wait else None,
            as_queue=queue,
        )

    async def ack(self, up_to: int, *, queue: QueueSigner | None = None) -> int:
        """Delete this client's queue's messages up to ``up_to`` (or ``queue``'s)."""
        request = m.AckRequest(up_to)
        answer = await self.call(
            "POST", r.ACK, request, m.AckResponse, queue=queue is None, as_queue=queue
        )
        return answer.deleted

    async def create_group(self, body: m.CreateGroupRequest | bytes) -> m.CreateGroupResponse:
        """Register a new group whose first member is this client's queue: a queue
        request once the server has the queue key, so no client is named."""
        return await self.call("POST", r.GROUPS, body, m.CreateGroupResponse, queue=True)

    async def commit(
        self, group_id: bytes, body: m.CommitRequest | bytes, *, sealed: bool
    ) -> m.CommitResponse:
        """Send a commit: ``sealed`` (unsigned, its body carries the epoch's send
        token, docs/metadata.md §3) or signed (an external commit).

        A sealed commit the server answers ``unknown_group`` is sent again,
        signed: the server then has no usable token for the epoch (a group
        from before sealed sending, a wrong digest registered) or the client
        is behind (the signed commit is then refused as stale, and rebuilt);
        a non-member gets ``unknown_group`` either way. That one commit then
        names its committer to the server.
        """
        target = r.group_path(r.GROUP_COMMITS, group_id)
        if sealed:
            try:
                return await self.call("POST", target, body, m.CommitResponse, sealed=True)
            except ServerRejectedError as exc:
                if exc.code != "unknown_group":
                    raise
        return await self.call("POST", target, body, m.CommitResponse)

    async def send(self, group_id: bytes, body: m.SendRequest | bytes) -> m.SendResponse:
        """A sealed send (docs/metadata.md §3): the body carries the epoch's send token."""
        return await self.call(
            "POST", r.group_path(r.GROUP_MESSAGES, group_id), body, m.SendResponse, sealed=True
        )

    async def register_send_token(self, group_id: bytes, epoch: int, token_hash: bytes) -> None:
        """Register the send-token digest of a group's current epoch (a group from before)."""
        await self.call(
            "PUT",
            r.group_path(r.GROUP_SEND_TOKEN, group_id),
            m.SendTokenRequest(epoch, token_hash),
            m.Empty,
        )

    async def send_batch(
        self, group_id: bytes, items: Sequence[m.SendRequest | bytes]
    ) -> list[m.SendResponse]:
        """Send up to :data:`~messenger.api.models.MAX_SEND_BATCH_ITEMS` messages, all or none.

        Each item is what :meth:`send` takes (a request, or its finished JSON
        body as the outbox stores it). The answers come per item, in order;
        a refusal (``stale_epoch``, ``queue_full``, a rate limit, ...) is
        for the whole batch, and nothing of it was stored.
        """
        if not 1 <= len(items) <= m.MAX_SEND_BATCH_ITEMS:
            raise ValueError(f"a batch holds 1 to {m.MAX_SEND_BATCH_ITEMS} items")
        parts = [item.dumps() if isinstance(item, m.Model) else item for item in items]
        body = b'{"messages":[' + b",".join(parts) + b"]}"
        response = await self.call(
            "POST",
            r.group_path(r.GROUP_MESSAGES_BATCH, group_id),
            body,
            m.SendBatchResponse,
            sealed=True,
        )
        if len(response.results) != len(items):
            raise ProtocolError(
                f"a batch of {len(items)} was answered with {len(response.results)} results"
            )
        return list(response.results)

    async def group_info(self, group_id: bytes) -> m.GroupInfoResponse:
        """The stored GroupInfo of a group sealed the old way (``outdated_client``
        for one sealed under its members' keys: read it with :meth:`rejoin_info`)."""
        return await self.call(
            "GET", r.group_path(r.GROUP_INFO, group_id), None, m.GroupInfoResponse
        )

    async def rejoin_info(self, group_id: bytes, token: bytes) -> m.GroupInfoResponse:
        """The stored GroupInfo, opened with ``token``: the send token of an epoch
        since the group's last removal (docs/metadata.md §2; to rejoin by external
        commit). ``unknown_group`` if it opens nothing, as for a stranger."""
        return await self.call(
            "POST",
            r.group_path(r.GROUP_REJOIN_INFO, group_id),
            m.RejoinInfoRequest(token),
            m.GroupInfoResponse,
        )

    # -- rejoin boxes (docs/metadata.md §2, ``..rejoin_boxes``) ---------------------------

    async def put_rejoin_box(self, handle: bytes, box: bytes) -> None:
        """Store (replace) this account's rejoin box under ``handle``."""
        await self.call("PUT", r.rejoin_box_path(handle), m.RejoinBox(box), m.Empty)

    async def get_rejoin_box(self, handle: bytes) -> bytes | None:
        """This account's rejoin box under ``handle``; None if there is none."""
        try:
            response = await self.call("GET", r.rejoin_box_path(handle), None, m.RejoinBoxResponse)
        except ServerRejectedError as exc:
            if exc.code == "not_found":  # none stored (or a server from before boxes)
                return None
            raise
        return response.box

    async def delete_rejoin_box(self, handle: bytes) -> None:
        """Delete the rejoin box under ``handle`` (idempotent)."""
        await self.call("DELETE", r.rejoin_box_path(handle), None, m.Empty)

    # -- blobs: attachments (docs/attachments.md §3) -----------------------------------
    #
    # ``token`` is the send token of the blob's group at its current epoch: the
    # server reads the member set of a group sealed under its members' keys only
    # with it (docs/metadata.md §2), and answers ``unknown_group`` without one
    # that opens it (the client is behind a removal, or no longer a member).

    async def create_blob(self, request: m.CreateBlobRequest) -> m.CreateBlobResponse:
        """Reserve a blob of ``request.size`` bytes for an attachment to a group.

        Every blob request is a queue request once the server has the queue key
        (docs/attachments.md §3): the blob is then this queue's, not the
        account's, and no request about it names the client."""
        return await self.call("POST", r.BLOBS, request, m.CreateBlobResponse, queue=True)

    async def upload_blob_part(
        self, blob_id: bytes, offset: int, data: bytes, token: bytes | None = None
    ) -> m.BlobStatus:
        """Append ``data`` at ``offset`` (the bytes the server has received so far)."""
        target = f"{r.blob_path(r.BLOB, blob_id)}?offset={offset}"
        content = await self.call_raw(
            "PUT", target, data, headers=_blob_headers(None, token), queue=True
        )
        return _parse(m.BlobStatus, content, "PUT", r.BLOB)

    async def blob_status(
        self, blob_id: bytes, access: bytes | None = None, token: bytes | None = None
    ) -> m.BlobStatus:
        """How much of a blob the server holds (its owner; else with the capability)."""
        target = r.blob_path(r.BLOB_STATUS, blob_id)
        content = await self.call_raw(
            "GET", target, headers=_blob_headers(access, token), queue=True
        )
        return _parse(m.BlobStatus, content, "GET", r.BLOB_STATUS)

    async def download_blob(
        self, blob_id: bytes, access: bytes, offset: int, length: int, token: bytes | None = None
    ) -> bytes:
        """Up to ``length`` bytes of a complete blob from ``offset``."""
        target = f"{r.blob_path(r.BLOB, blob_id)}?offset={offset}&length={length}"
        return await self.call_raw("GET", target, headers=_blob_headers(access, token), queue=True)

    async def blob_fetched(self, blob_id: bytes, access: bytes, token: bytes | None = None) -> None:
        """Tell the server this client has the blob (deleted once every recipient has)."""
        target = r.blob_path(r.BLOB_FETCHED, blob_id)
        content = await self.call_raw(
            "POST", target, headers=_blob_headers(access, token), queue=True
        )
        _parse(m.Empty, content, "POST", r.BLOB_FETCHED)

    async def delete_blob(self, blob_id: bytes) -> None:
        """Delete an own blob (a cancelled upload; its owner's right, no membership)."""
        await self.call("DELETE", r.blob_path(r.BLOB, blob_id), None, m.Empty, queue=True)


_QUEUE_READS: Final = "queue"


def _queue_kind(target: str) -> str:
    """Which kind of queue request ``target`` is, by the first segment of its path
    after ``/v1/``: ``queue`` (the queue's own routes), ``blobs`` (attachments)
    or ``groups`` (making a group); servers took them in that order, so one
    that refuses a kind may take another."""
    segments = target.split("?", 1)[0].split("/")
    return segments[2] if len(segments) > 2 else _QUEUE_READS


def _blob_headers(access: bytes | None, token: bytes | None) -> dict[str, str]:
    headers = {} if access is None else {HEADER_BLOB_ACCESS: b64encode(access)}
    if token is not None:
        headers[HEADER_GROUP_TOKEN] = b64encode(token)
    return headers


def _parse(out: type[M], content: bytes, method: str, route: str) -> M:
    try:
        return out.loads(content)
    except ApiError as exc:
        raise ProtocolError(f"{method} {route}: unexpected answer ({exc})") from exc
