"""Errors llmkit-train raises on bad input: one clear line each (the CLI prints them without a traceback)."""

from llmkit.core.errors import InvalidParameterError, LlmkitError


class DataError(LlmkitError, ValueError):
    """A training record that is malformed, too long for the chosen truncation, or has nothing to learn from."""


class ConfigError(InvalidParameterError):
    """A training option that is unknown, of the wrong type or outside its range."""


class CheckpointError(LlmkitError):
    """A checkpoint that is missing, incomplete or does not belong to this run."""


class TrainingError(LlmkitError):
    """Training that cannot go on (a NaN loss, a process group that broke)."""
