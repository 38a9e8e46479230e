"""The API's routes: paths as constants and a table that describes each one.

Paths with ``{group_id}`` take the MLS group ID as unpadded base64url; build
them with :func:`group_path`. :data:`ROUTES` lists every HTTP route with
its method, models, whether it must be signed (:mod:`messenger.api.signing`)
and the error codes it can answer with; the server serves its OpenAPI
description from this table, so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from . import models as m
from .blobs import MAX_BLOB_PART_BYTES
from .errors import ErrorCode
from .fields import Field, Int, b64encode

__all__ = [
    "ACK",
    "BLOB",
    "BLOBS",
    "BLOB_DOWNLOAD_QUERY",
    "BLOB_FETCHED",
    "BLOB_STATUS",
    "BLOB_UPLOAD_QUERY",
    "CLAIM_KEY_PACKAGES",
    "CLIENT",
    "CLIENTS",
    "CLIENT_CERTIFICATE",
    "CLIENT_TAKEOVER",
    "CONTACT_QUEUE",
    "FETCH_QUERY",
    "GROUPS",
    "GROUP_COMMITS",
    "GROUP_INFO",
    "GROUP_MESSAGES",
    "GROUP_MESSAGES_BATCH",
    "GROUP_REJOIN_INFO",
    "GROUP_SEND_TOKEN",
    "HANDLE",
    "HANDLE_LOOKUP",
    "HEALTH",
    "KEY_PACKAGES",
    "KEY_PACKAGE_COUNT",
    "LINK",
    "LINKS",
    "LINK_FETCH_QUERY",
    "LINK_MESSAGES",
    "MAX_LONG_POLL_SECONDS",
    "METRICS",
    "OPENAPI",
    "QUEUE_ADDRESS",
    "QUEUE_KEY",
    "QUEUE_MESSAGES",
    "QUEUE_WEBSOCKET",
    "REGISTER",
    "REGISTER_CHALLENGE",
    "ROUTES",
    "SERVER_INFO",
    "Route",
    "blob_path",
    "client_path",
    "group_path",
    "link_path",
    "proves_queue",
    "rejoin_box_path",
]

SERVER_INFO: Final = "/v1/server"
REGISTER_CHALLENGE: Final = "/v1/register/challenge"
REGISTER: Final = "/v1/register"
CLIENTS: Final = "/v1/clients"
CLIENT_TAKEOVER: Final = "/v1/clients/takeover"
CLIENT_CERTIFICATE: Final = "/v1/clients/certificate"
CLIENT: Final = "/v1/clients/{client_id}"
LINKS: Final = "/v1/links"
LINK: Final = "/v1/links/{link_id}"
LINK_MESSAGES: Final = "/v1/links/{link_id}/messages"
HANDLE: Final = "/v1/account/handle"
HANDLE_LOOKUP: Final = "/v1/handles/lookup"
KEY_PACKAGES: Final = "/v1/key-packages"
KEY_PACKAGE_COUNT: Final = "/v1/key-packages/count"
CLAIM_KEY_PACKAGES: Final = "/v1/key-packages/claim"
QUEUE_MESSAGES: Final = "/v1/queue/messages"
QUEUE_ADDRESS: Final = "/v1/queue/address"
QUEUE_KEY: Final = "/v1/queue/key"
CONTACT_QUEUE: Final = "/v1/queue/contact"
ACK: Final = "/v1/queue/ack"
QUEUE_WEBSOCKET: Final = "/v1/queue/ws"
GROUPS: Final = "/v1/groups"
GROUP_COMMITS: Final = "/v1/groups/{group_id}/commits"
GROUP_MESSAGES: Final = "/v1/groups/{group_id}/messages"
GROUP_MESSAGES_BATCH: Final = "/v1/groups/{group_id}/messages/batch"
GROUP_INFO: Final = "/v1/groups/{group_id}/group-info"
GROUP_SEND_TOKEN: Final = "/v1/groups/{group_id}/send-token"  # noqa: S105 (a path)
GROUP_REJOIN_INFO: Final = "/v1/groups/{group_id}/rejoin-info"
REJOIN_BOX: Final = "/v1/rejoin-boxes/{handle}"
BLOBS: Final = "/v1/blobs"
BLOB: Final = "/v1/blobs/{blob_id}"
BLOB_STATUS: Final = "/v1/blobs/{blob_id}/status"
BLOB_FETCHED: Final = "/v1/blobs/{blob_id}/fetched"
HEALTH: Final = "/health"
METRICS: Final = "/metrics"
OPENAPI: Final = "/openapi.json"

#: The longest a long-poll fetch may wait for a message.
MAX_LONG_POLL_SECONDS: Final = 60


def group_path(template: str, group_id: bytes) -> str:
    """``template`` with ``{group_id}`` filled in."""
    return template.replace("{group_id}", b64encode(group_id))


def link_path(template: str, link_id: bytes) -> str:
    """``template`` with ``{link_id}`` filled in."""
    return template.replace("{link_id}", b64encode(link_id))


def blob_path(template: str, blob_id: bytes) -> str:
    """``template`` with ``{blob_id}`` filled in."""
    return template.replace("{blob_id}", b64encode(blob_id))


def rejoin_box_path(handle: bytes) -> str:
    """The path of one rejoin box, named by its ``handle``."""
    return REJOIN_BOX.replace("{handle}", b64encode(handle))


def client_path(client_id: str) -> str:
    """The path of one client of the signing client's account."""
    return CLIENT.replace("{client_id}", client_id)


