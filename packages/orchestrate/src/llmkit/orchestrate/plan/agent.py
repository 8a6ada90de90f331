"""Plan-and-execute: a plan as structured output, its shape validated before anything runs, each step carried
out by an operator (a ReAct agent with only that step's tools, its plan step re-injected on every call), a
validation checkpoint between steps, and replanning as a first-class operation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from llmkit.context import Artifact, ErrorBudget, HandoffPacket, StructuredOutputError
from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from ..checkpoints import CheckpointStore, fingerprint
from ..errors import PlanError
from ..events import EventHandler, ignore_events
from ..gates import Approver, ToolPolicy, deny_all
from ..handoffs import DEFAULT_MAX_TASK_WORDS, check_handoff, failures
from ..limits import Limits, Pricing, exceeded, remaining
from ..model import AgentModel
from ..react import DEFAULT_SYSTEM_PROMPT, ReActAgent, ToolChoice, derive_seed
from ..run_state import AgentResult, RunState
from ..runner import SavedRun
from ..tools.toolbox import ToolLike, ToolSet
from ..tracing import Tracer
from .schema import Plan, PlanBounds, PlanStep, plan_schema_model, validate_plan
from .state import PlanState

PLANNER_INSTRUCTIONS = (
    "Plan before acting. Break the task into a few steps that run in order. Each step has an id (1, 2, ...), "
    "a self-contained instruction, the tools it needs, the names of the values it needs from earlier steps, and "
    "the names of the values it produces (lower_snake_case). The last step produces the answer."
)
# A check of a finished step: (the step, the values it produced, every value so far) -> a problem, or None.
StepCheck = Callable[[PlanStep, Mapping[str, Any], Mapping[str, Any]], str | None]


def step_result_model(step: PlanStep) -> type[BaseModel]:
    """The operator's answer schema: one non-empty text per value the step produces."""
    fields: dict[str, Any] = {name: (str, Field(min_length=1)) for name in step.produces}
    return create_model(f"Step{step.id}Result", __config__=ConfigDict(extra="forbid"), **fields)


