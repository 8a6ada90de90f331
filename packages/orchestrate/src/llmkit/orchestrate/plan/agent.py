"""Plan-and-execute: a plan as structured output, its shape validated before anything runs, each step carried
out by an operator (a ReAct agent with only that step's tools, its plan step re-injected on every call), a
validation checkpoint between steps, and replanning as a first-class operation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from llmkit.context import Artifact, ErrorBudget, HandoffPacket, StructuredOutputError
from llmkit.core.backends import Backend
from llmkit.core.sampling.rng import derive_seed

from ..errors import PlanError
from ..handoffs import DEFAULT_MAX_TASK_WORDS, check_handoff, failures
from ..limits import Limits, exceeded
from ..model import AgentModel
from ..react import ReActAgent
from ..run_loop import Agent, NoSpan
from ..settings import AgentSettings
from ..tools.toolbox import ToolLike, ToolSet
from ..tracing import Span
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


class PlanAndExecuteAgent(Agent):
    """The plan-and-execute step policy. The settings' `limits` bound the whole run (operator steps, tokens,
    cost); `step_max_steps` bounds one plan step; `max_replans` bounds replanning; `check` adds a domain check to
    the validation checkpoint. Operators get this agent's settings, narrowed to what the run has left."""

    kind = "plan"
    default_name = "planner"
    default_limits = Limits(max_steps=20)
    state_type = PlanState

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        settings: AgentSettings | None = None,
        bounds: PlanBounds | None = None,
        step_max_steps: int = 4,
        max_replans: int = 2,
        plan_attempts: int = 3,
        check: StepCheck | None = None,
        handoff_checks: bool = True,
        max_task_words: int = DEFAULT_MAX_TASK_WORDS,
        **options: Any,
    ):
        if step_max_steps < 1 or max_replans < 0 or plan_attempts < 1:
            raise PlanError("step_max_steps and plan_attempts must be at least 1, max_replans at least 0")
        super().__init__(backend, tools, settings=settings, **options)
        self.bounds = bounds or PlanBounds()
        self.step_max_steps, self.max_replans, self.plan_attempts = step_max_steps, max_replans, plan_attempts
        self.check, self.handoff_checks, self.max_task_words = check, handoff_checks, max_task_words

    def config(self) -> dict[str, Any]:
        return {
            "bounds": [self.bounds.min_steps, self.bounds.max_steps],
            "step_max_steps": self.step_max_steps,
            "max_replans": self.max_replans,
            "tool_choice": self.tool_choice,
        }

    def result_values(self, state: PlanState) -> dict[str, Any]:
        return dict(state.values)

    def run_attributes(self, state: PlanState) -> dict[str, Any]:
        return {"replans": state.replans}

    def step(self, state: PlanState, span: Span | NoSpan) -> None:
        if state.plan is None:
            self._make_plan(state)
        elif state.current_step() is None:
            last = state.done[-1]["values"] if state.done else {}
            answer = next(iter(last.values())) if len(last) == 1 else last
            state.finish("answer", f"all {len(state.plan)} plan steps passed their checks", answer)
        else:
            self._run_step(state, span)

    def replan(self, state: PlanState, reason: str) -> None:
        """Replace the rest of the plan: the model plans the remaining work from the values produced so far."""
        if state.replans >= self.max_replans:
            state.finish("replan_limit", f"replanned {state.replans} times; the last problem: {reason}")
            return
        state.replans += 1
        state.history.append({"event": "replan", "reason": reason, "after_steps": len(state.done)})
        self.emit("replanned", state.steps, reason=reason, replans=state.replans)
        self._make_plan(state, reason)

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
            self.emit("plan_made", state.steps, steps=[s.instruction for s in plan.steps])
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

    def _run_step(self, state: PlanState, span: Span | NoSpan) -> None:
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
            self.emit("handoff_checked", state.steps, plan_step=step.id, problems=problems)
            if problems:
                self._step_failed(state, step, problems)
                return
        if state.inner is None:
            state.attempts += 1
        operator = ReActAgent(
            self.model,
            self.tools,
            settings=self.sub_settings(
                state,
                name=f"{self.name}.step{step.id}",
                system_prompt=packet.render_system_prompt(),
                seed=derive_seed(self.seed, state.attempts),
                max_steps=self.step_max_steps,
            ),
            answer_schema=result_model,
            exposure=lambda _step, exposed=list(step.tools): exposed,
            reminder=f"Current plan step {step.id}: {step.instruction} Produce: {', '.join(step.produces)}.",
        )
        task, run_id = f"Do plan step {step.id}: {step.instruction}", f"{state.run_id}-{state.attempts}"
        result = self.run_inner(state, operator, task, run_id, {"plan_step": step.id}, span)
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
        self.emit("checkpoint_failed", state.steps, plan_step=step.id, problems=problems)
        self.replan(state, reason)
