"""The one run loop every agent kind plugs its step policy into.

The loop checks the limits before every step, runs the step, saves the whole state after it (checkpoint and
`on_step`), and traces and narrates the run. A step policy (`ReActAgent`, `PlanAndExecuteAgent`,
`HierarchicalAgent`, or any subclass of `Agent`) says only what one step does: `step(state, span)`. The loop
also takes the actions a step proposes (`take_actions`: loop detection, the approval gate, concurrent execution,
tool spans and events) and runs sub-agents as parts of a run (`run_inner`: resumable, their usage counted here).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from llmkit.core.assistant_output import ToolCall
from llmkit.core.backends import Backend

from .checkpoints import fingerprint, new_run_id
from .errors import CheckpointError
from .events import AgentEvent
from .gates import Gate, ToolPolicy
from .limits import Limits, exceeded, remaining
from .model import AgentModel
from .run_state import AgentResult, RunState
from .settings import AgentSettings
from .tools.executor import ToolExecutor
from .tools.results import ToolResult
from .tools.toolbox import ToolLike, ToolSet
from .tracing import Span


class NoSpan:
    """Stands in for a span when no tracer is set."""

    def set(self, **attributes: Any) -> None:
        return None


def _setting(name: str) -> property:
    return property(lambda self: getattr(self.settings, name), doc=f"settings.{name}")


def not_run(call: ToolCall, text: str) -> ToolResult:
    """The result of a call the orchestrator answered without running it ("accepted" for a final answer)."""
    return ToolResult(call.id, call.name, dict(call.arguments), text, "ok" if text == "accepted" else "not_run")


class Agent(abc.ABC):
    """An agent: a model, tools, `AgentSettings` (or the same options as keywords), and a step policy.
    Subclasses set `kind`, `default_name`, `default_limits`, `state_type`, and implement `step`."""

    kind = "agent"
    default_name = "agent"
    default_limits = Limits()
    state_type: type[RunState] = RunState

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        settings: AgentSettings | None = None,
        **options: Any,
    ):
        chosen = AgentSettings.of(settings, options)
        self.settings = dataclasses.replace(
            chosen, name=chosen.name or self.default_name, limits=chosen.limits or self.default_limits
        )
        if isinstance(backend, AgentModel):
            self.model = backend
        else:
            self.model = AgentModel(backend, self.settings.params, constrain=self.settings.constrain)
        if self.settings.pricing is not None:
            self.model.pricing = self.settings.pricing
        self.tools = tools if isinstance(tools, ToolSet) else ToolSet(tools)
        self.policy = self.settings.policy or ToolPolicy.from_tools(self.tools)
        self.gate = Gate(self.name, self.policy, self.settings.approver)
        self.executor = ToolExecutor(self.tools, self.gate, guards=self.settings.guards)

    name = _setting("name")
    system_prompt = _setting("system_prompt")
    limits = _setting("limits")
    approver = _setting("approver")
    checkpoints = _setting("checkpoints")
    tracer = _setting("tracer")
    on_event = _setting("on_event")
    on_step = _setting("on_step")
    seed = _setting("seed")
    tool_choice = _setting("tool_choice")
    parallel_tool_calls = _setting("parallel_tool_calls")

    # -- the step policy: what subclasses provide ---------------------------------------------------

    @abc.abstractmethod
    def step(self, state: Any, span: Span | NoSpan) -> None:
        """Take one step: advance `state.steps` by the steps taken, or `state.finish(...)`."""

    def config(self) -> dict[str, Any]:
        """What else decides this kind's behavior (beside name, tools and system prompt): part of the fingerprint."""
        return {}

    def result_messages(self, state: Any) -> list[dict[str, Any]]:
        return []

    def result_values(self, state: Any) -> dict[str, Any]:
        return {}

    def run_attributes(self, state: Any) -> dict[str, Any]:
        """Extra attributes of the run's span."""
        return {}

    # -- public ------------------------------------------------------------------------------------

    def run(self, task: str, run_id: str | None = None) -> AgentResult:
        """Run `task` to an answer or a limit; with a checkpoint store every step is saved under `run_id`."""
        state = self.new_state(task, run_id)
        if self.checkpoints is not None:
            self.checkpoints.start(state.run_id, self.kind, task, self.fingerprint())
        self.save(state)
        return self.continue_state(state)

    def resume(self, run_id: str) -> AgentResult:
        """Continue a saved run from its last save (a finished run returns its result)."""
        if self.checkpoints is None:
            raise CheckpointError("resume needs a checkpoint store (checkpoints=CheckpointStore(path))")
        record = self.checkpoints.record(run_id)
        if record.kind != self.kind or record.fingerprint != self.fingerprint():
            raise CheckpointError(
                f"run {run_id!r} was made by a different {record.kind} agent configuration (tools, prompts or "
                "schemas differ); resume it with the agent that started it"
            )
        row, data = self.checkpoints.latest(run_id)
        state = self.state_from_dict(data)
        state.saves = row + 1
        return self.continue_state(state)

    def new_state(self, task: str, run_id: str | None = None) -> Any:
        return self.state_type(run_id or new_run_id(), task, loops=self.settings.loop_detector.fresh())

    def state_from_dict(self, data: dict[str, Any]) -> Any:
        return self.state_type.from_dict(data)

    def fingerprint(self) -> str:
        """A hash of what decides this agent's behavior: a resume must match it."""
        base = {"kind": self.kind, "name": self.name, "tools": sorted(self.tools.names), "system": self.system_prompt}
        return fingerprint({**base, **self.config()})

    def continue_state(self, state: Any, parent: Span | NoSpan | None = None) -> AgentResult:
        """Run from `state` (new from `new_state`, or saved) to its end; `parent`: the span it runs inside."""
        self.model.usage = state.usage
        self.emit("run_started", state.steps, task=state.task, run_id=state.run_id)
        attributes = {"agent": self.name, "kind": self.kind, "run_id": state.run_id, "task": state.task}
        with self.span("agent.run", parent, **attributes) as run_span:
            while state.status == "running":
                self.model.usage = state.usage  # a sub-run counts into its own usage; this run's is restored
                limit = exceeded(self.limits, state.usage, state.steps)
                if limit is not None:
                    state.finish(*limit)
                else:
                    with self.span("agent.step", run_span, step=state.steps + 1) as step_span:
                        self.step(state, step_span)
                self.save(state)
            extra = self.run_attributes(state)
            run_span.set(stop_reason=state.stop_reason, steps=state.steps, **state.usage.to_dict(), **extra)
        self.emit("run_finished", state.steps, stop_reason=state.stop_reason, detail=state.detail, answer=state.answer)
        return AgentResult(
            state.run_id,
            state.answer,
            state.stop_reason or "failed",
            state.detail,
            state.steps,
            state.usage,
            self.result_messages(state),
            state.tool_log,
            self.result_values(state),
            state.history,
        )

    # -- services to step policies -------------------------------------------------------------------

    def take_actions(
        self,
        state: RunState,
        calls: Sequence[ToolCall],
        step: int,
        span: Span | NoSpan | None = None,
        exposed: Iterable[str] | None = None,
    ) -> list[ToolResult]:
        """Take the tool calls a step proposes, results in the order of the calls (and in the tool log): calls
        past `max_calls_per_step` are not run; a loop gets an intervention (none run), a loop after it ends the
        run; the rest pass the gate (approvals asked one at a time) and run concurrently."""
        per_step = self.limits.max_calls_per_step
        allowed, extra = list(calls[:per_step]), list(calls[per_step:])
        verdict = state.loops.observe(allowed)
        if verdict is not None:
            if verdict.action == "intervene":
                self.emit("intervention", step, message=verdict.message)
            results = [not_run(c, f"not run: {verdict.message}") for c in calls]
            if verdict.action == "stop":
                state.finish("loop", verdict.message)
        else:
            names = self.tools.names if exposed is None else list(exposed)
            results = self.executor.run(allowed, names, step, observer=self._observe(step), wrap=self._traced(span))
            results += [not_run(c, f"not run: at most {per_step} tool calls per step") for c in extra]
            state.usage.tool_calls += len(allowed)
        self.log_results(state, results, step)
        return results

    def log_results(self, state: RunState, results: Sequence[ToolResult], step: int) -> None:
        state.tool_log += [{"step": step, **result.to_dict()} for result in results]

    def sub_settings(self, state: RunState, *, name: str, system_prompt: str, seed: int, max_steps: int | None = None) -> AgentSettings:  # fmt: skip
        """The settings of a sub-agent run inside this run: this agent's policy, approver, loop detection, tracing
        and events; the budget this run has left (at most `max_steps` steps); no checkpoints of its own: its
        state is saved inside this run's (`state.inner`) after each of its steps."""

        def persist(inner: RunState) -> None:
            if inner.status == "running":
                state.inner = inner.to_dict()
                self.save(state)

        budget = remaining(self.limits, state.usage, state.steps, max_steps)
        return dataclasses.replace(
            self.settings, name=name, system_prompt=system_prompt, seed=seed, limits=budget, policy=self.policy,
            checkpoints=None, on_step=persist,
        )  # fmt: skip

    def run_inner(
        self, state: RunState, child: Agent, task: str, run_id: str, tag: Mapping[str, Any], parent: Span | NoSpan
    ) -> AgentResult:
        """Run `child` (made with `sub_settings`) as part of this run, resuming it from `state.inner` when a save
        holds one; its usage, steps and tool calls (each tagged with `tag`) count in this run."""
        inner = child.state_from_dict(state.inner) if state.inner is not None else child.new_state(task, run_id)
        result = child.continue_state(inner, parent)
        self.model.usage = state.usage
        state.inner = None
        state.usage.merge(result.usage)
        state.steps += result.steps
        state.tool_log += [{**tag, **entry} for entry in result.tool_log]
        return result

    def save(self, state: RunState) -> None:
        """After every step: `on_step`, then a checkpoint row (when a store is set)."""
        if self.on_step is not None:
            self.on_step(state)
        if self.checkpoints is None:
            return
        if state.status == "running":
            status = "running"
        else:
            status = "finished" if state.stop_reason == "answer" else "stopped"
        self.checkpoints.save(state.run_id, state.saves, state.to_dict(), status)
        state.saves += 1

    def emit(self, kind: str, step: int, **data: Any) -> None:
        self.on_event(AgentEvent(kind, self.name, step, data))

    @contextlib.contextmanager
    def span(self, name: str, parent: Span | NoSpan | None = None, **attributes: Any) -> Iterator[Span | NoSpan]:
        if self.tracer is None:
            yield NoSpan()
            return
        with self.tracer.span(name, parent if isinstance(parent, Span) else None, **attributes) as span:
            yield span

    def _observe(self, step: int) -> Callable[[ToolCall, ToolResult | None], None]:
        def observe(call: ToolCall, result: ToolResult | None) -> None:
            if result is None:
                self.emit("tool_started", step, name=call.name, arguments=call.arguments)
            else:
                self.emit("tool_finished", step, name=call.name, status=result.status, content=result.content)

        return observe

    def _traced(self, parent: Span | NoSpan | None):
        def wrap(call: ToolCall, execute: Callable[[], ToolResult]) -> ToolResult:
            arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)[:1000]
            with self.span("tool.call", parent, tool=call.name, arguments=arguments) as span:
                result = execute()
                span.set(status=result.status, duration_s=result.duration_s, truncated=result.truncated)
                return result

        return wrap
