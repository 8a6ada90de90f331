"""The ReAct loop: model call -> tool calls (run concurrently, results in order) -> results -> repeat,
within limits on steps, tokens and cost, with loop detection, approval gates, checkpoints and traces."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from llmkit.context import ToolResultLifecycle
from llmkit.context.structured import extract_json
from llmkit.core.assistant_output import ToolCall
from llmkit.core.backends import Backend
from llmkit.core.errors import ContextLengthError
from llmkit.core.sampling import SamplingParams

from .checkpoints import CheckpointStore, fingerprint, new_run_id
from .errors import CheckpointError, OrchestrateError, ToolArgumentError
from .events import AgentEvent, EventHandler, ignore_events
from .gates import Approver, Gate, ToolPolicy, deny_all
from .limits import Limits, Pricing, exceeded
from .loops import LoopDetector
from .memory import AgentMemory
from .model import AgentModel
from .run_state import FINAL_ANSWER, AgentResult, RunState, answer_value, final_answer_tool
from .tools.executor import ToolExecutor
from .tools.results import ToolResult
from .tools.schema import describe_validation_error
from .tools.toolbox import ToolLike, ToolSet
from .tracing import Span, Tracer

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful assistant that solves the task step by step with the tools you are given. "
    "Call a tool when you need a fact or a computation; when you have what the task asks for, give the "
    "final answer, using the tool results."
)
ToolChoice = Literal["auto", "required"]
Exposure = Callable[[int], Iterable[str]]  # step number -> the names of the tools visible in it


def derive_seed(seed: int, step: int) -> int:
    """The sampling seed of one step: a resumed run draws what the uninterrupted run would have."""
    return (seed * 1_000_003 + step * 7919) % (2**31 - 1)


class ReActAgent:
    """One agent: tools, a policy (allowed / requires approval / forbidden; unnamed tools are forbidden),
    limits, and an optional checkpoint store and tracer. `run(task)` or `resume(run_id)`."""

    kind = "react"

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        name: str = "agent",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        policy: ToolPolicy | None = None,
        approver: Approver = deny_all,
        limits: Limits | None = None,
        pricing: Pricing | None = None,
        params: SamplingParams | None = None,
        constrain: bool | None = None,
        tool_choice: ToolChoice = "auto",
        parallel_tool_calls: bool = True,
        examples: Sequence[Mapping[str, Any]] = (),
        answer_schema: type[BaseModel] | None = None,
        loop_detector: LoopDetector | None = None,
        lifecycle: ToolResultLifecycle | None = None,
        exposure: Exposure | None = None,
        reminder: str | None = None,
        checkpoints: CheckpointStore | None = None,
        tracer: Tracer | None = None,
        on_event: EventHandler = ignore_events,
        seed: int = 0,
        on_step: Callable[[RunState], None] | None = None,
    ):
        self.model = backend if isinstance(backend, AgentModel) else AgentModel(backend, params, constrain=constrain)
        if pricing is not None:
            self.model.pricing = pricing
        self.tools = tools if isinstance(tools, ToolSet) else ToolSet(tools)
        self.name, self.system_prompt = name, system_prompt
        self.policy = policy or ToolPolicy.from_tools(self.tools)
        self.gate = Gate(name, self.policy, approver)
        self.executor = ToolExecutor(self.tools, self.gate)
        self.limits = limits or Limits()
        if tool_choice not in ("auto", "required"):
            raise OrchestrateError(f"tool_choice must be 'auto' or 'required', got {tool_choice!r}")
        self.tool_choice, self.parallel_tool_calls = tool_choice, parallel_tool_calls
        self.examples = [dict(m) for m in examples]
        self.answer_schema = answer_schema
        self.final_tool = final_answer_tool(answer_schema) if tool_choice == "required" or answer_schema else None
        self.loop_settings = loop_detector or LoopDetector()
        self.lifecycle = lifecycle or ToolResultLifecycle(verbatim_turns=3, summary_turns=8)
        self.exposure, self.reminder = exposure, reminder
        self.checkpoints, self.tracer, self.on_event, self.seed = checkpoints, tracer, on_event, seed
        self.on_step = on_step  # called with the state after every step (orchestrators persist it)

    # -- public ------------------------------------------------------------------------------

    def run(self, task: str, run_id: str | None = None) -> AgentResult:
        """Run `task` to an answer or a limit; with a checkpoint store every step is saved under `run_id`."""
        state = self.new_state(task, run_id)
        if self.checkpoints is not None:
            self.checkpoints.start(state.run_id, self.kind, task, self.fingerprint())
            self.checkpoints.save(state.run_id, 0, state.to_dict())
        return self._loop(state)

    def resume(self, run_id: str) -> AgentResult:
        """Continue a saved run from its last completed step (a finished run returns its result)."""
        if self.checkpoints is None:
            raise CheckpointError("resume needs a checkpoint store (checkpoints=CheckpointStore(path))")
        record = self.checkpoints.record(run_id)
        if record.fingerprint != self.fingerprint():
            raise CheckpointError(
                f"run {run_id!r} was made by a different {record.kind} agent configuration (tools, prompts or answer "
                "schema differ); resume it with the agent that started it"
            )
        _, data = self.checkpoints.latest(run_id)
        return self._loop(RunState.from_dict(data))

    def continue_state(self, state: RunState) -> AgentResult:
        """Run from `state` (a new one from `new_state`, or one an orchestrator saved) to its end."""
        return self._loop(state)

    def new_state(self, task: str, run_id: str | None = None) -> RunState:
        memory = AgentMemory(self.system_prompt, task, list(self.examples), [], self.lifecycle, self.reminder)
        loops = LoopDetector(**{**self.loop_settings.to_dict(), "history": [], "interventions": 0})
        return RunState(run_id or new_run_id(), task, memory, loops=loops)

    def fingerprint(self) -> str:
        schema = self.answer_schema.model_json_schema() if self.answer_schema else None
        return fingerprint(
            {
                "kind": self.kind,
                "name": self.name,
                "tools": sorted(self.tools.names),
                "system": self.system_prompt,
                "tool_choice": self.tool_choice,
                "answer_schema": schema,
                "examples": self.examples,
            }
        )

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self, state: RunState) -> AgentResult:
        self.model.usage = state.usage
        self._emit("run_started", state.step, task=state.task, run_id=state.run_id)
        with self._span("agent.run", None, agent=self.name, run_id=state.run_id, task=state.task) as run_span:
            while state.status == "running":
                limit = exceeded(self.limits, state.usage, state.step)
                if limit is not None:
                    state.finish(*limit)
                else:
                    with self._span("agent.step", run_span, step=state.step + 1) as step_span:
                        self._step(state, step_span)
                    state.step += 1
                self._save(state)
            run_span.set(stop_reason=state.stop_reason, steps=state.step, **state.usage.to_dict())
        self._emit("run_finished", state.step, stop_reason=state.stop_reason, detail=state.detail, answer=state.answer)
        return AgentResult.of(state)

    def _step(self, state: RunState, span: Span | None) -> None:
        step = state.step + 1
        exposed = list(self.exposure(step)) if self.exposure else self.tools.names
        definitions = [t.schema() for t in self.tools.subset(exposed)]
        if self.final_tool is not None:
            definitions.append(self.final_tool.schema())
        self._emit("step_started", step, tools=exposed)
        tool_choice = self.tool_choice if definitions else "auto"
        with self._span("model.call", span, tools=[d["function"]["name"] for d in definitions]) as call_span:
            try:
                reply = self.model.reply(
                    state.memory.render(step),
                    definitions or None,
                    tool_choice=tool_choice,
                    parallel_tool_calls=self.parallel_tool_calls,
                    seed=derive_seed(self.seed, step),
                )
            except ContextLengthError as err:
                state.finish("context_length", str(err))
                return
            call_span.set(
                prompt_tokens=reply.prompt_tokens,
                completion_tokens=reply.completion_tokens,
                constrained=reply.constrained,
                calls=[c.name for c in reply.tool_calls],
            )
        self._emit("model_replied", step, text=reply.text, calls=[c.name for c in reply.tool_calls])
        calls = reply.tool_calls
        state.memory.add_assistant(reply.content, calls, step)
        if reply.errors and not calls:
            note = "Your tool call could not be read: " + "; ".join(reply.errors) + ". Write it again."
            state.memory.add_note(note, step)
            return
        if not calls and (self.tool_choice == "required" or not reply.content.strip()):
            wanted = f"call one of the tools ({FINAL_ANSWER} to finish)" if self.tool_choice == "required" else "answer"
            state.memory.add_note(f"Your reply was empty of what is needed: {wanted}.", step)
            return
        if not calls:
            self._text_answer(state, reply.content, step)
            return
        self._handle_calls(state, calls, exposed, step, span)

    def _text_answer(self, state: RunState, text: str, step: int) -> None:
        if self.answer_schema is None:
            state.finish("answer", "the model answered", text.strip())
            return
        try:
            value = self.answer_schema.model_validate_json(extract_json(text))
        except ValidationError as err:
            state.memory.add_note(f"Your answer is not valid: {describe_validation_error(err)}. Answer again.", step)
            return
        state.finish("answer", "the model answered", value.model_dump())

    def _handle_calls(self, state: RunState, calls: list[ToolCall], exposed: list[str], step: int, span) -> None:
        final = next((c for c in calls if c.name == FINAL_ANSWER and self.final_tool is not None), None)
        if final is not None and len(calls) > 1:
            # An answer written before the results it should use: run the other calls, refuse the answer.
            note = f"not run: call {FINAL_ANSWER} alone, after you have seen the results of your other calls"
            others = [c for c in calls if c is not final]
            self._handle_calls(state, others, exposed, step, span)
            self._record(state, [self._unrun(final, note)], step)
            return
        if final is not None:
            try:
                arguments = self.final_tool.validate(final.arguments)
            except ToolArgumentError as err:
                text = f"error: invalid final answer: {err}. Call {FINAL_ANSWER} again with valid arguments."
                self._record(state, [self._unrun(c, text if c is final else "not run") for c in calls], step)
                return
            state.finish("answer", "the model called final_answer", answer_value(arguments, self.answer_schema))
            self._record(
                state, [self._unrun(c, "accepted" if c is final else "not run: the run ended") for c in calls], step
            )
            return
        allowed, extra = calls[: self.limits.max_calls_per_step], calls[self.limits.max_calls_per_step :]
        verdict = state.loops.observe(allowed)
        if verdict is not None:
            if verdict.action == "intervene":
                self._emit("intervention", step, message=verdict.message)
            self._record(state, [self._unrun(c, f"not run: {verdict.message}") for c in calls], step)
            if verdict.action == "stop":
                state.finish("loop", verdict.message)
            return
        results = self.executor.run(allowed, exposed, step, observer=self._observe(step), wrap=self._traced(span))
        limit_note = f"not run: at most {self.limits.max_calls_per_step} tool calls per step"
        results += [self._unrun(c, limit_note) for c in extra]
        state.usage.tool_calls += len(allowed)
        self._record(state, results, step)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _unrun(call: ToolCall, text: str) -> ToolResult:
        return ToolResult(call.id, call.name, dict(call.arguments), text, "ok" if text == "accepted" else "not_run")

    def _record(self, state: RunState, results: list[ToolResult], step: int) -> None:
        for result in results:
            state.memory.add_tool_result(result, step)
            state.tool_log.append({"step": step, **result.to_dict()})

    def _observe(self, step: int):
        def observe(call: ToolCall, result: ToolResult | None) -> None:
            if result is None:
                self._emit("tool_started", step, name=call.name, arguments=call.arguments)
            else:
                self._emit("tool_finished", step, name=call.name, status=result.status, content=result.content)

        return observe

    def _traced(self, parent: Span | None):
        def wrap(call: ToolCall, execute: Callable[[], ToolResult]) -> ToolResult:
            arguments = json.dumps(call.arguments, ensure_ascii=False, default=str)[:1000]
            with self._span("tool.call", parent, tool=call.name, arguments=arguments) as span:
                result = execute()
                span.set(status=result.status, duration_s=result.duration_s, truncated=result.truncated)
                return result

        return wrap

    @contextlib.contextmanager
    def _span(self, name: str, parent: Span | None, **attributes: Any) -> Iterator[Span | Any]:
        if self.tracer is None:
            yield _NoSpan()
            return
        with self.tracer.span(name, parent if isinstance(parent, Span) else None, **attributes) as span:
            yield span

    def _save(self, state: RunState) -> None:
        if self.on_step is not None:
            self.on_step(state)
        if self.checkpoints is not None:
            status = (
                "running" if state.status == "running" else ("finished" if state.stop_reason == "answer" else "stopped")
            )
            self.checkpoints.save(state.run_id, state.step, state.to_dict(), status)

    def _emit(self, kind: str, step: int, **data: Any) -> None:
        self.on_event(AgentEvent(kind, self.name, step, data))


class _NoSpan:
    """Stands in for a span when no tracer is set."""

    def set(self, **attributes: Any) -> None:
        return None
