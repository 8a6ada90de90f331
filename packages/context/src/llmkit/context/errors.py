"""Errors llmkit-context raises on bad input or on model output it will not accept."""

from llmkit.core.errors import LlmkitError


class ContextError(LlmkitError, ValueError):
    """Bad input to a context component (unknown zone, bad budget, malformed session file)."""


class BudgetError(ContextError):
    """Content that must be kept (system, pinned items, the current turn) does not fit the token budget."""


class StructuredOutputError(LlmkitError):
    """The model never produced output that validates against the schema, after every retry."""
