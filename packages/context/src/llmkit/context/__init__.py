"""llmkit.context: budgeted context windows, compression, memory, retrieval, handoffs and playbooks."""

from .compression import (
    CodeDedup,
    CompressionDecision,
    RollingSummary,
    SelectiveEviction,
    Summarizer,
    ToolResultLifecycle,
)
from .compression.base import HistoryView
from .compression.corrections import Correction
from .constraints import LMConstraintExtractor, RuleDetector, StatedConstraint
from .constraints.extractor import ExtractedConstraints
from .conversation import Conversation
from .diagnostics import ContextLog, LintFinding, lint
from .errors import BudgetError, ContextError, StructuredOutputError
from .handoff import Artifact, ErrorBudget, HandoffPacket, ResultSummary
from .image_items import add_image, add_pdf
from .items import ContextItem, RetrievedChunk
from .placement import u_shaped
from .render import Dropped, RenderedContext
from .session_file import load_session, save_session
from .state import StateObject
from .structured import ConstrainedJSON, PromptedJSON, PromptedJSONFallback, StructuredGenerator, json_generator
from .summary import TurnSummary
from .tokens import TokenCounter
from .window import ContextWindow
from .zones import ZONE_ORDER, ZoneSpec, default_zones

__all__ = [
    "ZONE_ORDER",
    "Artifact",
    "BudgetError",
    "CodeDedup",
    "CompressionDecision",
    "ConstrainedJSON",
    "ContextError",
    "ContextItem",
    "ContextLog",
    "ContextWindow",
    "Conversation",
    "Correction",
    "Dropped",
    "ErrorBudget",
    "ExtractedConstraints",
    "HandoffPacket",
    "HistoryView",
    "LMConstraintExtractor",
    "LintFinding",
    "PromptedJSON",
    "PromptedJSONFallback",
    "RenderedContext",
    "ResultSummary",
    "RetrievedChunk",
    "RollingSummary",
    "RuleDetector",
    "SelectiveEviction",
    "StateObject",
    "StatedConstraint",
    "StructuredGenerator",
    "StructuredOutputError",
    "Summarizer",
    "TokenCounter",
    "ToolResultLifecycle",
    "TurnSummary",
    "ZoneSpec",
    "add_image",
    "add_pdf",
    "default_zones",
    "json_generator",
    "lint",
    "load_session",
    "save_session",
    "u_shaped",
]

# Retrieval, memory and playbooks load on first use: retrieval pulls in bm25s, and most windows use none of them.
_LAZY_EXPORTS = {
    "BM25Retriever": "retrieval",
    "DenseRetriever": "retrieval",
    "HashingEmbedder": "retrieval",
    "HybridRetriever": "retrieval",
    "LoglikelihoodReranker": "retrieval",
    "LongTermMemory": "memory",
    "Memory": "memory",
    "SessionMemory": "memory",
    "Curator": "playbook",
    "Generator": "playbook",
    "Playbook": "playbook",
    "PlaybookDelta": "playbook",
    "Reflection": "playbook",
    "Reflector": "playbook",
}
__all__ += sorted(_LAZY_EXPORTS)


def __getattr__(name: str):
    if name not in _LAZY_EXPORTS:
        raise AttributeError(f"module 'llmkit.context' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_LAZY_EXPORTS[name]}", __name__), name)
