"""llmkit.orchestrate: typed tools, ReAct, plan-and-execute, hierarchical and multi-agent runs, with
approval gates, loop detection, checkpoints and traces. The model proposes actions; the orchestrator takes them."""

from .checkpoints import CheckpointStore, RunRecord
from .errors import (
    ApprovalUnavailable,
    CheckpointError,
    MCPError,
    OrchestrateError,
    PlanError,
    ToolArgumentError,
    ToolDefinitionError,
    ToolError,
)
from .events import AgentEvent
from .gates import ApprovalRequest, Gate, ToolPolicy, approve_all, cli_approver, deny_all
from .handoffs import HandoffCheck, check_handoff
from .hierarchy import HierarchicalAgent
from .limits import Limits, Pricing, Usage
from .loops import LoopDetector
from .memory import AgentMemory
from .model import AgentModel
from .multiagent import MultiAgentOrchestrator, Specialist
from .plan import PlanAndExecuteAgent, PlanBounds, PlanStep
from .react import ReActAgent
from .run_loop import Agent
from .run_state import AgentResult, RunState
from .settings import AgentSettings
from .tools import (
    FilesToolbox,
    PythonToolbox,
    SqlToolbox,
    Tool,
    Toolbox,
    ToolResult,
    ToolSet,
    build_tool_set,
    calculator,
    tool,
)
from .tracing import OpenTelemetryExporter, Span, Tracer, read_trace

__all__ = [
    "Agent",
    "AgentEvent",
    "AgentMemory",
    "AgentModel",
    "AgentResult",
    "AgentSettings",
    "ApprovalRequest",
    "ApprovalUnavailable",
    "CheckpointError",
    "CheckpointStore",
    "FilesToolbox",
    "Gate",
    "HandoffCheck",
    "HierarchicalAgent",
    "Limits",
    "LoopDetector",
    "MCPError",
    "MCPToolbox",
    "MultiAgentOrchestrator",
    "OpenTelemetryExporter",
    "OrchestrateError",
    "PlanAndExecuteAgent",
    "PlanBounds",
    "PlanError",
    "PlanStep",
    "Pricing",
    "PythonToolbox",
    "ReActAgent",
    "RunRecord",
    "RunState",
    "Span",
    "Specialist",
    "SqlToolbox",
    "Tool",
    "ToolArgumentError",
    "ToolDefinitionError",
    "ToolError",
    "ToolPolicy",
    "ToolResult",
    "ToolSet",
    "Toolbox",
    "Tracer",
    "Usage",
    "approve_all",
    "build_tool_set",
    "calculator",
    "check_handoff",
    "cli_approver",
    "deny_all",
    "read_trace",
    "tool",
]


def __getattr__(name: str):
    """`MCPToolbox` loads on first use: the MCP client library is large, and most runs use no MCP server."""
    if name == "MCPToolbox":
        from .mcp import MCPToolbox

        return MCPToolbox
    raise AttributeError(f"module 'llmkit.orchestrate' has no attribute {name!r}")
