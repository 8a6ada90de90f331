"""Sandbox layers the host does not enforce are never skipped silently.

A test that needs a layer calls `require_layer(isolation, name)`: where the layer is missing it is
skipped and listed in a red terminal summary, or fails outright when LLMKIT_REQUIRE_SANDBOX=1 (CI)."""

from __future__ import annotations

import os

import pytest

_MISSING: dict[str, list[str]] = {}
LAYERS = (
    "network_namespace",
    "pid_namespace",
    "read_only_filesystem",
    "disk_budget",
    "memory_budget",
    "file_confinement",
    "seccomp",
)


@pytest.fixture(scope="session")
def isolation():
    from llmkit.core.sandbox import sandbox_isolation

    found = sandbox_isolation()
    for layer in LAYERS:
        if not found.get(layer):
            _MISSING.setdefault(layer, [])
    return found


def require_layer(isolation, layer: str, request: pytest.FixtureRequest | None = None) -> None:
    if isolation.get(layer):
        return
    test = request.node.nodeid if request is not None else "?"
    _MISSING.setdefault(layer, []).append(test)
    message = f"sandbox layer {layer!r} is not enforced on this host (see docs/security.md)"
    if os.environ.get("LLMKIT_REQUIRE_SANDBOX") == "1":
        pytest.fail(message + "; LLMKIT_REQUIRE_SANDBOX=1 requires it")
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter):
    if not _MISSING:
        return
    terminalreporter.write_sep("!", "SANDBOX LAYERS NOT ENFORCED ON THIS HOST", red=True, bold=True)
    for layer, tests in sorted(_MISSING.items()):
        suffix = f" (skipped: {', '.join(tests)})" if tests else ""
        terminalreporter.write_line(f"  {layer}: off{suffix}", red=True)
    terminalreporter.write_line("  what is then not enforced: docs/security.md; CI sets LLMKIT_REQUIRE_SANDBOX=1")