@dataclass(frozen=True, slots=True)
class Route:
    """One HTTP route of the API."""

    method: str
    path: str
    summary: str
    response: type[m.Model] | None
    request: type[m.Model] | None = None
    signed: bool = True
    query: tuple[Field, ...] = ()
    errors: tuple[ErrorCode, ...] = ()
    raw_body: bool = False
    """The request body is raw bytes (``application/octet-stream``), not JSON."""
    raw_response: bool = False
    """A success answers with raw bytes (``application/octet-stream``), not JSON."""
    optional_body: bool = False
    """``request`` may be left out (an empty body): for a field added to a route
    that older clients call without a body."""
    queue_request: bool = False
    """Besides a client's signed request, the route takes a **queue request**:
    signed by the queue's own key alone, naming no client
    (:func:`~messenger.api.signing.queue_request`, docs/metadata.md §1)."""
    proves_queue: bool = False
    """A client's signed request to this route proves the client's queue (the
    queue key's signature, :data:`~messenger.api.signing.HEADER_QUEUE`), since
    the server needs the queue to answer it. The app proves its queue on these
    routes only, and the server shows a proof to no other route's handler, so
    the live server does not see a client's queue on every request it signs
    (docs/metadata.md §1)."""


_AUTH_NO_DEVICE: Final = (
    ErrorCode.AUTH_MISSING,
    ErrorCode.AUTH_INVALID,
    ErrorCode.AUTH_EXPIRED,
    ErrorCode.AUTH_REPLAYED,
    ErrorCode.RATE_LIMITED,
)
#: Every signed route but the takeover also checks the device token.
_AUTH: Final = (*_AUTH_NO_DEVICE, ErrorCode.DEVICE_REPLACED, ErrorCode.DEVICE_REMOVED)
_BODY: Final = (
    ErrorCode.MALFORMED_JSON,
    ErrorCode.INVALID_FIELD,
    ErrorCode.BODY_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
)
#: A client that is not a member gets ``unknown_group``, as for a group that
#: does not exist (docs/threat-model.md, "Attacks by other users").
_GROUP: Final = (ErrorCode.UNKNOWN_GROUP,)
_MLS: Final = (
    ErrorCode.INVALID_MESSAGE,
    ErrorCode.WRONG_MESSAGE_TYPE,
    ErrorCode.GROUP_MISMATCH,
    ErrorCode.OUTDATED_CLIENT,
)
#: A sealed send (docs/metadata.md §3) is not signed: a token that is not the
#: current epoch's gets ``unknown_group``, as for a group that does not exist.
_SEALED: Final = (ErrorCode.RATE_LIMITED,)

