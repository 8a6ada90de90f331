"""Absolute rubric scores: the judge grades one answer on a 1-10 scale against a written rubric."""

from __future__ import annotations

import re
from collections.abc import Sequence

from llmkit.core.sampling import SamplingParams

from ..client import ModelClient

RUBRIC_PROMPT = (
    "Grade the answer to the question on a scale from 1 (useless or wrong) to 10 (fully correct, clear and "
    "complete), following this rubric:\n{rubric}\n\nQuestion:\n{question}\n\nAnswer:\n{answer}\n\n"
    "Reply in the form 'Score: N'."
)
DEFAULT_RUBRIC = (
    "Correctness matters most; then whether it answers what was asked; length and formatting do not earn points."
)


def parse_score(text: str, low: int = 1, high: int = 10) -> int | None:
    """The grade after 'Score:' (or the first integer) when it lies in [low, high]."""
    match = re.search(r"score\s*[:=]?\s*(\d+)", text, re.I) or re.search(r"\b(\d+)\b", text)
    if not match:
        return None
    value = int(match.group(1))
    return value if low <= value <= high else None


class RubricJudge:
    """Grades (question, answer) pairs with any backend; unparsable replies are None."""

    def __init__(
        self, client: ModelClient, rubric: str = DEFAULT_RUBRIC, prompt: str = RUBRIC_PROMPT, name: str = "judge"
    ):
        self.client, self.rubric, self.prompt, self.name = client, rubric, prompt, name

    def score(self, questions: Sequence[str], answers: Sequence[str]) -> list[int | None]:
        conversations = [
            [{"role": "user", "content": self.prompt.format(rubric=self.rubric, question=q, answer=a)}]
            for q, a in zip(questions, answers, strict=True)
        ]
        replies = self.client.chat(
            conversations, [SamplingParams(temperature=0, max_tokens=12, seed=0)] * len(conversations)
        )
        return [parse_score(r[0].content) for r in replies]
