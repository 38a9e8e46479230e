"""A messenger server on this computer, for trying the app or a local network.

"Run a server on this computer" (onboarding) and ``--local-server`` start
``python -m messenger.server`` through
:func:`messenger.client.start_local_server`: embedded SQLite in the data
directory's ``local-server/`` folder, listening on 127.0.0.1. The port is
remembered in ``local-server/port`` so that the accounts made on it find it
again at the next start (an account stores its server's URL); when that
port is taken by something else, a free one is used and remembered
instead (the accounts on the old port then need that port back).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Final

from messenger.client import default_data_dir, start_local_server

__all__ = ["FOLDER", "LocalServerStarter"]

log = logging.getLogger(__name__)

#: The local server's folder inside the data directory.
FOLDER: Final = "local-server"
_PORT_FILE: Final = "port"


class LocalServerStarter:
    """Starts the local server once and keeps it running until :meth:`stop`."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self._directory = (data_dir or default_data_dir()) / FOLDER
        self._stack: contextlib.AsyncExitStack | None = None
        self._url: str | None = None

    @property
    def directory(self) -> Path:
        """Where the server keeps its database and this starter its port."""
        return self._directory

    @property
    def url(self) -> str | None:
        """The running server's URL (None when it is not running)."""
        return self._url

    def remembered_port(self) -> int:
        """The port used last time (0: none yet)."""
        try:
            port = int((self._directory / _PORT_FILE).read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return 0
        return port if 0 < port < 65536 else 0

    def _remember(self, port: int) -> None:
        path = self._directory / _PORT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(f"{port}\n", encoding="ascii")
        os.replace(tmp, path)

    async def start(self) -> str:
        """Start the server (if not running yet); its URL."""
        if self._url is not None:
            return self._url
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        port = self.remembered_port()
        stack = contextlib.AsyncExitStack()
        if port and not _port_free(port):
            log.warning("the local server's remembered port is taken; using a free one")
            port = 0
        try:
            url = await stack.enter_async_context(start_local_server(self._directory, port=port))
        except BaseException:
            await stack.aclose()
            raise
        self._remember(int(url.rsplit(":", 1)[1]))
        self._stack = stack
        self._url = url
        log.info("local server running")
        return url

    async def stop(self) -> None:
        """Stop the server (nothing happens when it is not running)."""
        stack, self._stack = self._stack, None
        self._url = None
        if stack is not None:
            await stack.aclose()
            log.info("local server stopped")


def _port_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound (as the server binds it)."""
    with socket.socket() as sock:
        if os.name == "posix":  # a port in TIME_WAIT is free for the server
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
