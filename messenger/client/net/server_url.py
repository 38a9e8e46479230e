"""A server's URL in its normal form: ``scheme://host[:port]``.

Its own module, free of httpx, so that addresses and invite links
(:mod:`messenger.client.addresses`) can be made without loading the network
stack (the desktop app's cold start imports it only once the window shows).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import InvalidServerAddressError

__all__ = ["normalize_server_url"]


def normalize_server_url(url: str) -> str:
    """``scheme://host[:port]`` of a server URL; InvalidServerAddressError if unusable.

    A URL without a scheme is taken as ``https://``.
    """
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidServerAddressError(f"not a URL: {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidServerAddressError(f"not an http(s) URL: {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidServerAddressError(f"a server URL has no path: {url!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
