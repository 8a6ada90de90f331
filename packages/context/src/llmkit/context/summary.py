"""The structured summary of older turns: five fields, a JSON schema, one rendering."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TurnSummary(BaseModel):
    """What a summary of older turns must carry forward (the five fields)."""

    model_config = ConfigDict(extra="forbid")

    objective: str = Field(description="what the user is trying to achieve overall")
    decisions: list[str] = Field(description="choices made so far that later turns rely on")
    actions_and_outcomes: list[str] = Field(description="what was done and what came of it, including failures")
    current_state: str = Field(description="where the work stands now")
    constraints: list[str] = Field(description="rules and requirements the user set that still apply")


def render_summary(summary: TurnSummary, through_turn: int) -> str:
    """The summary as the message that stands in for turns 1..through_turn."""

    def bullets(values: list[str]) -> str:
        return "\n".join(f"- {v}" for v in values) if values else "- (none)"

    return (
        f"Summary of the conversation so far (turns 1-{through_turn}):\n"
        f"Objective: {summary.objective}\n"
        f"Decisions:\n{bullets(summary.decisions)}\n"
        f"Actions and outcomes:\n{bullets(summary.actions_and_outcomes)}\n"
        f"Current state: {summary.current_state}\n"
        f"Constraints:\n{bullets(summary.constraints)}"
    )
