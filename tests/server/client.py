"""A small signing client for the server tests.

It signs requests exactly as messenger.api.signing describes (and as
messenger/client/net will), and can also send them unsigned, badly signed
or replayed, for the authentication tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from httpx_ws import AsyncWebSocketSession, aconnect_ws

from messenger.api import models as m
from messenger.api import routes as r
from messenger.api.errors import ApiError
from messenger.api.fields import b64encode
from messenger.api.pow import solve_pow
from messenger.api.sealed import token_digest
from messenger.api.signing import (
    HEADER_CLIENT,
    HEADER_DEVICE_TOKEN,
    HEADER_NONCE,
    HEADER_QUEUE,
    HEADER_QUEUE_SIGNATURE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    NONCE_BYTES,
    canonical_request,
    contact_queue_possession,
    possession_message,
    queue_join_message,
    queue_key_possession,
    queue_leave_message,
    queue_proof_message,
    queue_request,
)
from messenger.mls.events import CommitResult
from messenger.mls.group import Group

from . import mls_data

M = TypeVar("M", bound=m.Model)

#: The member queues of each (group, epoch) the test clients made, as the
#: server was told: only clients whose queue is among them know the epoch's
#: send token (docs/metadata.md §3), as only MLS members can derive it.
_EPOCH_MEMBERS: dict[tuple[bytes, int], frozenset[str]] = {}
#: The queue of each delivery address the test clients were handed.
_QUEUE_OF_ADDRESS: dict[str, str] = {}


def send_token(group_id: bytes, epoch: int) -> bytes:
    """The test send token of an epoch (real clients use the MLS exporter)."""
    return hashlib.sha256(b"test send token\n" + group_id + epoch.to_bytes(8, "big")).digest()


def send_token_hash(group_id: bytes, epoch: int) -> bytes:
    return token_digest(send_token(group_id, epoch))


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class Identity:
    key: Ed25519PrivateKey
    account_id: str
    client_id: str
    queue_id: str
    credential: m.Credential | None = None


class ApiClient:
    """One client (device) talking to the server."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        identity: Identity | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.http = http
        self.identity = identity
        self.clock = clock
        #: Sent on every signed request once set (a copy that took the client over).
        self.device_token: bytes | None = None
        #: The claim tokens of the KeyPackages this client claimed, newest last:
        #: its commits present them as evidence for their Adds.
        self.claim_tokens: list[bytes] = []
        #: The queue's own key, once given (:meth:`give_queue_key`): every signed
        #: request then proves the queue with it.
        self.queue_key: Ed25519PrivateKey | None = None
        #: The contact queue and its key, once given (:meth:`give_contact_queue`).
        self.contact_queue_id: str | None = None
        self.contact_key: Ed25519PrivateKey | None = None

    @property
    def me(self) -> Identity:
        assert self.identity is not None
        return self.identity

    def sign(
        self,
        method: str,
        target: str,
        body: bytes,
        *,
        timestamp_ms: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        """The authentication headers for a request."""
        ident = self.me
        ts = timestamp_ms if timestamp_ms is not None else int(self.clock() * 1000)
        nonce = nonce if nonce is not None else b64encode(os.urandom(NONCE_BYTES))
        message = canonical_request(method, target, ident.client_id, ts, nonce, body)
        headers = {
            HEADER_CLIENT: ident.client_id,
            HEADER_TIMESTAMP: str(ts),
            HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64encode(ident.key.sign(message)),
        }
        if self.device_token is not None:
            headers[HEADER_DEVICE_TOKEN] = b64encode(self.device_token)
        if self.queue_key is not None:
            headers[HEADER_QUEUE] = ident.queue_id
            proof = self.queue_key.sign(queue_proof_message(ident.queue_id, message))
            headers[HEADER_QUEUE_SIGNATURE] = b64encode(proof)
        return headers

    def queue_headers(
        self,
        method: str,
        target: str,
        body: bytes,
        *,
        timestamp_ms: int | None = None,
        nonce: str | None = None,
        key: Ed25519PrivateKey | None = None,
        queue_id: str | None = None,
    ) -> dict[str, str]:
        """The headers of a queue request: signed by the queue key alone, no client
        (``queue_id``: another queue than the client's, such as its contact queue)."""
        signer = key if key is not None else self.queue_key
        assert signer is not None, "give the queue a key first"
        queue_id = queue_id if queue_id is not None else self.me.queue_id
        ts = timestamp_ms if timestamp_ms is not None else int(self.clock() * 1000)
        nonce = nonce if nonce is not None else b64encode(os.urandom(NONCE_BYTES))
        message = queue_request(method, target, queue_id, ts, nonce, body)
        return {
            HEADER_QUEUE: queue_id,
            HEADER_TIMESTAMP: str(ts),
            HEADER_NONCE: nonce,
            HEADER_QUEUE_SIGNATURE: b64encode(signer.sign(message)),
        }

    async def queue_raw(
        self,
        method: str,
        target: str,
        body: m.Model | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one queue request (signed as :meth:`queue_headers` unless ``headers``)."""
        data = b"" if body is None else body.dumps()
        all_headers = {"content-type": "application/json"} if body is not None else {}
        all_headers.update(self.queue_headers(method, target, data) if headers is None else headers)
        return await self.http.request(method, target, content=data, headers=all_headers)

    def contact_headers(
        self, method: str, target: str, body: bytes, *, key: Ed25519PrivateKey | None = None
    ) -> dict[str, str]:
        """The headers of a queue request to the contact queue, signed by its key
        (or by ``key``, for the attack tests)."""
        assert self.contact_queue_id is not None, "give the client a contact queue first"
        signer = key if key is not None else self.contact_key
        return self.queue_headers(method, target, body, key=signer, queue_id=self.contact_queue_id)

    async def contact_raw(
        self,
        method: str,
        target: str,
        body: m.Model | None = None,
        *,
        key: Ed25519PrivateKey | None = None,
    ) -> httpx.Response:
        """Send one queue request to the contact queue (signed by ``key`` if given)."""
        data = b"" if body is None else body.dumps()
        headers = self.contact_headers(method, target, data, key=key)
        return await self.queue_raw(method, target, body, headers=headers)

    def copy(self) -> ApiClient:
        """Another copy of this client (same keys and IDs), as a restored backup is."""
        twin = ApiClient(self.http, self.identity, self.clock)
        twin.queue_key = self.queue_key
        twin.contact_queue_id = self.contact_queue_id
        twin.contact_key = self.contact_key
        return twin

    def as_contact(self) -> ApiClient:
        """This client proving its contact queue on its signed requests, as it may
        to commit as a member whose leaf is still there."""
        assert self.contact_key is not None and self.contact_queue_id is not None
        twin = self.copy()
        twin.identity = dataclasses.replace(self.me, queue_id=self.contact_queue_id)
        twin.queue_key = self.contact_key
        twin.claim_tokens = self.claim_tokens
        return twin

    async def give_contact_queue(
        self, key: Ed25519PrivateKey | None = None, *, kill_hash: bytes | None = None
    ) -> str:
        """Get the client's contact queue (``PUT /v1/queue/contact``), with ``key``
        or a fresh one (and ``kill_hash``, if given); its queue ID."""
        key = key if key is not None else Ed25519PrivateKey.generate()
        proof = key.sign(contact_queue_possession(self.me.client_id, public_bytes(key)))
        request = m.ContactQueueRequest(public_bytes(key), proof, kill_hash)
        answer = await self.call("PUT", r.CONTACT_QUEUE, request, m.ContactQueueResponse)
        self.contact_queue_id, self.contact_key = answer.queue_id, key
        return answer.queue_id

    def contact_proof(self, key: Ed25519PrivateKey | None = None) -> bytes:
        """The contact key's (or ``key``'s) signature over ``contact_queue_possession``
        of this client and that key: what a KeyPackage upload naming the contact
        queue carries."""
        signer = key if key is not None else self.contact_key
        assert signer is not None, "give the client a contact queue first"
        return signer.sign(contact_queue_possession(self.me.client_id, public_bytes(signer)))

    async def contact_address(self) -> str:
        """A fresh delivery address of the contact queue (a queue request by its key)."""
        response = await self.contact_raw("GET", r.QUEUE_ADDRESS)
        if response.status_code != 200:
            raise ApiError.from_json(response.json(), response.status_code)
        address = m.QueueAddressResponse.from_json(response.json()).address
        assert self.contact_queue_id is not None
        _QUEUE_OF_ADDRESS[address] = self.contact_queue_id
        return address

    def join_proof(
        self, group_id: bytes, epoch: int, commit: bytes, key: Ed25519PrivateKey | None = None
    ) -> bytes:
        """The proof that adds this client's queue to a group with ``commit``: its
        queue key's (or ``key``'s) signature over ``queue_join_message``."""
        signer = key if key is not None else self.queue_key
        assert signer is not None, "give the queue a key first"
        return signer.sign(queue_join_message(group_id, epoch, commit))

    def leave_proof(
        self, group_id: bytes, epoch: int, commit: bytes, key: Ed25519PrivateKey | None = None
    ) -> bytes:
        """The proof that this client moves off its contact queue with ``commit``:
        the contact key's (or ``key``'s) signature over ``queue_leave_message``."""
        signer = key if key is not None else self.contact_key
        assert signer is not None, "give the client a contact queue first"
        return signer.sign(queue_leave_message(group_id, epoch, commit))

    async def give_queue_key(self, kill: bytes | None = None) -> bytes:
        """Give the queue a key of its own (``PUT /v1/queue/key``); its kill secret."""
        key = Ed25519PrivateKey.generate()
        kill = kill if kill is not None else os.urandom(32)
        kill_hash = hashlib.sha256(kill).digest()
        proof = key.sign(queue_key_possession(self.me.queue_id, kill_hash))
        request = m.QueueKeyRequest(public_bytes(key), kill_hash, proof)
        await self.call("PUT", r.QUEUE_KEY, request, m.Empty)
        self.queue_key = key
        return kill

    async def take_over(self, token: bytes) -> m.Empty:
        """Make this copy the client's only one (``POST /v1/clients/takeover``)."""
        answer = await self.call("POST", r.CLIENT_TAKEOVER, m.TakeoverRequest(token), m.Empty)
        self.device_token = token
        return answer

    async def raw(
        self,
        method: str,
        target: str,
        body: bytes | m.Model | dict[str, Any] | None = None,
        *,
        signed: bool = True,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> httpx.Response:
        """Send one request; signed unless ``signed=False``; no error mapping."""
        if isinstance(body, m.Model):
            data = body.dumps()
        elif isinstance(body, dict):
            data = json.dumps(body).encode()
        else:
            data = body or b""
        all_headers: dict[str, str] = {}
        if body is not None and content_type is not None:
            all_headers["content-type"] = content_type
        if signed:
            all_headers.update(self.sign(method, target, data))
        all_headers.update(headers or {})
        return await self.http.request(method, target, content=data, headers=all_headers)

    async def call(
        self,
        method: str,
        target: str,
        body: m.Model | None,
        out: type[M],
        *,
        signed: bool = True,
    ) -> M:
        """Send a request; the parsed response, or :class:`ApiError`."""
        response = await self.raw(method, target, body, signed=signed)
        payload = response.json()
        if response.status_code != 200:
            raise ApiError.from_json(payload, response.status_code)
        return out.from_json(payload)

    # -- the API, route by route ------------------------------------------------

    async def server_info(self) -> m.ServerInfo:
        return await self.call("GET", r.SERVER_INFO, None, m.ServerInfo, signed=False)

    async def register(
        self,
        *,
        handle: str | None = None,
        invite_code: str | None = None,
        key: Ed25519PrivateKey | None = None,
        contact_box: bytes | None = None,
    ) -> m.RegisterResponse:
        """Solve a challenge and register; sets :attr:`identity`."""
        challenge = await self.call("POST", r.REGISTER_CHALLENGE, None, m.Challenge, signed=False)
        key = key or Ed25519PrivateKey.generate()
        pub = public_bytes(key)
        request = m.RegisterRequest(
            signature_key=pub,
            challenge=challenge.challenge,
            pow_nonce=solve_pow(challenge.challenge, pub, challenge.difficulty),
            proof=key.sign(possession_message(challenge.challenge, pub)),
            invite_code=invite_code,
            handle=handle,
            contact_box=contact_box,
        )
        response = await self.call("POST", r.REGISTER, request, m.RegisterResponse, signed=False)
        self.identity = Identity(
            key, response.account_id, response.client_id, response.queue_id, response.credential
        )
        return response

    async def add_client(self) -> ApiClient:
        """A new device of this account."""
        key = Ed25519PrivateKey.generate()
        pub = public_bytes(key)
        proof = key.sign(possession_message(self.me.account_id.encode(), pub))
        response = await self.call(
            "POST", r.CLIENTS, m.AddClientRequest(pub, proof), m.AddClientResponse
        )
        identity = Identity(
            key, self.me.account_id, response.client_id, response.queue_id, response.credential
        )
        return ApiClient(self.http, identity, self.clock)

    def key_package(
        self,
        *,
        corrupt: bool = False,
        suite_id: int = mls_data.SUITE_ID,
        delivery: str | None = None,
        contact_token: bytes | None = None,
    ) -> bytes:
        """A KeyPackage of this client: its signature key and its server credential
        (``delivery``: the leaf's delivery address, ``contact_token``: its account's
        contact token, if any)."""
        assert self.me.credential is not None
        return mls_data.key_package(
            mls_data.credential_identity(self.me.credential),
            corrupt=corrupt,
            signature_key=self.me.key,
            suite_id=suite_id,
            delivery=delivery,
            contact_token=contact_token,
        )

    async def queue_address(self) -> str:
        """A fresh delivery address of this client's queue."""
        answer = await self.call("GET", r.QUEUE_ADDRESS, None, m.QueueAddressResponse)
        _QUEUE_OF_ADDRESS[answer.address] = self.me.queue_id
        return answer.address

    async def upload_key_packages(
        self,
        key_packages: list[bytes],
        last_resort: bytes | None = None,
        *,
        contact_proof: bytes | None = None,
    ) -> m.UploadKeyPackagesResponse:
        return await self.call(
            "POST",
            r.KEY_PACKAGES,
            m.UploadKeyPackagesRequest(tuple(key_packages), last_resort, contact_proof),
            m.UploadKeyPackagesResponse,
        )

    async def key_package_count(self) -> m.KeyPackageCount:
        return await self.call("GET", r.KEY_PACKAGE_COUNT, None, m.KeyPackageCount)

    async def claim(
        self,
        account_id: str,
        suites: tuple[int, ...] | None = None,
        *,
        contact_token: bytes | None = None,
    ) -> m.ClaimKeyPackagesResponse:
        answer = await self.call(
            "POST",
            r.CLAIM_KEY_PACKAGES,
            m.ClaimKeyPackagesRequest(account_id, suites, contact_token),
            m.ClaimKeyPackagesResponse,
        )
        for claimed in answer.key_packages:
            assert claimed.claim_token is not None and len(claimed.claim_token) == 32
            self.claim_tokens.append(claimed.claim_token)
        return answer

    async def welcome_for(self, *others: ApiClient) -> bytes:
        """A Welcome that lets this client add ``others`` to a group.

        Each of ``others`` uploads a KeyPackage and this client claims it: the
        server's evidence that they are being added. The Welcome names the
        claimed KeyPackages (its ``new_member`` refs, RFC 9420 §12.4.3.1).
        """
        refs = []
        for other in others:
            # A queue with a key of its own is named by no row: the leaf names it;
            # a client with a contact queue names that.
            delivery = None if other.queue_key is None else await other.queue_address()
            if other.contact_key is not None:
                delivery = await other.contact_address()
            await other.upload_key_packages([other.key_package(delivery=delivery)])
            for claimed in (await self.claim(other.me.account_id)).key_packages:
                refs.append(mls_data.key_package_ref(claimed.key_package))
        return mls_data.welcome(refs)

    async def create_group(
        self, group_id: bytes, *, member_keys: bool = False, by_queue: bool = False
    ) -> m.CreateGroupResponse:
        """Create ``group_id``; with ``member_keys`` its state is sealed under the
        members' tokens from the start (docs/metadata.md §2), as the app does;
        ``by_queue``: with a queue request (the queue key alone, no client)."""
        request = m.CreateGroupRequest(
            group_id,
            send_token_hash=send_token_hash(group_id, 0),
            send_token=send_token(group_id, 0) if member_keys else None,
        )
        if by_queue:
            response = await self.queue_raw("POST", r.GROUPS, request)
            if response.status_code != 200:
                raise ApiError.from_json(response.json(), response.status_code)
            answer = m.CreateGroupResponse.from_json(response.json())
        else:
            answer = await self.call("POST", r.GROUPS, request, m.CreateGroupResponse)
        _EPOCH_MEMBERS[(group_id, 0)] = frozenset({self.me.queue_id})
        return answer

    async def start_group(
        self,
        group_id: bytes,
        *others: ApiClient,
        group_info: bool = False,
        member_keys: bool = False,
    ) -> m.CommitResponse:
        """Create ``group_id`` and add ``others`` with a Welcome (epoch 1); with
        ``group_info``, the commit carries epoch 1's GroupInfo; with
        ``member_keys``, the tokens that seal the state (:meth:`create_group`)."""
        await self.create_group(group_id, member_keys=member_keys)
        queues = [self.me.queue_id, *(o.me.queue_id for o in others)]
        return await self.commit(
            group_id,
            0,
            mls_data.commit(group_id, 0),
            queues,
            welcome=await self.welcome_for(*others) if others else None,
            welcome_to=queues[1:] or None,
            group_info=mls_data.group_info(group_id, 1) if group_info else None,
            next_token=member_keys,
        )

    async def start_mls_group(
        self,
        group_id: bytes,
        other: ApiClient,
        group: Group | None = None,
        *,
        member_keys: bool = False,
    ) -> tuple[Group, CommitResult]:
        """A real MLS group (RFC 9420 §11) this client made and added ``other`` to:
        at epoch 1 on the server, with that epoch's GroupInfo stored. The group
        (``group`` if given, at epoch 0), merged to epoch 1, and the commit."""
        assert self.me.credential is not None
        if group is None:
            group = mls_data.mls_group(self.me.credential, self.me.key, group_id)
        await self.create_group(group_id, member_keys=member_keys)
        await other.upload_key_packages([other.key_package()])
        (claimed,) = (await self.claim(other.me.account_id)).key_packages
        added = group.commit(os.urandom, add=[claimed.key_package])
        await self.commit(
            group_id,
            0,
            added.message,
            [self.me.queue_id, other.me.queue_id],
            welcome=added.welcome,
            welcome_to=[other.me.queue_id],
            group_info=added.group_info,
            next_token=member_keys,
        )
        group.merge(added.staged)
        return group, added

    def token_for(self, group_id: bytes, message: bytes) -> bytes:
        """The send token this client knows for ``message``'s epoch: the real one if
        its queue was a member then, else one it made up (a stranger's guess)."""
        from messenger.server.mls_frames import parse_group_message

        try:
            epoch = parse_group_message(message).epoch
        except ApiError:
            epoch = 0
        mine = {self.me.queue_id, self.contact_queue_id}
        if not mine.isdisjoint(_EPOCH_MEMBERS.get((group_id, epoch), frozenset())):
            return send_token(group_id, epoch)
        return hashlib.sha256(b"a guess\n" + self.me.queue_id.encode() + group_id).digest()

    async def commit(
        self,
        group_id: bytes,
        epoch: int,
        commit: bytes,
        members: list[str],
        *,
        welcome: bytes | None = None,
        welcome_to: list[str] | None = None,
        group_info: bytes | None = None,
        idempotency_key: bytes | None = None,
        sealed: bool = False,
        claims: tuple[bytes, ...] | None = None,
        next_token: bool = False,
        rejoin_token: bytes | None = None,
        join_queue: str | None = None,
        join_proof: bytes | None = None,
        leave_queue: str | None = None,
        leave_proof: bytes | None = None,
    ) -> m.CommitResponse:
        """A commit, signed, or ``sealed`` with the token this client knows for
        ``epoch``; ``claims`` defaults to the tokens of this client's latest claims.
        With ``next_token`` it carries the new epoch's token itself (the app's
        commits do, docs/metadata.md §2); ``rejoin_token`` opens the state for
        an external commit; ``join_queue`` and ``join_proof`` add a queue by its
        own key's proof instead of a claim."""
        if claims is None:
            claims = tuple(dict.fromkeys(self.claim_tokens[-m.MAX_GROUP_MEMBERS :])) or None
        request = m.CommitRequest(
            epoch,
            commit,
            tuple(members),
            welcome,
            tuple(welcome_to) if welcome_to is not None else None,
            group_info,
            idempotency_key,
            send_token_hash(group_id, epoch + 1),
            # The app's signed fallback still carries the token (docs/metadata.md §2).
            token=self.token_for(group_id, commit) if sealed or next_token else None,
            claims=claims or None,
            next_token=send_token(group_id, epoch + 1) if next_token else None,
            rejoin_token=rejoin_token,
            join_queue=join_queue,
            join_proof=join_proof,
            leave_queue=leave_queue,
            leave_proof=leave_proof,
        )
        answer = await self.call(
            "POST",
            r.group_path(r.GROUP_COMMITS, group_id),
            request,
            m.CommitResponse,
            signed=not sealed,
        )
        _EPOCH_MEMBERS[(group_id, answer.epoch)] = frozenset(
            _QUEUE_OF_ADDRESS.get(q, q) for q in members
        )
        return answer

    def sealed(self, group_id: bytes, message: bytes, key: bytes | None = None) -> m.SendRequest:
        """A send request with the token this client knows for the message's epoch."""
        return m.SendRequest(message, key, self.token_for(group_id, message))

    async def send(
        self,
        group_id: bytes,
        message: bytes,
        *,
        idempotency_key: bytes | None = None,
        token: bytes | None = None,
    ) -> m.SendResponse:
        request = self.sealed(group_id, message, idempotency_key)
        if token is not None:
            request = m.SendRequest(message, idempotency_key, token)
        return await self.call(
            "POST", r.group_path(r.GROUP_MESSAGES, group_id), request, m.SendResponse, signed=False
        )

    async def send_batch(
        self,
        group_id: bytes,
        items: list[bytes | m.SendRequest],
        *,
        token: bytes | None = None,
    ) -> m.SendBatchResponse:
        """Send ``items``; each without a token gets ``token``, else the one this
        client knows for its message's epoch."""

        def sealed(message: bytes, key: bytes | None) -> m.SendRequest:
            if token is not None:
                return m.SendRequest(message, key, token)
            return self.sealed(group_id, message, key)

        request = m.SendBatchRequest(
            tuple(
                i
                if isinstance(i, m.SendRequest) and i.token is not None
                else sealed(i.message, i.idempotency_key)
                if isinstance(i, m.SendRequest)
                else sealed(i, None)
                for i in items
            )
        )
        return await self.call(
            "POST",
            r.group_path(r.GROUP_MESSAGES_BATCH, group_id),
            request,
            m.SendBatchResponse,
            signed=False,
        )

    async def fetch(self, after: int = 0, limit: int | None = None, wait: int | None = None):
        query = f"?after={after}"
        if limit is not None:
            query += f"&limit={limit}"
        if wait is not None:
            query += f"&wait={wait}"
        return await self.call("GET", r.QUEUE_MESSAGES + query, None, m.FetchResponse)

    async def ack(self, up_to: int) -> m.AckResponse:
        return await self.call("POST", r.ACK, m.AckRequest(up_to), m.AckResponse)

    async def group_info(self, group_id: bytes) -> m.GroupInfoResponse:
        return await self.call(
            "GET", r.group_path(r.GROUP_INFO, group_id), None, m.GroupInfoResponse
        )

    async def put_group_info(
        self, group_id: bytes, epoch: int, info: bytes, token: bytes | None = None
    ) -> m.Empty:
        return await self.call(
            "PUT",
            r.group_path(r.GROUP_INFO, group_id),
            m.GroupInfoRequest(epoch, info, token),
            m.Empty,
        )

    async def rejoin_info(self, group_id: bytes, token: bytes) -> m.GroupInfoResponse:
        return await self.call(
            "POST",
            r.group_path(r.GROUP_REJOIN_INFO, group_id),
            m.RejoinInfoRequest(token),
            m.GroupInfoResponse,
        )

    async def set_handle(self, handle: str, contact_box: bytes | None = None) -> m.Empty:
        return await self.call("PUT", r.HANDLE, m.SetHandleRequest(handle, contact_box), m.Empty)

    async def lookup(self, handle: str) -> m.HandleLookupResponse:
        return await self.call(
            "POST", r.HANDLE_LOOKUP, m.HandleLookupRequest(handle), m.HandleLookupResponse
        )

    @contextlib.asynccontextmanager
    async def websocket(
        self, after: int = 0, *, headers: dict[str, str] | None = None
    ) -> AsyncIterator[PushSocket]:
        """A signed WebSocket to the client's queue."""
        target = f"{r.QUEUE_WEBSOCKET}?after={after}"
        all_headers = self.sign("GET", target, b"") if headers is None else headers
        url = str(self.http.base_url).rstrip("/").replace("http", "ws", 1) + target
        async with aconnect_ws(url, self.http, headers=all_headers) as ws:
            yield PushSocket(ws)


class PushSocket:
    """The client side of the push WebSocket."""

    def __init__(self, ws: AsyncWebSocketSession) -> None:
        self.ws = ws

    async def next_frame(self, timeout: float = 10.0) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(await self.ws.receive_text(timeout=timeout))
        return frame

    async def messages(self, count: int, timeout: float = 10.0) -> list[m.QueueMessage]:
        """The next ``count`` pushed messages."""
        got: list[m.QueueMessage] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            frame = await self.next_frame(max(0.01, deadline - time.monotonic()))
            if frame.get("type") == "messages":
                got.extend(m.PushMessages.from_json(frame).messages)
        return got

    async def ack(self, up_to: int) -> m.PushAcked:
        await self.ws.send_text(m.PushAck("ack", up_to).dumps().decode())
        while True:
            frame = await self.next_frame()
            if frame.get("type") == "acked":
                return m.PushAcked.from_json(frame)
