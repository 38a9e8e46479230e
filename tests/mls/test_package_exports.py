"""``messenger.mls`` exports its public names on first use (PEP 562).

Importing one lower layer (``messenger.mls.codec``, which the client's message
content needs before the desktop app's window shows) must not load the whole
protocol, and every public name must still be there, the same object as in
the module it comes from.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import messenger.mls as mls


def test_every_public_name_is_exported_from_its_module() -> None:
    sources = mls._SOURCES  # the table under test
    assert set(sources) == set(mls.__all__)
    for name in mls.__all__:
        module = importlib.import_module(sources[name], "messenger.mls")
        assert getattr(mls, name) is getattr(module, name), name
    assert set(mls.__all__) <= set(dir(mls))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Grup'"):
        mls.Grup  # noqa: B018 - the lookup is the test
    with pytest.raises(ImportError):
        from messenger.mls import Grup  # noqa: F401


def test_the_codec_alone_loads_no_protocol() -> None:
    probe = (
        "import sys, messenger.mls.codec; "
        "print(sorted(m for m in sys.modules if m.startswith('messenger.mls')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert out.strip() == "['messenger.mls', 'messenger.mls.codec', 'messenger.mls.errors']"
    probe = "import messenger.mls as m, sys; m.Group; print('messenger.mls.group' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    assert out.strip() == "True"
