"""Solvers: how a task asks the model (log-likelihood choice, generation, self-consistency, tool use)."""

from llmkit.core.scaling import majority_vote

from .base import Prompt, Solver, stable_seed
from .choice import MultipleChoice
from .generation import Generate, SelfConsistency
from .tools import ToolUse, tool_schema

__all__ = [
    "Generate",
    "MultipleChoice",
    "Prompt",
    "SelfConsistency",
    "Solver",
    "ToolUse",
    "majority_vote",
    "stable_seed",
    "tool_schema",
]
