"""The client's network layer: HTTP and push, with one error-mapping seam.

* :mod:`.http` -- :class:`Transport`: signed requests to the server's API;
* :mod:`.push` -- the push WebSocket (:class:`PushSocket`);
* :mod:`.signing` -- :class:`Signer` (``messenger.api.signing``);
* :mod:`.error_mapping` -- the one place where httpx/httpx-ws exceptions
  and API error bodies become typed client errors (architecture guide,
  convention 5);
* :mod:`.backoff` -- exponential backoff with jitter;
* :mod:`.transport_security` -- no plain HTTP off loopback (unless
  allowed), and the TLS trust (``MESSENGER_CA_FILE``).

Importing the package imports none of them (PEP 562,
:mod:`messenger.client.lazy_exports`): httpx is loaded with the first
name that needs it, not with :mod:`.backoff`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .backoff import Backoff
    from .error_mapping import error_from_api, error_from_response, transport_errors
    from .http import DEFAULT_TIMEOUT, Transport, normalize_server_url
    from .push import PushSocket, connect_push
    from .signing import Signer

__all__ = [
    "DEFAULT_TIMEOUT",
    "Backoff",
    "PushSocket",
    "Signer",
    "Transport",
    "connect_push",
    "error_from_api",
    "error_from_response",
    "normalize_server_url",
    "transport_errors",
]

_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    ".backoff": ("Backoff",),
    ".error_mapping": ("error_from_api", "error_from_response", "transport_errors"),
    ".http": ("DEFAULT_TIMEOUT", "Transport", "normalize_server_url"),
    ".push": ("PushSocket", "connect_push"),
    ".signing": ("Signer",),
}

if not TYPE_CHECKING:
    __getattr__, __dir__ = lazy_exports(__name__, globals(), _SOURCES)
