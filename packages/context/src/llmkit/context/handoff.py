"""Handoff packets to subagents (rendered to their system prompt) and the structured results they return."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import StructuredOutputError
from .structured import extract_json

if TYPE_CHECKING:
    from .window import ContextWindow


class ErrorBudget(BaseModel):
    """What the subagent may do on its own, what needs approval, and how many failures end the task."""

    model_config = ConfigDict(extra="forbid")

    allowed_actions: list[str] = Field(default_factory=list)
    approval_required: list[str] = Field(default_factory=list)
    max_failed_attempts: int = Field(default=3, ge=0)


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    content: str = ""


class HandoffPacket(BaseModel):
    """Everything a subagent gets: it starts with no other context."""

    model_config = ConfigDict(extra="forbid")

    role: str
    task: str
    distilled_context: str = Field(description="only what the subagent needs, distilled by the orchestrator")
    artifacts: list[Artifact] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    output_format: str = "Reply with one JSON object matching the result schema."
    output_schema: dict[str, Any] | None = None  # defaults to ResultSummary's schema
    error_budget: ErrorBudget = Field(default_factory=ErrorBudget)

    @classmethod
    def from_window(
        cls, window: ContextWindow, *, role: str, task: str, distilled_context: str, **fields: Any
    ) -> HandoffPacket:
        """A packet that carries the window's constraints: those in force as `constraints` (the window's
        own, then the user's stated ones in their words), and the state object, whose record also keeps
        each superseded constraint with the correction that replaced it, in the context."""
        state = window.state.render()
        context = f"{distilled_context}\n\nState (JSON):\n{state}" if state else distilled_context
        constraints = [*window.anchored_constraints(), *fields.pop("constraints", [])]
        return cls(role=role, task=task, distilled_context=context, constraints=constraints, **fields)

    def result_schema(self) -> dict[str, Any]:
        return self.output_schema or ResultSummary.model_json_schema()

    def render_system_prompt(self) -> str:
        """The subagent's whole system prompt, in a fixed section order (stable across identical packets)."""

        def bullets(values: list[str], empty: str) -> str:
            return "\n".join(f"- {v}" for v in values) if values else f"- {empty}"

        sections = [
            f"# Role\n{self.role}",
            f"# Task\n{self.task}",
            f"# Context\n{self.distilled_context}",
        ]
        if self.artifacts:
            rendered = [
                f'<artifact name="{a.name}">\n{a.description + chr(10) if a.description else ""}{a.content}\n</artifact>'
                for a in self.artifacts
            ]
            sections.append("# Artifacts\n" + "\n\n".join(rendered))
        sections.append("# Constraints\n" + bullets(self.constraints, "none beyond the task"))
        budget = self.error_budget
        sections.append(
            "# Error budget\n"
            f"You may, without asking:\n{bullets(budget.allowed_actions, 'nothing beyond reading and reasoning')}\n"
            f"Ask for approval before:\n{bullets(budget.approval_required, 'nothing listed')}\n"
            f"Stop and report after {budget.max_failed_attempts} failed attempts."
        )
        sections.append(
            f"# Output\n{self.output_format}\nJSON schema:\n{json.dumps(self.result_schema(), sort_keys=True)}"
        )
        return "\n\n".join(sections)


class ResultSummary(BaseModel):
    """What a subagent hands back: status, the answer in brief, and what the orchestrator needs to go on."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["completed", "partial", "failed", "needs_approval"]
    summary: str
    artifacts: list[Artifact] = Field(default_factory=list)
    decisions: list[str] = Field(default_factory=list)
    open_questions: list[str] = Field(default_factory=list)
    actions_taken: list[str] = Field(default_factory=list)

    @classmethod
    def parse(cls, reply: str) -> ResultSummary:
        """Validate a subagent's reply; invalid output is an error, never silently accepted."""
        try:
            return cls.model_validate_json(extract_json(reply))
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in err.errors())
            raise StructuredOutputError(f"subagent result does not match ResultSummary: {problems}") from None

    def to_orchestrator_message(self, agent: str) -> dict[str, str]:
        """The result as one compact message for the orchestrator's history (artifacts by name only)."""
        lines = [f"Subagent {agent} finished: {self.status}.", f"Summary: {self.summary}"]
        for title, values in (
            ("Decisions", self.decisions),
            ("Actions taken", self.actions_taken),
            ("Open questions", self.open_questions),
        ):
            if values:
                lines.append(f"{title}: " + "; ".join(values))
        if self.artifacts:
            lines.append("Artifacts: " + ", ".join(a.name for a in self.artifacts))
        return {"role": "user", "content": "\n".join(lines)}
