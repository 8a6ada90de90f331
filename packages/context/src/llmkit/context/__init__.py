"""llmkit.context: budgeted context windows, compression, memory, retrieval, handoffs and playbooks."""

from .compression import (
    CodeDedup,
    CompressionDecision,
    RollingSummary,
    SelectiveEviction,
    Summarizer,
    ToolResultLifecycle,
)
from .constraints import LMConstraintExtractor, RuleDetector, StatedConstraint
from .conversation import Conversation
from .diagnostics import ContextLog, LintFinding, lint
from .errors import BudgetError, ContextError, StructuredOutputError
from .handoff import Artifact, ErrorBudget, HandoffPacket, ResultSummary
from .items import ContextItem, RetrievedChunk
from .placement import u_shaped
from .render import RenderedContext
from .session_file import load_session, save_session
from .state import StateObject
from .structured import PromptedJSON, StructuredGenerator
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
    "ContextError",
    "ContextItem",
    "ContextLog",
    "ContextWindow",
    "Conversation",
    "ErrorBudget",
    "HandoffPacket",
    "LMConstraintExtractor",
    "LintFinding",
    "PromptedJSON",
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
    "default_zones",
    "lint",
    "load_session",
    "save_session",
    "u_shaped",
]
