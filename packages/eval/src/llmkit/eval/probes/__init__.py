"""Probe suites for reward hacking and known failure modes."""

PROBE_TASKS: dict = {}
