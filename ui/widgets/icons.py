"""Icons of the bundled set, with a quiet fallback.

:func:`themed_icon` renders ``resources/icons/<name>.svg`` in the current
theme's ink (through :mod:`ui.resources`); a missing file gives an empty
icon rather than an error, so a view never fails for want of a glyph.
"""

from __future__ import annotations

import logging

from PySide6.QtGui import QColor, QIcon

from .. import resources, theme

log = logging.getLogger(__name__)


def themed_icon(name: str, color: QColor | str | None = None) -> QIcon:
    """Icon ``name`` in ``color`` (default: the theme's text colour)."""
    ink = QColor(color) if color is not None else theme.colors().text
    try:
        return resources.icon(name, color=ink)
    except (FileNotFoundError, ValueError):
        log.warning("no icon %r in the bundled set", name)
        return QIcon()
