"""Hierarchical orchestration: strategic (decompose the task into objectives) -> tactical (a plan per
objective) -> operational (a ReAct operator per plan step). Every level hands down a `HandoffPacket` from
llmkit-context, and every packet passes the summary, fresh-context and independence tests before it goes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmkit.context import Artifact, HandoffPacket, ResultSummary, StructuredOutputError
from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from ..checkpoints import CheckpointStore, fingerprint
from ..errors import OrchestrateError
from ..events import EventHandler, ignore_events
from ..gates import Approver, ToolPolicy, deny_all
from ..handoffs import DEFAULT_MAX_TASK_WORDS, check_handoff, failures
from ..limits import Limits, Pricing, Usage, exceeded, remaining
from ..model import AgentModel
from ..plan import PlanAndExecuteAgent, PlanBounds, PlanState
from ..react import DEFAULT_SYSTEM_PROMPT
from ..run_state import AgentResult
from ..runner import SavedRun
from ..tools.toolbox import ToolLike, ToolSet
from ..tracing import Tracer
from .schema import Decomposition, Objective, decomposition_model, decomposition_problems

STRATEGIST_INSTRUCTIONS = (
    "Decompose the task into a few objectives. Each objective has an id (1, 2, ...), a self-contained goal, "
    "the context it needs stated in full, the ids of earlier objectives whose results it uses, and the name of "
    "its result (lower_snake_case). Prefer objectives that do not depend on each other."
)


def inputs_of(objective: Objective, objectives: list[Objective]) -> list[str]:
    """The results of the objectives `objective` depends on, by name."""
    return [o.produces for o in objectives if o.id in objective.depends_on]


class FinalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: str = Field(min_length=1, description="the answer to the task, from the objectives' results")


@dataclasses.dataclass
class HierarchyState:
    run_id: str
    task: str
    objectives: list[dict[str, Any]] | None = None
    position: int = 0
    results: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # ResultSummary per objective
    decompositions: int = 0
    inner: dict[str, Any] | None = None  # the tactical PlanState while an objective is in progress
    usage: Usage = dataclasses.field(default_factory=Usage)
    steps: int = 0
    saves: int = 0
    status: str = "running"
    answer: Any = None
    stop_reason: str | None = None
    detail: str = ""
    tool_log: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def finish(self, reason: str, detail: str, answer: Any = None) -> None:
        self.status, self.stop_reason, self.detail, self.answer = "finished", reason, detail, answer

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "usage": self.usage.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HierarchyState:
        return cls(**{**data, "usage": Usage.from_dict(data["usage"])})


class HierarchicalAgent(SavedRun):
    """`max_objectives` bounds the strategic decomposition; `decompose_attempts` how often it is redone when a
    handoff fails its checks; the tactical planners get `bounds`, `step_max_steps` and `max_replans`."""

    kind = "hierarchical"

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        name: str = "strategist",
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        policy: ToolPolicy | None = None,
        approver: Approver = deny_all,
        limits: Limits | None = None,
        pricing: Pricing | None = None,
        params: SamplingParams | None = None,
        constrain: bool | None = None,
        max_objectives: int = 4,
        decompose_attempts: int = 3,
        bounds: PlanBounds | None = None,
        step_max_steps: int = 4,
        max_replans: int = 1,
        max_task_words: int = DEFAULT_MAX_TASK_WORDS,
        checkpoints: CheckpointStore | None = None,
        tracer: Tracer | None = None,
        on_event: EventHandler = ignore_events,
        on_step: Callable[[HierarchyState], None] | None = None,
        seed: int = 0,
    ):
        if max_objectives < 1 or decompose_attempts < 1:
            raise OrchestrateError("max_objectives and decompose_attempts must be at least 1")
        self.model = backend if isinstance(backend, AgentModel) else AgentModel(backend, params, constrain=constrain)
        if pricing is not None:
            self.model.pricing = pricing
        self.tools = tools if isinstance(tools, ToolSet) else ToolSet(tools)
        self.name, self.system_prompt = name, system_prompt
        self.policy = policy or ToolPolicy.from_tools(self.tools)
        self.approver, self.limits = approver, limits or Limits(max_steps=40)
        self.max_objectives, self.decompose_attempts = max_objectives, decompose_attempts
        self.bounds, self.step_max_steps, self.max_replans = bounds or PlanBounds(), step_max_steps, max_replans
        self.max_task_words = max_task_words
        self.checkpoints, self.tracer, self.on_event, self.on_step = checkpoints, tracer, on_event, on_step
        self.seed = seed

    def run(self, task: str, run_id: str | None = None) -> AgentResult:
        state = HierarchyState(self._start(task, run_id), task)
        self._save_state(state)
        return self.continue_state(state)

    def resume(self, run_id: str) -> AgentResult:
        return self.continue_state(HierarchyState.from_dict(self._saved_state(run_id)))

    def fingerprint(self) -> str:
        return fingerprint(
            {
                "kind": self.kind,
                "name": self.name,
                "tools": sorted(self.tools.names),
                "system": self.system_prompt,
                "max_objectives": self.max_objectives,
                "bounds": [self.bounds.min_steps, self.bounds.max_steps],
            }
        )

    def continue_state(self, state: HierarchyState) -> AgentResult:
        self._emit("run_started", state.steps, task=state.task, run_id=state.run_id)
        with self._span("agent.run", None, agent=self.name, kind=self.kind, run_id=state.run_id) as span:
            while state.status == "running":
                self.model.usage = state.usage
                limit = exceeded(self.limits, state.usage, state.steps)
                if limit is not None:
                    state.finish(*limit)
                elif state.objectives is None:
                    self._decompose(state)
                elif state.position < len(state.objectives):
                    self._pursue(state, Objective.model_validate(state.objectives[state.position]))
                else:
                    self._synthesize(state)
                self._save_state(state)
            span.set(stop_reason=state.stop_reason, steps=state.steps)
        self._emit("run_finished", state.steps, stop_reason=state.stop_reason, detail=state.detail, answer=state.answer)
        values = {r["artifacts"][0]["name"]: r["artifacts"][0]["content"] for r in state.results if r["artifacts"]}
        return AgentResult(
            state.run_id,
            state.answer,
            state.stop_reason or "failed",
            state.detail,
            state.steps,
            state.usage,
            [],
            state.tool_log,
            values,
            state.history,
        )

    # -- strategic ------------------------------------------------------------------------------

    def packet(
        self, objective: Objective, objectives: list[Objective], results: dict[str, str] | None = None
    ) -> HandoffPacket:
        """The handoff to the tactical level; `results` fills in the outputs of the objectives it depends on."""
        inputs = inputs_of(objective, objectives)
        return HandoffPacket(
            role="You plan and carry out one objective of a larger task with the tools you are given.",
            task=objective.goal,
            distilled_context=objective.context or "(nothing beyond the task)",
            artifacts=[Artifact(name=n, content=(results or {}).get(n, "")) for n in inputs],
            constraints=[f"Use only these tools: {', '.join(self.tools.names) or 'none'}."],
            output_format=f"The value of the last plan step is the objective's result, {objective.produces}.",
        )

    def _decompose(self, state: HierarchyState) -> None:
        feedback = [h["problems"] for h in state.history if h["event"] in ("handoff_rejected", "invalid_decomposition")]
        lines = [f"Task: {state.task}"]
        if feedback:
            lines.append("The last decomposition was refused: " + "; ".join(feedback[-1]) + ". Decompose again.")
        messages = [
            {"role": "system", "content": f"{self.system_prompt}\n\n{STRATEGIST_INSTRUCTIONS}"},
            {"role": "user", "content": "\n\n".join(lines)},
        ]
        state.decompositions += 1
        try:
            decomposition: Decomposition = self.model.structured(messages, decomposition_model(self.max_objectives))
            problems = decomposition_problems(decomposition, self.max_objectives)
        except StructuredOutputError as err:
            problems = [str(err)]
            decomposition = None
        # a malformed decomposition is an invalid plan; a well-formed one whose handoffs fail is rejected
        kind = "invalid_decomposition" if problems else "handoff_rejected"
        if not problems:
            problems = self._check_handoffs(state, decomposition.objectives)
        if problems:
            state.history.append({"event": kind, "problems": problems})
            if state.decompositions >= self.decompose_attempts:
                reason = "invalid_plan" if kind == "invalid_decomposition" else "handoff_rejected"
                state.finish(reason, f"{state.decompositions} decompositions refused: " + "; ".join(problems))
            return
        state.objectives, state.position = [o.model_dump() for o in decomposition.objectives], 0
        state.history.append({"event": "decomposition", "objectives": state.objectives})
        self._emit("plan_made", state.steps, objectives=[o.goal for o in decomposition.objectives])

    def _check_handoffs(self, state: HierarchyState, objectives: list[Objective]) -> list[str]:
        problems = []
        for objective in objectives:
            siblings = {o.produces: f"objective {o.id}" for o in objectives if o.id != objective.id}
            found = failures(
                check_handoff(
                    self.packet(objective, objectives),
                    sibling_outputs=siblings,
                    received=inputs_of(objective, objectives),
                    max_task_words=self.max_task_words,
                )
            )
            self._emit("handoff_checked", state.steps, objective=objective.id, problems=found)
            problems += [f"objective {objective.id}: {p}" for p in found]
        return problems

    # -- tactical and operational ---------------------------------------------------------------

    def _pursue(self, state: HierarchyState, objective: Objective) -> None:
        objectives = [Objective.model_validate(o) for o in state.objectives or []]
        results = {a["name"]: a["content"] for r in state.results for a in r["artifacts"]}
        packet = self.packet(objective, objectives, results)
        self._emit("handoff", state.steps, objective=objective.id, goal=objective.goal)

        def persist(inner: PlanState) -> None:
            if inner.status == "running":
                state.inner = inner.to_dict()
                self._save_state(state)

        tactical = PlanAndExecuteAgent(
            self.model,
            self.tools,
            name=f"{self.name}.objective{objective.id}",
            system_prompt=packet.render_system_prompt(),
            policy=self.policy,
            approver=self.approver,
            limits=remaining(self.limits, state.usage, state.steps),
            bounds=self.bounds,
            step_max_steps=self.step_max_steps,
            max_replans=self.max_replans,
            max_task_words=self.max_task_words,
            tracer=self.tracer,
            on_event=self.on_event,
            on_step=persist,
            seed=self.seed * 31 + objective.id,
        )
        inner = (
            PlanState.from_dict(state.inner)
            if state.inner is not None
            else PlanState(f"{state.run_id}-o{objective.id}", objective.goal)
        )
        result = tactical.continue_state(inner)
        self.model.usage = state.usage
        state.inner = None
        state.usage.merge(result.usage)
        state.steps += result.steps
        state.tool_log += [{"objective": objective.id, **entry} for entry in result.tool_log]
        summary = ResultSummary(
            status="completed" if result.ok else "failed",
            summary=str(result.answer) if result.ok else f"{result.stop_reason}: {result.detail}",
            artifacts=[Artifact(name=objective.produces, content=str(result.answer))] if result.ok else [],
            actions_taken=[f"{e['name']} -> {e['status']}" for e in result.tool_log if e["name"] != "final_answer"],
        )
        state.results.append(summary.model_dump())
        state.history.append({"event": "objective_done", "objective": objective.id, "result": summary.model_dump()})
        if not result.ok:
            state.finish(result.stop_reason, f"objective {objective.id} failed: {result.detail}")
            return
        state.position += 1

    def _synthesize(self, state: HierarchyState) -> None:
        summaries = [ResultSummary.model_validate(r) for r in state.results]
        if len(summaries) == 1:
            state.finish("answer", "the only objective was completed", summaries[0].summary)
            return
        messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": state.task}]
        messages += [s.to_orchestrator_message(f"objective {i}") for i, s in enumerate(summaries, 1)]
        messages.append({"role": "user", "content": "Give the answer to the task from these results."})
        try:
            final = self.model.structured(messages, FinalAnswer)
        except StructuredOutputError as err:
            state.finish("failed", f"no final answer: {err}")
            return
        state.finish("answer", f"all {len(summaries)} objectives were completed", final.answer)
