"""The link code: a one-time secret shown as a short code and a QR code.

docs/devices.md §2 "The code": the existing device draws 15 random bytes
(120 bits) from :mod:`secrets`; the user types them as 24 Crockford
base32 characters in six groups of four, or scans the URI
``messenger://link?server=<server URL>&code=<24 characters>``.

Typed input ignores case, spaces and dashes and reads ``I``/``L`` as ``1``
and ``O`` as ``0`` (Crockford's decoding rules). Nothing else is accepted:
a code of the wrong length or with any other character is a
:class:`~messenger.client.errors.LinkCodeError` with a sentence for the user.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, quote, urlsplit

from ..errors import InvalidServerAddressError, LinkCodeError
from ..net.server_url import normalize_server_url

__all__ = [
    "CODE_CHARACTERS",
    "LINK_SCHEME",
    "SECRET_BYTES",
    "LinkCode",
    "new_link_code",
    "parse_link_code",
]

#: Bytes of the one-time secret S (120 bits: nothing to guess, no PAKE needed).
SECRET_BYTES: Final = 15
#: Characters of the code: 8 * SECRET_BYTES / 5.
CODE_CHARACTERS: Final = SECRET_BYTES * 8 // 5
LINK_SCHEME: Final = "messenger"

_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUES: Final = {c: i for i, c in enumerate(_ALPHABET)} | {"I": 1, "L": 1, "O": 0}
_GROUP: Final = 4
#: The longest text looked at (a URI with a long server name); more is refused unread.
_MAX_INPUT: Final = 2048


def _encode(secret: bytes) -> str:
    value = int.from_bytes(secret, "big")
    chars = [_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(CODE_CHARACTERS))]
    return "".join(chars)


def _format(characters: str) -> str:
    return "-".join(characters[i : i + _GROUP] for i in range(0, len(characters), _GROUP))


def _decode(typed: str) -> bytes:
    """The secret of a typed code (LinkCodeError if it is not one)."""
    cleaned = "".join(typed.split()).replace("-", "").upper()
    if len(cleaned) != CODE_CHARACTERS:
        raise LinkCodeError(
            f"a link code has {CODE_CHARACTERS} characters, not {len(cleaned)}",
            user_message=(
                f"A link code has {CODE_CHARACTERS} letters and digits; this one has "
                f"{len(cleaned)}."
            ),
        )
    value = 0
    for char in cleaned:
        digit = _VALUES.get(char)
        if digit is None:
            raise LinkCodeError(
                "a link code character outside Crockford base32",
                user_message=(
                    "A link code has only digits and the letters A to Z without U; "
                    "check what you typed."
                ),
            )
        value = (value << 5) | digit
    return value.to_bytes(SECRET_BYTES, "big")


@dataclass(frozen=True, slots=True)
class LinkCode:
    """A link code: the server to meet on (if known) and the secret as text.

    ``text`` is always the normal form ``XXXX-XXXX-XXXX-XXXX-XXXX-XXXX``.
    """

    server_url: str | None
    text: str

    def __post_init__(self) -> None:
        normal = _format(_encode(_decode(self.text)))
        if normal != self.text:
            object.__setattr__(self, "text", normal)
        if self.server_url is not None:
            object.__setattr__(self, "server_url", _server(self.server_url))

    @property
    def uri(self) -> str:
        """``messenger://link?server=...&code=...`` (the QR code's content)."""
        if self.server_url is None:
            raise LinkCodeError(
                "a link URI needs the server", user_message="The server is missing."
            )
        return f"{LINK_SCHEME}://link?server={quote(self.server_url, safe='')}&code={self.text}"

    @property
    def secret(self) -> bytes:
        """The one-time secret S (15 bytes)."""
        return _decode(self.text)

    def __repr__(self) -> str:  # the code is a secret: keep it out of logs
        return f"LinkCode(server_url={self.server_url!r}, text=<hidden>)"

    __str__ = __repr__


def _server(url: str) -> str:
    try:
        return normalize_server_url(url)
    except InvalidServerAddressError:
        raise LinkCodeError(
            "the link names no usable server",
            user_message="The server address in this link cannot be used.",
        ) from None


def new_link_code(server_url: str | None) -> LinkCode:
    """A fresh code with a secret from :mod:`secrets`."""
    return LinkCode(server_url, _format(_encode(secrets.token_bytes(SECRET_BYTES))))


def parse_link_code(text: str, *, server_url: str | None = None) -> LinkCode:
    """A link code from a scanned URI or typed text (LinkCodeError if malformed).

    A URI carries its server, which wins over ``server_url``; a typed code
    takes ``server_url`` (the server the user chose, possibly None).
    """
    if len(text) > _MAX_INPUT:
        raise LinkCodeError("a link code input too long to be one")
    stripped = text.strip()
    if stripped.lower().startswith(f"{LINK_SCHEME}:"):
        return _parse_uri(stripped)
    return LinkCode(server_url, text)


def _parse_uri(text: str) -> LinkCode:
    bad = LinkCodeError(
        "a malformed link URI",
        user_message="This link cannot be read; scan the code again or type it.",
    )
    try:
        parts = urlsplit(text)
    except ValueError:
        raise bad from None
    if parts.scheme.lower() != LINK_SCHEME or parts.netloc.lower() != "link":
        raise bad
    if parts.path not in ("", "/") or parts.fragment:
        raise bad
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise bad from None
    if set(query) != {"server", "code"} or any(len(v) != 1 for v in query.values()):
        raise bad
    return LinkCode(query["server"][0], query["code"][0])
