"""Hierarchical orchestration: strategic -> tactical -> operational, with checked handoff packets."""

from .agent import HierarchicalAgent
from .schema import Decomposition, Objective, decomposition_model, decomposition_problems
from .state import HierarchyState

__all__ = [
    "Decomposition",
    "HierarchicalAgent",
    "HierarchyState",
    "Objective",
    "decomposition_model",
    "decomposition_problems",
]
