"""Which backend `llmkit agent run` uses when none is named: one the installed packages provide, found through
core's backend registry (`llmkit_register_backends`). llmkit-serve is not a dependency of llmkit-orchestrate,
so the engine is the default only where it is installed."""

from __future__ import annotations

from collections.abc import Collection

from llmkit.core import plugins

from .errors import OrchestrateError

# In order of preference: the engine (llmkit-serve: batched, constrains tool calls to the tools' schemas), then
# core's reference backend (the textbook generate(): slow, tool calls parsed from free text).
LOCAL_BACKENDS = ("engine", "reference")
REFERENCE_NOTE = (
    "llmkit: using the reference backend (core's textbook generate(): slow, tool calls not constrained) because "
    "llmkit-serve's engine is not installed; install llmkit-serve for the engine, or choose a backend with --backend"
)


def default_backend(installed: Collection[str]) -> tuple[str, str | None]:
    """(the backend to use when none is named, a note for the user or None). An error, naming what is installed,
    when no local backend is: the others (openai, a plugin's) need options only the user can give."""
    for name in LOCAL_BACKENDS:
        if name in installed:
            return name, REFERENCE_NOTE if name == "reference" else None
    if not installed:
        raise OrchestrateError(
            "no model backend is installed: install llmkit-serve for the local engine (pip install llmkit-serve), or "
            "a plugin that registers a backend (`llmkit plugins` lists what is installed)"
        )
    raise OrchestrateError(
        "no local model backend is installed (engine: llmkit-serve; reference: llmkit-core); choose one of the "
        f"installed backends with --backend: {', '.join(sorted(installed))}"
    )


def choose_backend(requested: str | None) -> tuple[str, str | None]:
    """(the backend's name, a note for the user or None): `requested`, or the default when it is None."""
    if requested is not None:
        return requested, None
    return default_backend(plugins.registry("backends").names())
