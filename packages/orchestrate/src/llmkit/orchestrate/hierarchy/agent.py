"""Hierarchical orchestration: strategic (decompose the task into objectives) -> tactical (a plan per
objective) -> operational (a ReAct operator per plan step). Every level hands down a `HandoffPacket` from
llmkit-context, and every packet passes the summary, fresh-context and independence tests before it goes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmkit.context import Artifact, HandoffPacket, ResultSummary, StructuredOutputError
from llmkit.core.backends import Backend
from llmkit.core.sampling.rng import derive_seed

from ..errors import OrchestrateError
from ..handoffs import DEFAULT_MAX_TASK_WORDS, check_handoff, failures
from ..limits import Limits
from ..model import AgentModel
from ..plan import PlanAndExecuteAgent, PlanBounds
from ..run_loop import Agent, NoSpan
from ..settings import AgentSettings
from ..tools.toolbox import ToolLike, ToolSet
from ..tracing import Span
from .schema import Decomposition, Objective, decomposition_model, decomposition_problems
from .state import HierarchyState

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


class HierarchicalAgent(Agent):
    """The hierarchical step policy. `max_objectives` bounds the strategic decomposition; `decompose_attempts`
    how often it is redone when a handoff fails its checks; the tactical planners get this agent's settings
    (narrowed to what the run has left), `bounds`, `step_max_steps` and `max_replans`."""

    kind = "hierarchical"
    default_name = "strategist"
    default_limits = Limits(max_steps=40)
    state_type = HierarchyState

    def __init__(
        self,
        backend: Backend | AgentModel,
        tools: Iterable[ToolLike] | ToolSet = (),
        *,
        settings: AgentSettings | None = None,
        max_objectives: int = 4,
        decompose_attempts: int = 3,
        bounds: PlanBounds | None = None,
        step_max_steps: int = 4,
        max_replans: int = 1,
        max_task_words: int = DEFAULT_MAX_TASK_WORDS,
        **options: Any,
    ):
        if max_objectives < 1 or decompose_attempts < 1:
            raise OrchestrateError("max_objectives and decompose_attempts must be at least 1")
        super().__init__(backend, tools, settings=settings, **options)
        self.max_objectives, self.decompose_attempts = max_objectives, decompose_attempts
        self.bounds, self.step_max_steps, self.max_replans = bounds or PlanBounds(), step_max_steps, max_replans
        self.max_task_words = max_task_words

    def config(self) -> dict[str, Any]:
        return {"max_objectives": self.max_objectives, "bounds": [self.bounds.min_steps, self.bounds.max_steps]}

    def result_values(self, state: HierarchyState) -> dict[str, Any]:
        return {r["artifacts"][0]["name"]: r["artifacts"][0]["content"] for r in state.results if r["artifacts"]}

    def step(self, state: HierarchyState, span: Span | NoSpan) -> None:
        if state.objectives is None:
            self._decompose(state)
        elif state.position < len(state.objectives):
            self._pursue(state, Objective.model_validate(state.objectives[state.position]), span)
        else:
            self._synthesize(state)

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
        self.emit("plan_made", state.steps, objectives=[o.goal for o in decomposition.objectives])

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
            self.emit("handoff_checked", state.steps, objective=objective.id, problems=found)
            problems += [f"objective {objective.id}: {p}" for p in found]
        return problems

    # -- tactical and operational ---------------------------------------------------------------

    def _pursue(self, state: HierarchyState, objective: Objective, span: Span | NoSpan) -> None:
        objectives = [Objective.model_validate(o) for o in state.objectives or []]
        results = {a["name"]: a["content"] for r in state.results for a in r["artifacts"]}
        packet = self.packet(objective, objectives, results)
        self.emit("handoff", state.steps, objective=objective.id, goal=objective.goal)
        tactical = PlanAndExecuteAgent(
            self.model,
            self.tools,
            settings=self.sub_settings(
                state,
                name=f"{self.name}.objective{objective.id}",
                system_prompt=packet.render_system_prompt(),
                seed=derive_seed(self.seed, objective.id),
            ),
            bounds=self.bounds,
            step_max_steps=self.step_max_steps,
            max_replans=self.max_replans,
            max_task_words=self.max_task_words,
        )
        run_id = f"{state.run_id}-o{objective.id}"
        result = self.run_inner(state, tactical, objective.goal, run_id, {"objective": objective.id}, span)
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
