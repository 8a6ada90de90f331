"""Errors llmkit-orchestrate raises on bad input or configuration: one clear line each."""

from llmkit.core.errors import LlmkitError


class OrchestrateError(LlmkitError):
    """Base class of llmkit-orchestrate's errors."""


class ToolDefinitionError(OrchestrateError, TypeError):
    """A callable that cannot become a tool (missing type hints, bad name, unsupported parameter kind)."""


class ToolError(OrchestrateError):
    """A tool refusing or failing on purpose; its message goes back to the model as the tool's result."""


class PlanError(OrchestrateError):
    """A plan whose shape is invalid (step count out of bounds, unknown tools, unmet dependencies)."""


class CheckpointError(OrchestrateError):
    """A run that cannot be saved or resumed (unknown run id, a different agent, a corrupt store)."""


class MCPError(OrchestrateError):
    """An MCP server that cannot be started, listed or called."""


class ToolArgumentError(ToolError):
    """Arguments that do not validate against a tool's schema; the model gets the message and can fix them."""


class ApprovalUnavailable(OrchestrateError):
    """Raised by an approver when nobody can give the approval (no approver, stdin not a terminal): a refusal
    whose message says why, to the model and to the user."""
