"""Multi-agent: an orchestrator (a ReAct agent) delegates to specialist agents through one tool per
specialist. Each delegation is a checked `HandoffPacket`; the specialist starts with a fresh context (only
the packet), and its result comes back to the orchestrator as a compact `ResultSummary`. Specialists never
see or call each other: all coordination goes through the orchestrator."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import ConfigDict, Field, create_model

from llmkit.context import ErrorBudget, HandoffPacket, ResultSummary
from llmkit.core.backends import Backend

from .checkpoints import fingerprint
from .errors import OrchestrateError, ToolError
from .gates import Approver, ToolPolicy, deny_all
from .handoffs import DEFAULT_MAX_TASK_WORDS, check_handoff, failures
from .limits import Limits
from .model import AgentModel
from .react import ReActAgent
from .tools.tool import Tool, check_tool_name
from .tools.toolbox import ToolLike, ToolSet

ORCHESTRATOR_PROMPT = (
    "You coordinate specialists. Delegate each part of the task to the specialist for it with a short, "
    "self-contained task and the context it needs (specialists see nothing else), then combine their results "
    "into the final answer."
)


@dataclasses.dataclass
class Specialist:
    """A specialist: what it is good at (the orchestrator reads this), its tools, its permissions and limits."""

    name: str
    description: str
    tools: Sequence[ToolLike] | ToolSet = ()
    system_prompt: str = "You are a specialist. Do the task you are given with your tools and report the result."
    policy: ToolPolicy | None = None
    approver: Approver = deny_all
    limits: Limits = dataclasses.field(default_factory=lambda: Limits(max_steps=6))
    examples: Sequence[dict[str, Any]] = ()

    def __post_init__(self) -> None:
        check_tool_name(f"ask_{self.name}")
        if not self.description.strip():
            raise OrchestrateError(f"specialist {self.name!r} needs a description: the orchestrator chooses by it")
        self.tools = self.tools if isinstance(self.tools, ToolSet) else ToolSet(self.tools)


class MultiAgentOrchestrator(ReActAgent):
    """A ReAct agent whose tools include `ask_<specialist>(task, context)`; the rest of ReActAgent's options
    (limits, gates, checkpoints, tracing) apply to the orchestrator itself."""

    kind = "multi_agent"

    def __init__(
        self,
        backend: Backend | AgentModel,
        specialists: Iterable[Specialist],
        tools: Iterable[ToolLike] = (),
        *,
        system_prompt: str = ORCHESTRATOR_PROMPT,
        max_task_words: int = DEFAULT_MAX_TASK_WORDS,
        name: str = "orchestrator",
        **options: Any,
    ):
        self.specialists = {s.name: s for s in specialists}
        if not self.specialists:
            raise OrchestrateError("a multi-agent orchestrator needs at least one specialist")
        self.max_task_words = max_task_words
        self.delegations: list[dict[str, Any]] = []  # every delegation: packet checks, result, usage
        self._usage_lock = threading.Lock()
        self._backend = backend
        delegates = [self._delegate_tool(s) for s in self.specialists.values()]
        super().__init__(backend, [*delegates, *tools], system_prompt=system_prompt, name=name, **options)

    def fingerprint(self) -> str:
        specialists = {n: [s.description, sorted(s.tools.names), s.system_prompt] for n, s in self.specialists.items()}
        return fingerprint({"base": super().fingerprint(), "specialists": specialists})

    def _delegate_tool(self, specialist: Specialist) -> Tool:
        arguments = create_model(
            f"Ask{specialist.name.title().replace('_', '')}Arguments",
            __config__=ConfigDict(extra="forbid"),
            task=(str, Field(description="the specialist's task, self-contained")),
            context=(str, Field(default="", description="every fact the specialist needs; it sees nothing else")),
        )
        schema = arguments.model_json_schema()
        schema.pop("title", None)
        for prop in schema["properties"].values():
            prop.pop("title", None)

        def delegate(task: str, context: str = "") -> str:
            return self.delegate(specialist.name, task, context)

        return Tool(f"ask_{specialist.name}", f"Delegate to {specialist.name}: {specialist.description}", schema, delegate, arguments)  # fmt: skip

    def delegate(self, name: str, task: str, context: str = "") -> str:
        """Check the handoff, run the specialist on a fresh context, return its result summary as text."""
        specialist = self.specialists[name]
        policy = specialist.policy or ToolPolicy.from_tools(specialist.tools)
        packet = HandoffPacket(
            role=f"{name}: {specialist.description}",
            task=task,
            distilled_context=context or "(nothing beyond the task)",
            constraints=[f"Use only your tools: {', '.join(specialist.tools.names) or 'none'}."],
            output_format="Answer in plain text: what you found or did, with the values the task asks for.",
            output_schema={"type": "string"},
            error_budget=ErrorBudget(
                allowed_actions=sorted(policy.allowed), approval_required=sorted(policy.requires_approval)
            ),
        )
        problems = failures(check_handoff(packet, max_task_words=self.max_task_words))
        self.emit("handoff_checked", 0, specialist=name, problems=problems)
        if problems:
            self.delegations.append({"specialist": name, "task": task, "refused": problems})
            raise ToolError("handoff refused: " + "; ".join(problems) + ". Rewrite the task and context.")
        self.emit("delegated", 0, specialist=name, task=task)
        agent = ReActAgent(
            self._backend if not isinstance(self._backend, AgentModel) else self._backend.backend,
            specialist.tools,
            name=name,
            system_prompt=f"{specialist.system_prompt}\n\n{packet.render_system_prompt()}",
            policy=policy,
            approver=specialist.approver,
            limits=specialist.limits,
            examples=specialist.examples,
            params=self.model.params,
            constrain=self.model.constrain,
            tracer=self.tracer,
            on_event=self.on_event,
        )
        result = agent.run(task)
        with self._usage_lock:
            self.model.usage.merge(result.usage)
        summary = ResultSummary(
            status="completed" if result.ok else "failed",
            summary=str(result.answer) if result.ok else f"stopped ({result.stop_reason}): {result.detail}",
            actions_taken=[f"{e['name']} -> {e['status']}" for e in result.tool_log if e["name"] != "final_answer"],
        )
        self.delegations.append({"specialist": name, "task": task, "result": summary.model_dump(), "steps": result.steps})  # fmt: skip
        return summary.to_orchestrator_message(name)["content"]
