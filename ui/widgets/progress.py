"""A determinate progress indicator: a thin bar and a caption saying how far.

Long work (the sign-up proof of work, backup export and restore) reports a
fraction from 0.0 to 1.0 through the client's ``progress`` callbacks, on the
event loop. :class:`ProgressIndicator` shows it as a bar over a range of
:data:`STEPS` and a caption ("About 60% (estimate)" for the proof of work,
which has no exact total, "60%" otherwise). An estimate is held below 100%
until :meth:`ProgressIndicator.finish`: only the end of the work says it is
done. Before the first report the bar is indeterminate (busy).

The caption is also the bar's accessible description, so a screen reader
reads the same words as the eye.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

__all__ = ["ESTIMATE_CAP", "STEPS", "ProgressIndicator", "progress_caption"]

#: The bar's range: fine enough for a smooth bar, coarse enough to skip repaints.
STEPS = 1000
#: The highest fraction an estimate shows before the work says it is done.
ESTIMATE_CAP = 0.99


def progress_caption(fraction: float, *, estimate: bool) -> str:
    """The words for ``fraction`` (already capped): "About 60% (estimate)" or "60%"."""
    percent = int(fraction * 100)
    if fraction >= 1.0:
        return "Done"
    if estimate:
        return f"About {percent}% (estimate)"
    return f"{percent}%"


class ProgressIndicator(QWidget):
    """A determinate bar with a caption; busy until the first fraction arrives."""

    def __init__(
        self, accessible: str, *, estimate: bool = False, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._estimate = estimate
        self._fraction = 0.0
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(6)
        self.bar.setAccessibleName(accessible)
        self.caption = QLabel()
        self.caption.setProperty("class", "caption")
        self.caption.setAccessibleName(f"{accessible}: progress")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.bar)
        layout.addWidget(self.caption)
        self.reset()

    @property
    def fraction(self) -> float:
        """The fraction shown (after the cap), 0.0 while busy."""
        return self._fraction

    @property
    def estimate(self) -> bool:
        return self._estimate

    def reset(self, *, estimate: bool | None = None) -> None:
        """Back to busy (indeterminate) with no caption, before new work starts."""
        if estimate is not None:
            self._estimate = estimate
        self._fraction = 0.0
        self.bar.setRange(0, 0)
        self.caption.clear()
        self.caption.hide()
        self.bar.setAccessibleDescription("Working")

    def set_fraction(self, fraction: float) -> None:
        """Show ``fraction`` of the work done (an estimate stays below 100%)."""
        if fraction >= 1.0:
            self.finish()
            return
        if self._estimate:
            fraction = min(fraction, ESTIMATE_CAP)
        fraction = max(fraction, 0.0)
        self._fraction = fraction
        self._show(fraction)

    def finish(self) -> None:
        """The work is done: a full bar."""
        self._fraction = 1.0
        self._show(1.0)

    def _show(self, fraction: float) -> None:
        if self.bar.maximum() != STEPS:
            self.bar.setRange(0, STEPS)
        self.bar.setValue(round(fraction * STEPS))
        text = progress_caption(fraction, estimate=self._estimate)
        self.caption.setText(text)
        self.caption.show()
        self.bar.setAccessibleDescription(text)
