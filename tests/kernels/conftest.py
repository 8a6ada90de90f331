"""Kernel tests: native ops against the references in llmkit.core.ops on fresh random inputs."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Fresh examples every run (hypothesis prints the failing example and how to reproduce it).
settings.register_profile(
    "kernels", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("kernels")
