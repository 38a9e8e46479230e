"""One app instance per profile: a second launch raises the first one's window.

The first instance listens on a local socket (:class:`QLocalServer`: a Unix
domain socket, a named pipe on Windows); a second launch for the same data
directory and profile connects to it, sends one line, and exits. The
socket's name is a hash of the data directory and the profile name, so it
does not tell other users which profiles exist, and on Unix it lives in a
directory only this user can enter (``$XDG_RUNTIME_DIR/messenger`` or
``<tmp>/messenger-<uid>``, mode 0700), with the socket itself limited to
this user (``UserAccessOption``). A socket left behind by a crashed
instance answers no one; it is removed and the new instance takes over.

A second launch with a ``messenger:`` link (``messenger messenger://add?...``,
what the desktop's ``x-scheme-handler/messenger`` runs) sends it after the
activation line, as ``link <url>``. The running instance trusts nothing it
reads there (any program of this user can connect): a line longer than
:data:`MAX_LINE` bytes, not UTF-8, or not an invite link
(:func:`forwarded_link`) is ignored with a log line that names the reason,
never the content, and :attr:`SingleInstance.link_received` carries only
links that parse.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from PySide6.QtCore import QByteArray, QObject, Signal
from PySide6.QtNetwork import QAbstractSocket, QLocalServer, QLocalSocket

__all__ = [
    "ACTIVATE",
    "LINK_PREFIX",
    "MAX_LINE",
    "SingleInstance",
    "forwarded_link",
    "instance_key",
    "link_message",
    "socket_directory",
    "socket_name",
]

log = logging.getLogger(__name__)

#: What a second instance sends: raise your window.
ACTIVATE: Final = b"activate\n"
#: What starts a line that forwards a ``messenger:`` link.
LINK_PREFIX: Final = b"link "
#: The longest line read from another launch, newline included; longer is dropped.
MAX_LINE: Final = 2048
_ACCOUNT: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_HANDLE: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: A device-link code: 24 Crockford base32 characters, maybe in dashed groups.
_LINK_CODE: Final = re.compile(r"[A-Za-z0-9-]{24,40}")
#: How long a second instance waits for the first to answer, in milliseconds.
_CONNECT_MS: Final = 1000
_WRITE_MS: Final = 1000


def instance_key(data_dir: Path | None, profile_name: str) -> str:
    """The key of one profile's instance: its data directory and name."""
    where = str(data_dir.expanduser().resolve()) if data_dir is not None else "<default>"
    return f"{where}\0{profile_name}"


def socket_directory() -> Path | None:
    """A directory only this user can enter, for the socket (None on Windows).

    Raises PermissionError when the per-user directory exists but belongs to
    someone else or is open to others (then nothing is placed there).
    """
    if sys.platform == "win32":  # pragma: no cover - named pipes have no directory
        return None
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        directory = Path(runtime) / "messenger"
    else:
        directory = Path(tempfile.gettempdir()) / f"messenger-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    info = directory.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise PermissionError(f"{directory} is not a private directory of this user")
    return directory


def socket_name(key: str) -> str:
    """The server name for ``key``: a full path on Unix, a pipe name on Windows."""
    digest = hashlib.sha256(b"messenger-single-instance\0" + key.encode("utf-8")).hexdigest()
    name = f"messenger-{digest[:32]}"
    directory = socket_directory()
    return name if directory is None else str(directory / name)


def forwarded_link(text: str) -> str | None:
    """``text`` if it is an invite link (``messenger://add?server=...&account=...``)
    or a device link (``messenger://link?server=...&code=...``, docs/devices.md §2),
    else None.

    Only the shape is checked here (the scheme, ``add``, an http(s) server, an
    account id, an optional handle); the client checks the rest when the
    contact is added.
    """
    value = text.strip()
    if not value or len(value.encode("utf-8")) > MAX_LINE or not value.isprintable():
        return None
    try:
        parts = urlsplit(value)
        query = parse_qs(parts.query, strict_parsing=True, max_num_fields=8)
    except ValueError:
        return None
    kind = parts.netloc.lower()
    if parts.scheme.lower() != "messenger" or kind not in ("add", "link"):
        return None
    if any(len(values) != 1 for values in query.values()):
        return None
    server = query.get("server", [""])[0]
    account = query.get("account", [""])[0]
    handle = query.get("handle", [None])[0]
    try:
        server_parts = urlsplit(server)
    except ValueError:
        return None
    if server_parts.scheme.lower() not in ("http", "https") or not server_parts.hostname:
        return None
    if kind == "link":
        code = query.get("code", [""])[0]
        if set(query) != {"server", "code"} or not _LINK_CODE.fullmatch(code):
            return None
        return value
    if not _ACCOUNT.fullmatch(account):
        return None
    if handle is not None and not _HANDLE.fullmatch(handle):
        return None
    return value


def link_message(link: str) -> bytes:
    """The line a second launch sends to forward ``link``."""
    return LINK_PREFIX + link.strip().encode("utf-8") + b"\n"


