"""The frozen app's entry point: the desktop app, or the local server it starts.

In a PyInstaller build ``sys.executable`` is the app itself, so when the app
runs a server on this computer (``messenger.client.start_local_server``
runs ``sys.executable -m messenger.server``), this program is started again
with ``-m messenger.server``: it then runs the server instead of the app.
(This lives here, not in ``ui``, which may not import ``messenger.server``.)
"""

from __future__ import annotations

import sys


def run() -> int:
    if sys.argv[1:3] == ["-m", "messenger.server"]:
        del sys.argv[1:3]
        from messenger.server.cli import main as server_main

        return server_main()
    from ui.__main__ import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
