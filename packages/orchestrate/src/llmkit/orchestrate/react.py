"""The ReAct step policy: model call -> tool calls (taken by the run loop: loop detection, gates, concurrent
execution, results in order) -> results into the transcript -> next step, until an answer or a limit."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from llmkit.context import ToolResultLifecycle
from llmkit.context.structured import extract_json
from llmkit.core.assistant_output import ToolCall
from llmkit.core.backends import Backend
from llmkit.core.errors import ContextLengthError
from llmkit.core.sampling.rng import derive_seed

from .checkpoints import new_run_id
from .errors import ToolArgumentError
from .memory import AgentMemory
from .model import AgentModel
from .run_loop import Agent, NoSpan, not_run
from .run_state import FINAL_ANSWER, ReActState, answer_value, final_answer_tool
from .settings import DEFAULT_SYSTEM_PROMPT, AgentSettings, ToolChoice
from .tools.results import ToolResult
from .tools.schema import describe_validation_error
from .tools.toolbox import ToolLike, ToolSet
from .tracing import Span

__all__ = ["DEFAULT_SYSTEM_PROMPT", "Exposure", "ReActAgent", "ToolChoice"]

Exposure = Callable[[int], Iterable[str]]  # step number -> the names of the tools visible in it


class ReActAgent(Agent):
    """One agent: tools, `AgentSettings` (or its fields as keywords: policy, approver, limits, loop_detector,
    checkpoints, tracer, ...), and what the ReAct policy adds: worked `examples`, an `answer_schema` (answers
    through a `final_answer` tool, as with `tool_choice="required"`), the tool-result `lifecycle`, per-step tool
    `exposure` and a `reminder` re-injected on every call. `run(task)` or `resume(run_id)`."""

    kind = "react"
    default_name = "agent"
    state_type = ReActState

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        settings: AgentSettings | None = None,
        examples: Sequence[Mapping[str, Any]] = (),
        answer_schema: type[BaseModel] | None = None,
        lifecycle: ToolResultLifecycle | None = None,
        exposure: Exposure | None = None,
        reminder: str | None = None,
        **options: Any,
    ):
        super().__init__(backend, tools, settings=settings, **options)
        self.examples = [dict(m) for m in examples]
        self.answer_schema = answer_schema
        wants_final_tool = self.tool_choice == "required" or answer_schema is not None
        self.final_tool = final_answer_tool(answer_schema) if wants_final_tool else None
        self.lifecycle = lifecycle or ToolResultLifecycle(verbatim_turns=3, summary_turns=8)
        self.exposure, self.reminder = exposure, reminder

    def new_state(self, task: str, run_id: str | None = None) -> ReActState:
        memory = AgentMemory(self.system_prompt, task, list(self.examples), [], self.lifecycle, self.reminder)
        return ReActState(run_id or new_run_id(), task, loops=self.settings.loop_detector.fresh(), memory=memory)

    def config(self) -> dict[str, Any]:
        schema = self.answer_schema.model_json_schema() if self.answer_schema else None
        return {"tool_choice": self.tool_choice, "answer_schema": schema, "examples": self.examples}

    def result_messages(self, state: ReActState) -> list[dict[str, Any]]:
        return state.memory.render(state.steps + 1)

    # -- one step ------------------------------------------------------------------------------------

    def step(self, state: ReActState, span: Span | NoSpan) -> None:
        self._step(state, span)
        state.steps += 1

    def _step(self, state: ReActState, span: Span | NoSpan) -> None:
        step = state.steps + 1
        exposed = list(self.exposure(step)) if self.exposure else self.tools.names
        definitions = [t.schema() for t in self.tools.subset(exposed)]
        if self.final_tool is not None:
            definitions.append(self.final_tool.schema())
        self.emit("step_started", step, tools=exposed)
        tool_choice = self.tool_choice if definitions else "auto"
        with self.span("model.call", span, tools=[d["function"]["name"] for d in definitions]) as call_span:
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
        self.emit("model_replied", step, text=reply.text, calls=[c.name for c in reply.tool_calls])
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

    def _text_answer(self, state: ReActState, text: str, step: int) -> None:
        if self.answer_schema is None:
            state.finish("answer", "the model answered", text.strip())
            return
        try:
            value = self.answer_schema.model_validate_json(extract_json(text))
        except ValidationError as err:
            state.memory.add_note(f"Your answer is not valid: {describe_validation_error(err)}. Answer again.", step)
            return
        state.finish("answer", "the model answered", value.model_dump())

    def _handle_calls(
        self, state: ReActState, calls: list[ToolCall], exposed: list[str], step: int, span: Span | NoSpan
    ) -> None:
        final = next((c for c in calls if c.name == FINAL_ANSWER and self.final_tool is not None), None)
        if final is None:
            self._remember(state, self.take_actions(state, calls, step, span, exposed), step)
            return
        if len(calls) > 1:
            # An answer written before the results it should use: run the other calls, refuse the answer.
            note = f"not run: call {FINAL_ANSWER} alone, after you have seen the results of your other calls"
            self._handle_calls(state, [c for c in calls if c is not final], exposed, step, span)
            self._answer_without_running(state, [not_run(final, note)], step)
            return
        try:
            arguments = self.final_tool.validate(final.arguments)
        except ToolArgumentError as err:
            text = f"error: invalid final answer: {err}. Call {FINAL_ANSWER} again with valid arguments."
            self._answer_without_running(state, [not_run(final, text)], step)
            return
        state.finish("answer", "the model called final_answer", answer_value(arguments, self.answer_schema))
        self._answer_without_running(state, [not_run(final, "accepted")], step)

    def _answer_without_running(self, state: ReActState, results: list[ToolResult], step: int) -> None:
        self.log_results(state, results, step)
        self._remember(state, results, step)

    @staticmethod
    def _remember(state: ReActState, results: list[ToolResult], step: int) -> None:
        for result in results:
            state.memory.add_tool_result(result, step)
