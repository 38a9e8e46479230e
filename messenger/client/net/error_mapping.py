"""The one seam where transport failures become typed client errors.

Architecture guide, convention 5: every exception of httpx and httpx-ws,
and every error body of the API (``{"error": {"code", ...}}``, see
:mod:`messenger.api.errors`), is turned into a
:class:`~messenger.client.errors.NetworkError` here and nowhere else. The
HTTP transport (:mod:`.http`) and the push socket (:mod:`.push`) both go
through :func:`transport_errors` and :func:`error_from_response`.

* unreachable, reset, timed out, 5xx -> :class:`ServerUnavailableError`
  (retry later);
* a URL that cannot be used -> :class:`InvalidServerAddressError`;
* a server certificate that does not verify -> :class:`UntrustedCertificateError`;
* an answer that does not follow the API -> :class:`ProtocolError`;
* ``device_replaced`` -> :class:`DeviceReplacedError` (a :class:`ClientError`,
  not a :class:`NetworkError`: a restored copy took the account over, and
  no retry can help); ``device_removed`` -> :class:`DeviceRemovedError` (its
  kind: another device of the account removed this one);
* 401 -> :class:`AuthError`; 429 -> :class:`RateLimitedError`;
  ``stale_epoch`` -> :class:`StaleEpochError`;
* ``quota_exceeded``, ``no_space`` -> :class:`AttachmentQuotaError`;
  ``blob_too_large`` -> :class:`AttachmentTooLargeError` (not retried);
* other refusals -> :class:`ServerRejectedError` or one of its kinds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Final

import httpx
import httpx_ws

from messenger.api.errors import ApiError, ErrorCode

from ..errors import (
    AttachmentQuotaError,
    AttachmentTooLargeError,
    AuthError,
    ClientError,
    ContactTokenError,
    DeviceRemovedError,
    DeviceReplacedError,
    GroupExistsError,
    HandleTakenError,
    InvalidServerAddressError,
    NoKeyPackageError,
    NotAMemberError,
    OutdatedClientError,
    ProtocolError,
    RateLimitedError,
    ServerRejectedError,
    ServerUnavailableError,
    SignupRefusedError,
    StaleEpochError,
    UnknownAccountError,
    UnknownGroupError,
    UntrustedCertificateError,
)
from .transport_security import untrusted_certificate

__all__ = ["error_from_api", "error_from_response", "transport_errors"]

_AUTH: Final = frozenset(
    {
        ErrorCode.AUTH_MISSING,
        ErrorCode.AUTH_INVALID,
        ErrorCode.AUTH_EXPIRED,
        ErrorCode.AUTH_REPLAYED,
    }
)
_KINDS: Final[Mapping[ErrorCode, type[ServerRejectedError]]] = {
    ErrorCode.HANDLE_TAKEN: HandleTakenError,
    ErrorCode.SIGNUP_CLOSED: SignupRefusedError,
    ErrorCode.INVITE_REQUIRED: SignupRefusedError,
    ErrorCode.INVITE_INVALID: SignupRefusedError,
    ErrorCode.UNKNOWN_ACCOUNT: UnknownAccountError,
    ErrorCode.NO_KEY_PACKAGE: NoKeyPackageError,
    ErrorCode.CONTACT_TOKEN_INVALID: ContactTokenError,
    ErrorCode.NOT_A_MEMBER: NotAMemberError,
    ErrorCode.UNKNOWN_GROUP: UnknownGroupError,
    ErrorCode.GROUP_EXISTS: GroupExistsError,
    ErrorCode.OUTDATED_CLIENT: OutdatedClientError,
}
#: When a 429 names no delay.
_DEFAULT_RETRY_AFTER: Final = 5.0


def _retry_after(error: ApiError, header: str | None) -> float:
    value = error.details.get("retry_after")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            pass
    return _DEFAULT_RETRY_AFTER


def error_from_api(error: ApiError, *, retry_after: str | None = None) -> ClientError:
    """The client error for an API error (from a response body or a push frame)."""
    code = error.code
    if code is ErrorCode.DEVICE_REPLACED:
        return DeviceReplacedError(f"{code}: {error.message}")
    if code is ErrorCode.DEVICE_REMOVED:
        return DeviceRemovedError(f"{code}: {error.message}")
    if code is ErrorCode.STALE_EPOCH:
        current = error.details.get("current_epoch")
        if not isinstance(current, int) or isinstance(current, bool) or current < 0:
            return ProtocolError("stale_epoch without a current_epoch")
        return StaleEpochError(current, error.message)
    if code is ErrorCode.RATE_LIMITED:
        return RateLimitedError(_retry_after(error, retry_after), error.message)
    if code in _AUTH:
        return AuthError(f"{code}: {error.message}", code=str(code))
    if code in (ErrorCode.QUOTA_EXCEEDED, ErrorCode.NO_SPACE):  # docs/attachments.md §5
        return AttachmentQuotaError(f"{code}: {error.message}")
    if code is ErrorCode.BLOB_TOO_LARGE:
        return AttachmentTooLargeError(f"{code}: {error.message}")
    if code in (ErrorCode.INTERNAL, ErrorCode.UNAVAILABLE) or error.status >= 500:
        return ServerUnavailableError(f"{code}: {error.message}")
    kind = _KINDS.get(code, ServerRejectedError)
    return kind(str(code), error.message)


def error_from_response(
    status: int, content: bytes, headers: Mapping[str, str] | None = None
) -> ClientError:
    """The client error for a non-200 response."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    retry_after = None if headers is None else headers.get("retry-after")
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        if status >= 500:
            return ServerUnavailableError(f"HTTP {status} without an API error body")
        if status == 429:
            return RateLimitedError(_retry_after(ApiError(ErrorCode.RATE_LIMITED, ""), retry_after))
        return ProtocolError(
            f"HTTP {status} without an API error body: is this a Messenger server?",
        )
    return error_from_api(ApiError.from_json(body, status), retry_after=retry_after)


