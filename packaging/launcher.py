"""The frozen app's entry point: the desktop app, or the local server it starts.

In a PyInstaller build ``sys.executable`` is the app itself, so when the app
runs a server on this computer (``messenger.client.start_local_server``
runs ``sys.executable -m messenger.server``), this program is started again
with ``-m messenger.server``: it then runs the server instead of the app.
(This lives here, not in ``ui``, which may not import ``messenger.server``.)
"""

from __future__ import annotations

import contextlib
import sys


def _attach_stdio() -> None:
    """A windowed build (``console=False``) has ``sys.stdout``/``stderr`` of None.

    When its parent passed it pipes or files anyway (the smoke run,
    ``packaging/smoke_bundle.py``; a user's ``messenger > log``), write there.
    """
    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is None:
            # no such handle: stay silent, as pythonw does
            with contextlib.suppress(OSError):
                stream = open(fd, "w", encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
                setattr(sys, name, stream)


def run() -> int:
    _attach_stdio()
    if sys.argv[1:3] == ["-m", "messenger.server"]:
        del sys.argv[1:3]
        from messenger.server.cli import main as server_main

        return server_main()
    from ui.__main__ import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
