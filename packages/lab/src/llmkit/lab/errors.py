"""The lab's error: bad specs, a changed experiment on resume, a refused promotion."""

from llmkit.core.errors import LlmkitError


class LabError(LlmkitError):
    """Raised for bad experiment specs and registry operations; the CLI prints it without a traceback."""
