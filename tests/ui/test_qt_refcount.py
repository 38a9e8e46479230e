"""The PySide6 6.12 / Python 3.11 fault: void Qt calls must not leak ``None``.

PySide6-Essentials 6.12.0 on Python 3.11 drops one reference to ``None``
for every Qt call that returns nothing; after a few thousand calls the
process dies with "Fatal Python error: none_dealloc" (architecture guide,
"Facts about the GUI stack"). pyproject.toml pins ``<6.12`` while 3.11 is
supported; this test catches a version that has the fault, whatever the pin.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

from PySide6.QtWidgets import QApplication, QWidget

CALLS = 20_000
#: References to None that may come and go meanwhile for other reasons.
NOISE = 100


def references_lost(call: Callable[[int], object], times: int) -> int:
    """How many references to ``None`` disappear over ``times`` calls of ``call``."""
    call(0)  # first-call caches are not the fault
    before = sys.getrefcount(None)
    for i in range(times):
        call(i)
    return before - sys.getrefcount(None)


def test_void_qt_calls_keep_the_refcount_of_none(qapp: QApplication) -> None:
    widget = QWidget()
    try:
        lost = references_lost(lambda i: widget.setToolTip("a" if i % 2 else "b"), CALLS)
    finally:
        widget.deleteLater()
    assert lost < NOISE, f"None lost {lost} references in {CALLS} void Qt calls"


def test_the_measure_sees_the_fault() -> None:
    """A call that drops a reference to None, as the faulty binding does, is caught."""
    decref = ctypes.pythonapi.Py_DecRef
    decref.argtypes = [ctypes.py_object]
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    times = 1000
    incref(None)  # the warm-up call's drop, paid in advance
    for _ in range(times):
        incref(None)  # paid in advance, so None never goes below its real count
    lost = references_lost(lambda i: decref(None), times)
    assert lost >= times - NOISE
