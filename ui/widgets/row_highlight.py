"""The rounded background of a selected or hovered row in a painted list.

The conversation list, search results and the emoji grid draw their rows
themselves (delegates); they share this one rule for how selection and
hover look, so the three lists stay alike.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QStyle

from ui.theme import Colors


def paint_row_highlight(
    painter: QPainter, rect: QRectF, state: QStyle.StateFlag, colors: Colors, radius: float
) -> None:
    """Fill ``rect`` with the selection colour, or the hover colour, or nothing."""
    if state & QStyle.StateFlag.State_Selected:
        fill = colors.selection
    elif state & QStyle.StateFlag.State_MouseOver:
        fill = colors.hover
    else:
        return
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(fill)
    painter.drawRoundedRect(rect, radius, radius)