class PlanAndExecuteAgent(SavedRun):
    """`limits` bound the whole run (operator steps, tokens, cost); `step_max_steps` bounds one plan step;
    `max_replans` bounds replanning; `check` adds a domain check to the validation checkpoint."""

    kind = "plan"

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        name: str = "planner",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        policy: ToolPolicy | None = None,
        approver: Approver = deny_all,
        limits: Limits | None = None,
        pricing: Pricing | None = None,
        params: SamplingParams | None = None,
        constrain: bool | None = None,
        tool_choice: ToolChoice = "auto",
        parallel_tool_calls: bool = True,
        bounds: PlanBounds | None = None,
        step_max_steps: int = 4,
        max_replans: int = 2,
        plan_attempts: int = 3,
        check: StepCheck | None = None,
        handoff_checks: bool = True,
        max_task_words: int = DEFAULT_MAX_TASK_WORDS,
        checkpoints: CheckpointStore | None = None,
        tracer: Tracer | None = None,
        on_event: EventHandler = ignore_events,
        on_step: Callable[[PlanState], None] | None = None,
        seed: int = 0,
    ):
        self.model = backend if isinstance(backend, AgentModel) else AgentModel(backend, params, constrain=constrain)
        if pricing is not None:
            self.model.pricing = pricing
        self.tools = tools if isinstance(tools, ToolSet) else ToolSet(tools)
        self.name, self.system_prompt = name, system_prompt
        self.policy = policy or ToolPolicy.from_tools(self.tools)
        self.approver, self.limits = approver, limits or Limits(max_steps=20)
        self.tool_choice, self.parallel_tool_calls = tool_choice, parallel_tool_calls
        self.bounds = bounds or PlanBounds()
        if step_max_steps < 1 or max_replans < 0 or plan_attempts < 1:
            raise PlanError("step_max_steps and plan_attempts must be at least 1, max_replans at least 0")
        self.step_max_steps, self.max_replans, self.plan_attempts = step_max_steps, max_replans, plan_attempts
        self.check, self.handoff_checks, self.max_task_words = check, handoff_checks, max_task_words
        self.checkpoints, self.tracer, self.on_event, self.on_step = checkpoints, tracer, on_event, on_step
        self.seed = seed

    # -- public ------------------------------------------------------------------------------

    def run(self, task: str, run_id: str | None = None) -> AgentResult:
        return self.continue_state(self.new_state(task, run_id))

    def new_state(self, task: str, run_id: str | None = None) -> PlanState:
        state = PlanState(self._start(task, run_id), task)
        self._save_state(state)
        return state

    def resume(self, run_id: str) -> AgentResult:
        """Continue a saved run from its last save (mid-step runs continue their operator exactly)."""
        return self.continue_state(PlanState.from_dict(self._saved_state(run_id)))

    def continue_state(self, state: PlanState) -> AgentResult:
        self._emit("run_started", state.steps, task=state.task, run_id=state.run_id)
        with self._span("agent.run", None, agent=self.name, kind=self.kind, run_id=state.run_id) as span:
            while state.status == "running":
                self.model.usage = state.usage
                limit = exceeded(self.limits, state.usage, state.steps)
                if limit is not None:
                    state.finish(*limit)
                elif state.plan is None:
                    self._make_plan(state)
                elif state.current_step() is None:
                    last = state.done[-1]["values"] if state.done else {}
                    answer = next(iter(last.values())) if len(last) == 1 else last
                    state.finish("answer", f"all {len(state.plan)} plan steps passed their checks", answer)
                else:
                    self._run_step(state)
                self._save_state(state)
            span.set(stop_reason=state.stop_reason, steps=state.steps, replans=state.replans)
        self._emit("run_finished", state.steps, stop_reason=state.stop_reason, detail=state.detail, answer=state.answer)
        return AgentResult(
            state.run_id,
            state.answer,
            state.stop_reason or "failed",
            state.detail,
            state.steps,
            state.usage,
            [],
            state.tool_log,
            dict(state.values),
            list(state.history),
        )

    def replan(self, state: PlanState, reason: str) -> None:
        """Replace the rest of the plan: the model plans the remaining work from the values produced so far."""
        if state.replans >= self.max_replans:
            state.finish("replan_limit", f"replanned {state.replans} times; the last problem: {reason}")
            return
        state.replans += 1
        state.history.append({"event": "replan", "reason": reason, "after_steps": len(state.done)})
        self._emit("replanned", state.steps, reason=reason, replans=state.replans)
        self._make_plan(state, reason)

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "kind": self.kind,
                "name": self.name,
                "tools": sorted(self.tools.names),
                "system": self.system_prompt,
                "bounds": [self.bounds.min_steps, self.bounds.max_steps],
                "step_max_steps": self.step_max_steps,
                "max_replans": self.max_replans,
                "tool_choice": self.tool_choice,
            }
        )

    # -- planning ------------------------------------------------------------------------------

    def _planner_messages(self, state: PlanState, problem: str | None) -> list[dict[str, Any]]:
        tools = "\n".join(f"- {t.name}: {t.description.splitlines()[0]}" for t in self.tools) or "- (no tools)"
        lines = [f"Task: {state.task}", f"Tools:\n{tools}"]
        if state.done:
            done = "\n".join(f"- {name} = {value}" for name, value in state.values.items())
            lines.append(f"Already done ({len(state.done)} steps). Values you can name in `needs`:\n{done}")
        if problem:
            lines.append(f"The previous plan failed: {problem}\nPlan the remaining work again, avoiding that problem.")
        system = f"{self.system_prompt}\n\n{PLANNER_INSTRUCTIONS}"
        return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(lines)}]

    def _make_plan(self, state: PlanState, problem: str | None = None) -> None:
        schema = plan_schema_model(self.bounds, self.tools.names)
        messages = self._planner_messages(state, problem)
        errors = []
        for _ in range(self.plan_attempts):
            try:
                plan: Plan = self.model.structured(messages, schema, max_attempts=1)
                validate_plan(plan, self.bounds, self.tools.names, state.values)
            except (StructuredOutputError, PlanError) as err:
                errors.append(str(err))
                messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}\n\nNot valid: {err}"}
                continue
            state.plan = [step.model_dump() for step in plan.steps]
            state.position = 0
            state.history.append({"event": "plan", "steps": state.plan})
            self._emit("plan_made", state.steps, steps=[s.instruction for s in plan.steps])
            return
        state.finish("invalid_plan", f"no valid plan in {self.plan_attempts} attempts: " + " | ".join(errors))

    # -- execution ------------------------------------------------------------------------------

    def _packet(self, state: PlanState, step: PlanStep, result_model: type[BaseModel]) -> HandoffPacket:
        return HandoffPacket(
            role="You carry out one step of a plan with the tools you are given.",
            task=step.instruction,
            distilled_context=f"The overall task: {state.task}",
            artifacts=[Artifact(name=n, content=str(state.values[n])) for n in step.needs],
            constraints=[f"Use only these tools: {', '.join(step.tools) or 'none'}."],
            output_format=f"Call final_answer with {', '.join(step.produces)}: the values this step produces.",
            output_schema=result_model.model_json_schema(),
            error_budget=ErrorBudget(
                allowed_actions=[t for t in step.tools if self.policy.permission(t) == "allowed"],
                approval_required=[t for t in step.tools if self.policy.permission(t) == "requires_approval"],
                max_failed_attempts=self.step_max_steps,
            ),
        )

    def _run_step(self, state: PlanState) -> None:
        step = state.current_step()
        assert step is not None
        result_model = step_result_model(step)
        packet = self._packet(state, step, result_model)
        if self.handoff_checks and state.inner is None:
            siblings = {
                name: f"step {other['id']}"
                for other in state.plan or []
                if other["id"] != step.id
                for name in other["produces"]
            }
            problems = failures(
                check_handoff(packet, sibling_outputs=siblings, received=step.needs, max_task_words=self.max_task_words)
            )
            self._emit("handoff_checked", state.steps, plan_step=step.id, problems=problems)
            if problems:
                self._step_failed(state, step, problems)
                return
        if state.inner is None:
            state.attempts += 1
        operator = self._operator(state, step, packet, result_model)
        inner = (
            RunState.from_dict(state.inner)
            if state.inner is not None
            else operator.new_state(f"Do plan step {step.id}: {step.instruction}", f"{state.run_id}-{state.attempts}")
        )
        result = operator.continue_state(inner)
        self.model.usage = state.usage  # the operator counted into its own usage; replanning counts here
        state.inner = None
        state.usage.merge(result.usage)
        state.steps += result.steps
        state.tool_log += [{"plan_step": step.id, **entry} for entry in result.tool_log]
        if result.stop_reason in ("max_tokens", "max_cost", "max_steps") and exceeded(
            self.limits, state.usage, state.steps
        ):
            return  # the whole run's budget is spent: the loop stops with it
        if not result.ok:
            self._step_failed(state, step, [f"step {step.id} ended without its values ({result.stop_reason}: {result.detail})"])  # fmt: skip
            return
        produced = dict(result.answer)
        problems = self._checkpoint(state, step, produced)
        if problems:
            self._step_failed(state, step, problems)
            return
        state.values.update(produced)
        state.done.append({"id": step.id, "instruction": step.instruction, "values": produced})
        state.history.append({"event": "step_done", "step": step.id, "values": produced})
        state.position += 1

    def _operator(self, state: PlanState, step: PlanStep, packet: HandoffPacket, result_model) -> ReActAgent:
        def persist(inner: RunState) -> None:
            if inner.status == "running":
                state.inner = inner.to_dict()
                self._save_state(state)

        budget = remaining(self.limits, state.usage, state.steps, self.step_max_steps)
        exposed = list(step.tools)
        return ReActAgent(
            self.model,
            self.tools,
            name=f"{self.name}.step{step.id}",
            system_prompt=packet.render_system_prompt(),
            policy=self.policy,
            approver=self.approver,
            limits=budget,
            tool_choice=self.tool_choice,
            parallel_tool_calls=self.parallel_tool_calls,
            answer_schema=result_model,
            exposure=lambda _step: exposed,
            reminder=f"Current plan step {step.id}: {step.instruction} Produce: {', '.join(step.produces)}.",
            tracer=self.tracer,
            on_event=self.on_event,
            on_step=persist,
            seed=derive_seed(self.seed, state.attempts),
        )

    def _checkpoint(self, state: PlanState, step: PlanStep, produced: Mapping[str, Any]) -> list[str]:
        """Step N produced what it promised, non-empty, and everything step N+1 needs is now available."""
        problems = [f"step {step.id} did not produce {name!r}" for name in step.produces if not produced.get(name)]
        problems += [
            f"step {step.id} produced {name!r} as an error: {str(value)[:120]}"
            for name, value in produced.items()
            if str(value).strip().lower().startswith(("error", "refused"))
        ]
        available = set(state.values) | set(produced)
        if state.plan is not None and state.position + 1 < len(state.plan):
            following = PlanStep.model_validate(state.plan[state.position + 1])
            missing = [n for n in following.needs if n not in available]
            if missing:
                problems.append(f"step {following.id} needs {missing}, which step {step.id} did not produce")
        if not problems and self.check is not None:
            found = self.check(step, produced, {**state.values, **produced})
            if found:
                problems.append(f"step {step.id} failed its check: {found}")
        return problems

    def _step_failed(self, state: PlanState, step: PlanStep, problems: list[str]) -> None:
        reason = "; ".join(problems)
        state.history.append({"event": "checkpoint_failed", "step": step.id, "problems": problems})
        self._emit("checkpoint_failed", state.steps, plan_step=step.id, problems=problems)
        self.replan(state, reason)
