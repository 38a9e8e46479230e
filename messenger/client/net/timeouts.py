"""How long the client waits for the server.

Its own module, free of httpx, so that :class:`~messenger.client.client.ClientOptions`
can name the default without loading the network stack (the desktop app's
cold start imports it only once the window shows).
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_TIMEOUT"]

#: Seconds for connecting and for each read (long polls add their wait).
DEFAULT_TIMEOUT: Final = 30.0
