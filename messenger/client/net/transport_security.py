"""Transport security: no plain HTTP off this computer, and whose certificates to trust.

* :func:`check_server_security` refuses a plain ``http://`` server URL
  unless its host is loopback (``127.0.0.0/8``, ``::1``, ``localhost`` and
  names under ``.localhost``, RFC 6761 §6.3), or the user allowed insecure
  HTTP explicitly (``allow_insecure_http``). The check reads the URL only,
  so the refusal comes before any connection or name lookup. The push
  socket's URL is derived from the same checked URL (``https`` gives
  ``wss``), and redirects are never followed, so neither can drop to plain
  text later.
* :func:`ssl_context` is the TLS configuration of every connection: httpx's
  default trust (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else the
  certifi bundle), plus the certificates of the file
  named by ``MESSENGER_CA_FILE`` -- a self-hoster's private certificate
  authority -- added on top. Hostname checking and certificate
  verification are always on.
* :func:`untrusted_certificate` tells whether a connection failed because
  the server's certificate did not verify, so the error seam
  (:mod:`.error_mapping`) can say so in a sentence.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import ssl
from typing import Final
from urllib.parse import urlsplit

import httpx

from ..errors import CertificateAuthorityFileError, InsecureServerAddressError

__all__ = [
    "CA_FILE_ENV",
    "check_server_security",
    "is_loopback_host",
    "ssl_context",
    "untrusted_certificate",
]

#: The environment variable naming extra trusted CA certificates (PEM).
CA_FILE_ENV: Final = "MESSENGER_CA_FILE"


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a URL's host, brackets allowed) is this computer by its form alone.

    A literal loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``
    and names under it (RFC 6761 §6.3 reserves them for loopback). Other
    names are not looked up: what they resolve to can change.
    """
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_server_security(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse a plain ``http://`` URL to another computer (InsecureServerAddressError).

    ``url`` is a normalized server URL (``scheme://host[:port]``).
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or allow_insecure_http:
        return
    if not is_loopback_host(parts.hostname or ""):
        raise InsecureServerAddressError(
            f"refusing plain http to {parts.hostname!r}: not a loopback address"
        )


def ssl_context() -> ssl.SSLContext:
    """The TLS settings for connections to servers (see the module docstring).

    One context per set of trust settings is built and shared (building one
    reads the whole CA bundle).
    """
    env = os.environ
    return _context(
        env.get("SSL_CERT_FILE") or None,
        env.get("SSL_CERT_DIR") or None,
        env.get(CA_FILE_ENV) or None,
    )


@functools.lru_cache(maxsize=8)
def _context(cert_file: str | None, cert_dir: str | None, extra: str | None) -> ssl.SSLContext:
    # httpx's own default: SSL_CERT_FILE, else SSL_CERT_DIR, else certifi's bundle
    # (cert_file and cert_dir are part of the cache key only).
    del cert_file, cert_dir
    context = httpx.create_ssl_context(verify=True, trust_env=True)
    if extra:
        try:
            context.load_verify_locations(cafile=extra)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateAuthorityFileError(
                f"{CA_FILE_ENV} names a file that is not readable PEM certificates: "
                f"{type(exc).__name__}"
            ) from None
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is a failed certificate check."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
