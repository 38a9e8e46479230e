"""Error codes of the client-server contract and their HTTP statuses.

Every error the server returns on purpose is a JSON body of the form::

    {"error": {"code": "stale_epoch", "message": "...", "details": {"current_epoch": 7}}}

with the HTTP status that :data:`HTTP_STATUS` gives for the code. Clients map
the body back to an :class:`ApiError` with :meth:`ApiError.from_json`, so
both sides raise and catch the same typed error. ``details`` holds only
machine-readable, non-secret values (a field name, the current epoch, a
retry delay).

The codes are stable strings: a client may switch on them. New codes may be
added; a client that meets an unknown code treats it by its HTTP status.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = [
    "HTTP_STATUS",
    "ApiError",
    "ErrorCode",
]


class ErrorCode(enum.StrEnum):
    """Every error code of the API (the ``error.code`` string)."""

    # 400: the request is malformed or breaks a rule of the contract.
    MALFORMED_JSON = "malformed_json"
    INVALID_FIELD = "invalid_field"
    INVALID_MESSAGE = "invalid_message"
    WRONG_MESSAGE_TYPE = "wrong_message_type"
    GROUP_MISMATCH = "group_mismatch"
    CHALLENGE_INVALID = "challenge_invalid"
    CHALLENGE_EXPIRED = "challenge_expired"
    POW_INVALID = "pow_invalid"
    PROOF_INVALID = "proof_invalid"
    UNKNOWN_QUEUE = "unknown_queue"
    LIMIT_EXCEEDED = "limit_exceeded"
    #: The request follows an older version of the contract (for example a
    #: bare MLS message where a padded one is needed): the app must be updated.
    OUTDATED_CLIENT = "outdated_client"
    # 401: the request is not authenticated; nothing was changed.
    AUTH_MISSING = "auth_missing"
    AUTH_INVALID = "auth_invalid"
    AUTH_EXPIRED = "auth_expired"
    AUTH_REPLAYED = "auth_replayed"
    #: The client was taken over by a restored copy (``POST /v1/clients/takeover``):
    #: this copy's device token is missing or no longer the current one.
    DEVICE_REPLACED = "device_replaced"
    #: The signing client was removed from its account by one of its devices.
    DEVICE_REMOVED = "device_removed"
    # 403: authenticated, but not allowed.
    SIGNUP_CLOSED = "signup_closed"
    INVITE_REQUIRED = "invite_required"
    INVITE_INVALID = "invite_invalid"
    NOT_A_MEMBER = "not_a_member"
    MEMBER_NOT_CLAIMED = "member_not_claimed"
    #: The account's KeyPackages are claimed with its contact token (an invite
    #: link, its handle or a shared group gives it): the claim had none, or
    #: another (docs/metadata.md §1).
    CONTACT_TOKEN_INVALID = "contact_token_invalid"  # noqa: S105 (an error code)
    # 404: the thing named does not exist.
    NOT_FOUND = "not_found"
    UNKNOWN_GROUP = "unknown_group"
    UNKNOWN_ACCOUNT = "unknown_account"
    NO_KEY_PACKAGE = "no_key_package"
    NO_GROUP_INFO = "no_group_info"
    # 405, 413, 415
    METHOD_NOT_ALLOWED = "method_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    # 409: conflicts the client can recover from.
    STALE_EPOCH = "stale_epoch"
    GROUP_EXISTS = "group_exists"
    HANDLE_TAKEN = "handle_taken"
    CHALLENGE_USED = "challenge_used"
    KEY_IN_USE = "key_in_use"
    #: The account's last device cannot be removed.
    LAST_DEVICE = "last_device"
    # 429
    RATE_LIMITED = "rate_limited"
    # 5xx
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    QUEUE_FULL = "queue_full"
    BLOB_TOO_LARGE = "blob_too_large"
    BLOB_OFFSET = "blob_offset"
    QUOTA_EXCEEDED = "quota_exceeded"
    NO_SPACE = "no_space"


#: The HTTP status of each error code.
HTTP_STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.MALFORMED_JSON: 400,
    ErrorCode.INVALID_FIELD: 400,
    ErrorCode.INVALID_MESSAGE: 400,
    ErrorCode.WRONG_MESSAGE_TYPE: 400,
    ErrorCode.GROUP_MISMATCH: 400,
    ErrorCode.CHALLENGE_INVALID: 400,
    ErrorCode.CHALLENGE_EXPIRED: 400,
    ErrorCode.POW_INVALID: 400,
    ErrorCode.PROOF_INVALID: 400,
    ErrorCode.UNKNOWN_QUEUE: 400,
    ErrorCode.LIMIT_EXCEEDED: 400,
    ErrorCode.OUTDATED_CLIENT: 400,
    ErrorCode.AUTH_MISSING: 401,
    ErrorCode.AUTH_INVALID: 401,
    ErrorCode.AUTH_EXPIRED: 401,
    ErrorCode.AUTH_REPLAYED: 401,
    ErrorCode.DEVICE_REPLACED: 401,
    ErrorCode.DEVICE_REMOVED: 401,
    ErrorCode.SIGNUP_CLOSED: 403,
    ErrorCode.INVITE_REQUIRED: 403,
    ErrorCode.INVITE_INVALID: 403,
    ErrorCode.NOT_A_MEMBER: 403,
    ErrorCode.MEMBER_NOT_CLAIMED: 403,
    ErrorCode.CONTACT_TOKEN_INVALID: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.UNKNOWN_GROUP: 404,
    ErrorCode.UNKNOWN_ACCOUNT: 404,
    ErrorCode.NO_KEY_PACKAGE: 404,
    ErrorCode.NO_GROUP_INFO: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.STALE_EPOCH: 409,
    ErrorCode.GROUP_EXISTS: 409,
    ErrorCode.HANDLE_TAKEN: 409,
    ErrorCode.CHALLENGE_USED: 409,
    ErrorCode.KEY_IN_USE: 409,
    ErrorCode.LAST_DEVICE: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.QUEUE_FULL: 507,
    ErrorCode.BLOB_TOO_LARGE: 413,
    ErrorCode.BLOB_OFFSET: 409,
    ErrorCode.QUOTA_EXCEEDED: 507,
    ErrorCode.NO_SPACE: 507,
}

_DetailValue = str | int | bool | None


class ApiError(Exception):
    """An error of the API, on either side of the wire.

    The server raises it to answer with ``code``'s status and body; a client
    builds it from a response with :meth:`from_json`. ``details`` carries
    machine-readable values, for example ``current_epoch`` with
    :attr:`ErrorCode.STALE_EPOCH` or ``field`` with
    :attr:`ErrorCode.INVALID_FIELD`.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        details: Mapping[str, _DetailValue] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, _DetailValue] = dict(details or {})

    @property
    def status(self) -> int:
        """The HTTP status that carries this error."""
        return HTTP_STATUS[self.code]

    @classmethod
    def invalid_field(cls, field: str, reason: str) -> ApiError:
        """An :attr:`ErrorCode.INVALID_FIELD` error naming ``field``."""
        return cls(ErrorCode.INVALID_FIELD, f"{field}: {reason}", {"field": field})

    def to_json(self) -> dict[str, object]:
        """The response body."""
        return {"error": {"code": str(self.code), "message": self.message, "details": self.details}}

    @classmethod
    def from_json(cls, body: object, status: int) -> ApiError:
        """The error that a response body describes.

        A body that does not follow the contract still gives an error: one
        whose code is derived from ``status`` (``internal`` for 5xx,
        ``invalid_field`` otherwise), so the caller always gets an ApiError.
        """
        fallback = ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_FIELD
        if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
            return cls(fallback, f"unexpected error response (HTTP {status})")
        error = body["error"]
        raw_code = error.get("code")
        message = error.get("message")
        raw_details = error.get("details")
        try:
            code = ErrorCode(raw_code)
        except ValueError:
            code = fallback
        details: dict[str, _DetailValue] = {}
        if isinstance(raw_details, dict):
            for key, value in raw_details.items():
                if isinstance(key, str) and isinstance(value, str | int | bool | type(None)):
                    details[key] = value
        return cls(code, message if isinstance(message, str) else str(raw_code), details)
