"""Hierarchical orchestration: strategic -> tactical -> operational, with checked handoff packets."""

from .agent import HierarchicalAgent, HierarchyState
from .schema import Decomposition, Objective, decomposition_model, decomposition_problems

__all__ = [
    "Decomposition",
    "HierarchicalAgent",
    "HierarchyState",
    "Objective",
    "decomposition_model",
    "decomposition_problems",
]
