"""Contact addresses: ``handle@server`` and invite links.

A contact is found on the server either by handle (``alice@chat.example.org``,
or just ``alice`` on this client's own server) or by an invite link that
someone shared, which names their account directly and works without a
handle::

    messenger://add?server=https%3A%2F%2Fchat.example.org&account=<id>&handle=alice&token=<t>

``token`` is the account's contact token (unpadded base64url, 32 bytes;
docs/metadata.md §1, :mod:`.contact_tokens`): a claim of the account's
KeyPackages needs it. Links from before have none and still parse; a link
whose token is not 32 bytes of base64url is refused.

The server part must be this client's server: servers do not federate.
Servers compare by host and port, not by scheme.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, urlencode, urlsplit

from .errors import InvalidAddressError, InvalidServerAddressError
from .net.server_url import normalize_server_url

__all__ = [
    "INVITE_SCHEME",
    "ContactAddress",
    "check_handle",
    "invite_link",
    "parse_address",
    "same_server",
    "server_host",
]

INVITE_SCHEME: Final = "messenger"
_ACCOUNT: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A contact token in a link: 32 bytes, unpadded base64url (43 characters).
_TOKEN_BYTES: Final = 32
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{43}")


@functools.cache
def _handle_pattern() -> re.Pattern[str]:
    # The API's pattern, compiled on first use: its module (the API's
    # models) is not loaded for reading the store (the desktop app's start).
    from messenger.api.models import HANDLE_PATTERN

    return re.compile(HANDLE_PATTERN)


def check_handle(handle: str) -> str:
    """``handle`` if it is a valid handle (lower-cased), else InvalidAddressError."""
    value = handle.strip().lower()
    if not _handle_pattern().fullmatch(value):
        raise InvalidAddressError(
            f"invalid handle {handle!r}",
            user_message="A handle has 3 to 32 lower-case letters, digits, dots, dashes or "
            "underscores, and starts with a letter or a digit.",
        )
    return value


@dataclass(frozen=True, slots=True)
class ContactAddress:
    """Where to find a contact: a handle or an account, on a server (None: ours)."""

    server: str | None
    handle: str | None = None
    account_id: str | None = None
    token: bytes | None = None
    """The account's contact token, if an invite link carried it."""


def server_host(url: str) -> str:
    """``host[:port]`` of a server URL."""
    return normalize_server_url(url).split("://", 1)[1]


def same_server(a: str, b: str) -> bool:
    """Whether two server URLs (or ``host[:port]``) name the same server."""
    try:
        return server_host(a) == server_host(b)
    except InvalidServerAddressError:
        return False


def parse_address(text: str) -> ContactAddress:
    """Parse ``handle``, ``handle@server`` or an invite link; InvalidAddressError if none."""
    value = text.strip()
    if value.lower().startswith(f"{INVITE_SCHEME}://"):
        parts = urlsplit(value)
        query = parse_qs(parts.query, keep_blank_values=True)
        server = query.get("server", [""])[0]
        account = query.get("account", [""])[0]
        handle = query.get("handle", [None])[0]
        if parts.netloc != "add" or not server or not _ACCOUNT.fullmatch(account):
            raise InvalidAddressError(f"not an invite link: {text!r}")
        try:
            normalize_server_url(server)
        except InvalidServerAddressError:
            raise InvalidAddressError(f"bad server in invite link: {text!r}") from None
        token = _token(query.get("token"))
        return ContactAddress(server, check_handle(handle) if handle else None, account, token)
    handle, at, host = value.partition("@")
    if at and not host:
        raise InvalidAddressError(f"no server after @: {text!r}")
    if host:
        try:
            normalize_server_url(host)
        except InvalidServerAddressError:
            raise InvalidAddressError(f"bad server in address: {text!r}") from None
    return ContactAddress(host or None, check_handle(handle))


def _token(values: list[str] | None) -> bytes | None:
    """The contact token of a link's ``token`` parameter (None: none);
    InvalidAddressError if it is not one."""
    if values is None:
        return None
    value = values[0] if len(values) == 1 else ""
    if not _TOKEN.fullmatch(value):
        raise InvalidAddressError("an invite link with a malformed token")
    try:
        token = base64.urlsafe_b64decode(value + "=")
    except (binascii.Error, ValueError):
        raise InvalidAddressError("an invite link with a malformed token") from None
    if len(token) != _TOKEN_BYTES or _encode_token(token) != value:
        raise InvalidAddressError("an invite link with a malformed token")
    return token


def _encode_token(token: bytes) -> str:
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")


def invite_link(
    server_url: str, account_id: str, handle: str | None = None, token: bytes | None = None
) -> str:
    """The link that lets someone add this account as a contact; ``token``: the
    account's contact token (docs/metadata.md §1)."""
    query = {"server": normalize_server_url(server_url), "account": account_id}
    if handle:
        query["handle"] = handle
    if token is not None:
        query["token"] = _encode_token(token)
    return f"{INVITE_SCHEME}://add?{urlencode(query)}"
