"""Project-wide test configuration.

Hypothesis profiles: ``dev`` (default) and ``ci`` (a little smaller, set by
``.ci/run`` through ``HYPOTHESIS_PROFILE``). Neither has a deadline: this
machine is noisy and tests must not be timed.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
