"""Errors llmkit-eval raises on bad input: one line, printed by the CLI without a traceback."""

from llmkit.core.errors import LlmkitError


class EvalError(LlmkitError):
    """A task, dataset, run directory or option that llmkit-eval cannot use as given."""
