"""History compression policies: each rewrites a `HistoryView` and records why."""

from .base import CompressionDecision, HistoryPolicy, HistoryView
from .corrections import Correction
from .dedup import CodeDedup
from .eviction import SelectiveEviction, salient_terms
from .lifecycle import ToolResultLifecycle
from .summarize import RollingSummary, Summarizer, keep_constraints

__all__ = [
    "CodeDedup",
    "CompressionDecision",
    "Correction",
    "HistoryPolicy",
    "HistoryView",
    "RollingSummary",
    "SelectiveEviction",
    "Summarizer",
    "ToolResultLifecycle",
    "keep_constraints",
    "salient_terms",
]