def _websocket_closed(exc: httpx_ws.WebSocketDisconnect) -> ClientError:
    """The server closed the push socket; 1008 carries an API error code."""
    if exc.code == 1008 and exc.reason:
        try:
            code = ErrorCode(exc.reason)
        except ValueError:
            return AuthError(f"push socket refused: {exc.reason}")
        return error_from_api(ApiError(code, "push socket refused"))
    return ServerUnavailableError(f"the push socket closed ({exc.code})")


def _upgrade_refused(response: httpx.Response) -> ClientError:
    """The client error for a refused WebSocket handshake.

    httpx-ws closes the response before raising, unread: the status (and
    ``Retry-After``) is then all there is to go by.
    """
    status = response.status_code
    if status < 400:
        return ProtocolError(f"no WebSocket upgrade (HTTP {status})")
    try:
        content = response.content
    except httpx.ResponseNotRead:
        if status == 401:
            return AuthError("the push socket was refused (HTTP 401)")
        content = b""
    return error_from_response(status, content, response.headers)


@contextlib.contextmanager
def transport_errors() -> Iterator[None]:
    """Map httpx and httpx-ws exceptions raised inside to :class:`NetworkError`."""
    try:
        yield
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise InvalidServerAddressError(str(exc)) from exc
    except httpx.TimeoutException as exc:
        raise ServerUnavailableError(f"timed out: {type(exc).__name__}") from exc
    except (httpx.DecodingError, httpx.TooManyRedirects) as exc:
        raise ProtocolError(str(exc)) from exc
    except httpx.HTTPError as exc:
        if untrusted_certificate(exc):
            raise UntrustedCertificateError(f"TLS: {exc}") from exc
        raise ServerUnavailableError(f"{type(exc).__name__}: {exc}") from exc
    except httpx_ws.WebSocketUpgradeError as exc:
        raise _upgrade_refused(exc.response) from exc
    except httpx_ws.WebSocketDisconnect as exc:
        raise _websocket_closed(exc) from exc
    except httpx_ws.WebSocketInvalidTypeReceived as exc:
        raise ProtocolError("the push socket sent a binary frame") from exc
    except httpx_ws.HTTPXWSException as exc:
        raise ServerUnavailableError(f"push socket failed: {type(exc).__name__}") from exc
    except OSError as exc:
        if untrusted_certificate(exc):
            raise UntrustedCertificateError(f"TLS: {exc}") from exc
        raise ServerUnavailableError(f"{type(exc).__name__}: {exc}") from exc
