"""Diagnostics: lint findings over a rendered context and the per-call context log."""

from .lint import LintFinding, conflicting_instructions, directives, lint, superseded_assertions
from .log import ContextLog

__all__ = ["ContextLog", "LintFinding", "conflicting_instructions", "directives", "lint", "superseded_assertions"]