class SingleInstance(QObject):
    """:meth:`acquire` is True for the first instance; :attr:`activated` on a second launch.

    :attr:`link_received` carries a ``messenger:`` link a second launch forwarded
    (checked by :func:`forwarded_link`).
    """

    activated = Signal()
    link_received = Signal(str)

    def __init__(self, key: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._name: str | None
        try:
            self._name = socket_name(key)
        except OSError as exc:
            # e.g. someone else owns /tmp/messenger-<uid>: run, but as the only instance.
            log.warning("no private place for the single-instance socket (%s)", type(exc).__name__)
            self._name = None
        self._server: QLocalServer | None = None
        self._clients: list[QLocalSocket] = []

    @property
    def name(self) -> str | None:
        """The socket's name (None: no private place for it, so no single instance)."""
        return self._name

    @property
    def primary(self) -> bool:
        """Whether this object holds the instance (after a True :meth:`acquire`)."""
        return self._server is not None

    def acquire(self, link: str | None = None) -> bool:
        """Become the instance (True), or ask the running one to raise its window (False).

        ``link``: a ``messenger:`` link this launch was given, forwarded to the
        running instance with the request (when it is one).
        """
        if self._server is not None or self._name is None:
            return True
        message = ACTIVATE
        if link and forwarded_link(link) is not None:
            message += link_message(link)
        if self._signal_running(message):
            return False
        server = self._listen()
        if server is None:
            return True  # run anyway: only "raise the running window" is lost
        server.newConnection.connect(self._on_connection)
        self._server = server
        return True

    def _listen(self) -> QLocalServer | None:
        assert self._name is not None
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if server.listen(self._name):
            return server
        in_use = server.serverError() == QAbstractSocket.SocketError.AddressInUseError
        if in_use:
            # No one answered in _signal_running, so the socket is a crashed
            # instance's leftover: remove it and listen again.
            server.deleteLater()
            QLocalServer.removeServer(self._name)
            server = QLocalServer(self)
            server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
            if server.listen(self._name):
                return server
        log.warning("single-instance socket unavailable: %s", server.errorString())
        server.deleteLater()
        return None

    def _signal_running(self, message: bytes = ACTIVATE) -> bool:
        assert self._name is not None
        socket = QLocalSocket(self)
        try:
            socket.connectToServer(self._name)
            if not socket.waitForConnected(_CONNECT_MS):
                return False
            socket.write(QByteArray(message))
            socket.flush()
            socket.waitForBytesWritten(_WRITE_MS)
            socket.disconnectFromServer()  # after the bytes are written
            return True
        finally:
            socket.deleteLater()

    def _on_connection(self) -> None:
        server = self._server
        if server is None:
            return
        while server.hasPendingConnections():
            client = server.nextPendingConnection()
            if client is None:
                break
            self._clients.append(client)
            client.readyRead.connect(self._read_all)
            client.disconnected.connect(self._prune)
        self._read_all()

    def _read_all(self) -> None:
        for client in list(self._clients):
            while client.canReadLine():
                line = bytes(client.readLine(MAX_LINE + 1).data())
                if not line.endswith(b"\n"):
                    self._drop(client, f"a line over {MAX_LINE} bytes")
                    break
                self._handle_line(line)
            else:
                if client.bytesAvailable() > MAX_LINE:
                    self._drop(client, f"over {MAX_LINE} bytes without a line end")

    def _handle_line(self, line: bytes) -> None:
        if line == ACTIVATE:
            log.info("another launch asked to raise the window")
            self.activated.emit()
            return
        if not line.startswith(LINK_PREFIX):
            log.warning("ignored an unknown message from another launch (%d bytes)", len(line))
            return
        try:
            text = line[len(LINK_PREFIX) :].decode("utf-8")
        except UnicodeDecodeError:
            log.warning("ignored a forwarded link that is not UTF-8 (%d bytes)", len(line))
            return
        link = forwarded_link(text)
        if link is None:
            # Never the content: it may be an address, or anything at all.
            log.warning("ignored a forwarded link that is not an invite link (%d bytes)", len(line))
            return
        log.info("another launch forwarded an invite link")
        self.link_received.emit(link)

    def _drop(self, client: QLocalSocket, reason: str) -> None:
        log.warning("closed a connection from another launch: %s", reason)
        client.abort()

    def _prune(self) -> None:
        self._read_all()
        for client in list(self._clients):
            if client.state() == QLocalSocket.LocalSocketState.UnconnectedState:
                self._clients.remove(client)
                client.blockSignals(True)
                client.deleteLater()

    def release(self) -> None:
        """Stop being the instance (at exit); the socket file is removed."""
        clients, self._clients = self._clients, []
        for client in clients:
            client.blockSignals(True)
            client.abort()
            client.deleteLater()
        server, self._server = self._server, None
        if server is not None:
            server.blockSignals(True)
            server.close()
            server.deleteLater()