#: Fetch query parameters.
FETCH_QUERY: Final = (
    Int("after", optional=True, description="return messages with a larger seq (default 0)"),
    Int("limit", minimum=1, maximum=m.MAX_FETCH, optional=True),
    Int(
        "wait",
        maximum=MAX_LONG_POLL_SECONDS,
        optional=True,
        description="long poll: seconds to wait when the queue is empty",
    ),
)

#: Link fetch query parameters (docs/devices.md).
LINK_FETCH_QUERY: Final = (
    Int("after", optional=True, description="return messages with a larger seq (default 0)"),
    Int(
        "wait",
        maximum=MAX_LONG_POLL_SECONDS,
        optional=True,
        description="long poll: seconds to wait when there is nothing new",
    ),
)

#: Blob upload query parameters.
BLOB_UPLOAD_QUERY: Final = (
    Int("offset", description="where the part goes: the bytes received so far"),
)
#: Blob download query parameters.
BLOB_DOWNLOAD_QUERY: Final = (
    Int("offset", optional=True, description="the first byte (default 0)"),
    Int("length", minimum=1, maximum=MAX_BLOB_PART_BYTES, optional=True),
)

#: Every HTTP route (the WebSocket route is described in docs/server.md).
ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", HEALTH, "Liveness and database health", m.Health, signed=False),
    Route("GET", SERVER_INFO, "Server key, sign-up policy and limits", m.ServerInfo, signed=False),
    Route(
        "POST",
        REGISTER_CHALLENGE,
        "Get a proof-of-work challenge for registration",
        m.Challenge,
        signed=False,
        errors=(ErrorCode.SIGNUP_CLOSED, ErrorCode.RATE_LIMITED),
    ),
    Route(
        "POST",
        REGISTER,
        "Register an anonymous account and its first client",
        m.RegisterResponse,
        m.RegisterRequest,
        signed=False,
        errors=(
            *_BODY,
            ErrorCode.SIGNUP_CLOSED,
            ErrorCode.INVITE_REQUIRED,
            ErrorCode.INVITE_INVALID,
            ErrorCode.CHALLENGE_INVALID,
            ErrorCode.CHALLENGE_EXPIRED,
            ErrorCode.CHALLENGE_USED,
            ErrorCode.POW_INVALID,
            ErrorCode.PROOF_INVALID,
            ErrorCode.HANDLE_TAKEN,
            ErrorCode.KEY_IN_USE,
            ErrorCode.RATE_LIMITED,
        ),
    ),
    Route(
        "POST",
        CLIENTS,
        "Add a client (device) to the account",
        m.AddClientResponse,
        m.AddClientRequest,
        errors=(
            *_AUTH,
            *_BODY,
            ErrorCode.PROOF_INVALID,
            ErrorCode.KEY_IN_USE,
            ErrorCode.LIMIT_EXCEEDED,
        ),
    ),
    Route(
        "POST",
        CLIENT_TAKEOVER,
        "Take over the signing client: a restored copy replaces the others",
        m.Empty,
        m.TakeoverRequest,
        errors=(*_AUTH_NO_DEVICE, *_BODY, ErrorCode.KEY_IN_USE),
        proves_queue=True,
    ),
    Route(
        "POST",
        CLIENT_CERTIFICATE,
        "Give the signing client the account key's certificate (sets a missing account key)",
        m.ClientCredential,
        m.CertifyClientRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.PROOF_INVALID, ErrorCode.KEY_IN_USE),
    ),
    Route(
        "DELETE",
        CLIENT,
        "Remove a client (device) of the signing client's account, itself included",
        m.Empty,
        m.RemoveClientRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.NOT_FOUND, ErrorCode.LAST_DEVICE),
        optional_body=True,
    ),
    Route(
        "POST",
        LINKS,
        "Open a link mailbox for a new device of the account",
        m.CreateLinkResponse,
        m.CreateLinkRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.KEY_IN_USE, ErrorCode.LIMIT_EXCEEDED),
    ),
    Route(
        "POST",
        LINK_MESSAGES,
        "Post a sealed message: signed by the creator to the new device, unsigned to the creator",
        m.LinkPostResponse,
        m.LinkPostRequest,
        signed=False,
        errors=(*_AUTH, *_BODY, ErrorCode.NOT_FOUND, ErrorCode.LIMIT_EXCEEDED),
    ),
    Route(
        "GET",
        LINK_MESSAGES,
        "Fetch sealed messages: the creator (signed) or the new device (unsigned)",
        m.LinkMessages,
        signed=False,
        query=LINK_FETCH_QUERY,
        errors=(*_AUTH, ErrorCode.INVALID_FIELD, ErrorCode.NOT_FOUND),
    ),
    Route(
        "DELETE",
        LINK,
        "Close a link mailbox (its creator, or anyone holding its ID)",
        m.Empty,
        signed=False,
        errors=(*_AUTH, ErrorCode.NOT_FOUND),
    ),
    Route(
        "PUT",
        HANDLE,
        "Set the account's handle",
        m.Empty,
        m.SetHandleRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.HANDLE_TAKEN),
    ),
    Route("DELETE", HANDLE, "Remove the account's handle", m.Empty, errors=_AUTH),
    Route(
        "POST",
        HANDLE_LOOKUP,
        "Find an account by its exact handle",
        m.HandleLookupResponse,
        m.HandleLookupRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.UNKNOWN_ACCOUNT),
    ),
    Route(
        "POST",
        KEY_PACKAGES,
        "Upload KeyPackages (and the last-resort KeyPackage)",
        m.UploadKeyPackagesResponse,
        m.UploadKeyPackagesRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.INVALID_MESSAGE, ErrorCode.LIMIT_EXCEEDED),
        proves_queue=True,
    ),
    Route(
        "GET",
        KEY_PACKAGE_COUNT,
        "Count the signing client's unclaimed KeyPackages",
        m.KeyPackageCount,
        errors=_AUTH,
    ),
    Route(
        "POST",
        CLAIM_KEY_PACKAGES,
        "Claim one KeyPackage per client of an account",
        m.ClaimKeyPackagesResponse,
        m.ClaimKeyPackagesRequest,
        errors=(
            *_AUTH,
            *_BODY,
            ErrorCode.UNKNOWN_ACCOUNT,
            ErrorCode.NO_KEY_PACKAGE,
            ErrorCode.CONTACT_TOKEN_INVALID,
        ),
    ),
    Route(
        "GET",
        QUEUE_ADDRESS,
        "A fresh delivery address of the signing client's queue, for its leaves",
        m.QueueAddressResponse,
        errors=_AUTH,
        queue_request=True,
        proves_queue=True,
    ),
    Route(
        "PUT",
        QUEUE_KEY,
        "Give the signing client's queue a key of its own (the server then keeps no row "
        "joining the client to its queue)",
        m.Empty,
        m.QueueKeyRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.PROOF_INVALID, ErrorCode.KEY_IN_USE),
        proves_queue=True,
    ),
    Route(
        "PUT",
        CONTACT_QUEUE,
        "Give the signing client its contact queue, the one its KeyPackages name "
        "(the same queue again for the same key)",
        m.ContactQueueResponse,
        m.ContactQueueRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.PROOF_INVALID, ErrorCode.KEY_IN_USE),
    ),
    Route(
        "GET",
        QUEUE_MESSAGES,
        "Fetch messages after a cursor (long poll with wait)",
        m.FetchResponse,
        query=FETCH_QUERY,
        errors=(*_AUTH, ErrorCode.INVALID_FIELD),
        queue_request=True,
        proves_queue=True,
    ),
    Route(
        "POST",
        ACK,
        "Delete fetched messages up to a sequence number",
        m.AckResponse,
        m.AckRequest,
        errors=(*_AUTH, *_BODY),
        queue_request=True,
        proves_queue=True,
    ),
    Route(
        "POST",
        GROUPS,
        "Register a new group at epoch 0",
        m.CreateGroupResponse,
        m.CreateGroupRequest,
        errors=(*_AUTH, *_BODY, ErrorCode.GROUP_EXISTS, *_MLS),
        proves_queue=True,
        queue_request=True,
    ),
    Route(
        "POST",
        GROUP_COMMITS,
        "Submit the commit for an epoch (exactly one per epoch wins); sealed (the token, "
        "no signature) or signed (external commits)",
        m.CommitResponse,
        m.CommitRequest,
        signed=False,
        errors=(
            *_SEALED,
            *_AUTH,
            *_BODY,
            *_GROUP,
            *_MLS,
            ErrorCode.STALE_EPOCH,
            ErrorCode.UNKNOWN_QUEUE,
            ErrorCode.MEMBER_NOT_CLAIMED,
            ErrorCode.PROOF_INVALID,
            ErrorCode.QUEUE_FULL,
            ErrorCode.NO_GROUP_INFO,
        ),
        proves_queue=True,
    ),
    Route(
        "POST",
        GROUP_MESSAGES,
        "Send an application message or proposal to the group (sealed: the token, no signature)",
        m.SendResponse,
        m.SendRequest,
        signed=False,
        errors=(*_SEALED, *_BODY, *_GROUP, *_MLS, ErrorCode.STALE_EPOCH, ErrorCode.QUEUE_FULL),
    ),
    Route(
        "POST",
        GROUP_MESSAGES_BATCH,
        "Send up to 100 application messages or proposals to the group, all or none",
        m.SendBatchResponse,
        m.SendBatchRequest,
        signed=False,
        errors=(
            *_SEALED,
            *_BODY,
            *_GROUP,
            *_MLS,
            ErrorCode.STALE_EPOCH,
            ErrorCode.QUEUE_FULL,
            ErrorCode.LIMIT_EXCEEDED,
        ),
    ),
    Route(
        "GET",
        GROUP_INFO,
        "Get the latest GroupInfo (members only: to rejoin by external commit)",
        m.GroupInfoResponse,
        errors=(*_AUTH, ErrorCode.UNKNOWN_GROUP, ErrorCode.NO_GROUP_INFO),
        proves_queue=True,
    ),
    Route(
        "POST",
        GROUP_REJOIN_INFO,
        "Read the latest GroupInfo with a key to the group's sealed state (to rejoin by "
        "external commit; a device of a member's account only)",
        m.GroupInfoResponse,
        m.RejoinInfoRequest,
        errors=(
            *_AUTH,
            *_BODY,
            ErrorCode.UNKNOWN_GROUP,
            ErrorCode.NO_GROUP_INFO,
        ),
        proves_queue=True,
    ),
    Route(
        "PUT",
        REJOIN_BOX,
        "Store the account's rejoin box of one group (replaces the one stored)",
        m.Empty,
        m.RejoinBox,
        errors=(*_AUTH, *_BODY),
    ),
    Route(
        "GET",
        REJOIN_BOX,
        "Read the account's rejoin box of one group",
        m.RejoinBoxResponse,
        errors=(*_AUTH, ErrorCode.INVALID_FIELD, ErrorCode.NOT_FOUND),
    ),
    Route(
        "DELETE",
        REJOIN_BOX,
        "Delete a rejoin box",
        m.Empty,
        errors=(*_AUTH, ErrorCode.INVALID_FIELD),
    ),
    Route(
        "PUT",
        GROUP_INFO,
        "Replace the GroupInfo of the current epoch",
        m.Empty,
        m.GroupInfoRequest,
        errors=(*_AUTH, *_BODY, *_GROUP, *_MLS, ErrorCode.STALE_EPOCH),
        proves_queue=True,
    ),
    Route(
        "PUT",
        GROUP_SEND_TOKEN,
        "Register the send token's digest for the current epoch, once (groups made before tokens)",
        m.Empty,
        m.SendTokenRequest,
        errors=(*_AUTH, *_BODY, *_GROUP, ErrorCode.STALE_EPOCH, ErrorCode.KEY_IN_USE),
        proves_queue=True,
    ),
    Route(
        "POST",
        BLOBS,
        "Reserve an attachment blob for a group (members only)",
        m.CreateBlobResponse,
        m.CreateBlobRequest,
        errors=(
            *_AUTH,
            *_BODY,
            *_GROUP,
            ErrorCode.BLOB_TOO_LARGE,
            ErrorCode.QUOTA_EXCEEDED,
            ErrorCode.NO_SPACE,
        ),
        proves_queue=True,
        queue_request=True,
    ),
    Route(
        "PUT",
        BLOB,
        "Upload the next part of a blob (its owner only: the queue that reserved it)",
        m.BlobStatus,
        signed=True,
        query=BLOB_UPLOAD_QUERY,
        raw_body=True,
        errors=(
            *_AUTH,
            ErrorCode.INVALID_FIELD,
            ErrorCode.BODY_TOO_LARGE,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.NOT_FOUND,
            ErrorCode.UNKNOWN_GROUP,
            ErrorCode.BLOB_OFFSET,
            ErrorCode.NO_SPACE,
        ),
        proves_queue=True,
        queue_request=True,
    ),
    Route(
        "GET",
        BLOB,
        "Download part of a complete blob (members of its group with the capability)",
        None,
        query=BLOB_DOWNLOAD_QUERY,
        raw_response=True,
        errors=(*_AUTH, ErrorCode.INVALID_FIELD, ErrorCode.NOT_FOUND, ErrorCode.UNKNOWN_GROUP),
        proves_queue=True,
        queue_request=True,
    ),
    Route(
        "DELETE",
        BLOB,
        "Delete a blob (its owner: a cancelled upload)",
        m.Empty,
        errors=(*_AUTH, ErrorCode.NOT_FOUND),
        proves_queue=True,
        queue_request=True,
    ),
    Route(
        "GET",
        BLOB_STATUS,
        "How much of a blob the server holds (its owner, or a member with the capability)",
        m.BlobStatus,
        errors=(*_AUTH, ErrorCode.NOT_FOUND, ErrorCode.UNKNOWN_GROUP),
        proves_queue=True,
        queue_request=True,
    ),
    Route(
        "POST",
        BLOB_FETCHED,
        "Record that the reader's queue has the blob (it is deleted once all have)",
        m.Empty,
        errors=(*_AUTH, ErrorCode.NOT_FOUND, ErrorCode.UNKNOWN_GROUP),
        proves_queue=True,
        queue_request=True,
    ),
)


def _pattern(template: str) -> re.Pattern[str]:
    """``template``'s path, each ``{name}`` standing for one segment."""
    return re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)))


#: The routes whose signed requests prove the client's queue (``Route.proves_queue``),
#: and the push WebSocket, whose signed handshake does too (docs/server.md).
_PROVING: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    *((route.method, _pattern(route.path)) for route in ROUTES if route.proves_queue),
    ("GET", _pattern(QUEUE_WEBSOCKET)),
)


def proves_queue(method: str, target: str) -> bool:
    """Whether a signed ``method target`` (path and query) proves the client's
    queue: a route with ``Route.proves_queue``, or the push WebSocket."""
    path = target.split("?", 1)[0]
    return any(verb == method and pattern.fullmatch(path) for verb, pattern in _PROVING)
