"""``python -m messenger.client`` is ``messenger-cli``."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
