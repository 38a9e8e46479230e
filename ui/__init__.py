"""The desktop app: PySide6 Widgets on a qasync event loop.

It renders and dispatches only (architecture guide, "The desktop app"):
every action awaits one :class:`messenger.client.MessengerClient`
coroutine, and views refresh from the client's events, which
:mod:`ui.bridge` turns into Qt signals. ``ui`` imports nothing from
``messenger`` but the public names of :mod:`messenger.client`
(``tests/test_layering.py``).
"""

from __future__ import annotations
