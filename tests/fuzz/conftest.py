"""Hypothesis settings for the fuzz tests: deterministic (CI reruns try the same examples), no
example database on disk, no deadline (the machine is shared). Each property sets its own
max_examples so that the whole folder runs in well under 30 seconds."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "capture-ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("capture-ci")
