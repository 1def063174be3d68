"""Hypothesis settings of the fuzz tests: bounded and deterministic in ``make test``; many more
random examples under ``make fuzz`` (``SKILLSWITCH_FUZZ=1``).

Per test, never a global profile: loading one here would change every other hypothesis test
of the session."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ = os.environ.get("SKILLSWITCH_FUZZ") == "1"


def fuzz_settings(examples: int, fuzz_examples: int, **more: object) -> settings:
    """``examples`` derandomized (the same inputs every run, no example database) in the
    bounded run; ``fuzz_examples`` random ones under ``make fuzz``."""
    return settings(
        max_examples=fuzz_examples if FUZZ else examples,
        derandomize=not FUZZ,
        database=None,
        deadline=None,  # timed by each test's own bounds: the machines are shared and noisy
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=FUZZ,
        **more,  # type: ignore[arg-type]
    )
