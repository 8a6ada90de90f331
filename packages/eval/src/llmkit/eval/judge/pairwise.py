"""Pairwise judging in both presentation orders: a verdict counts only if it survives the swap."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from llmkit.core.sampling import SamplingParams

from ..client import ModelClient
from ..stats import bootstrap

PAIRWISE_PROMPT = (
    "You are a careful judge. Compare two answers to the question below and decide which one is more "
    "correct and helpful. Ignore length and style; judge substance.\n\n"
    "Question:\n{question}\n\n[Answer A]\n{first}\n\n[Answer B]\n{second}\n\n"
    'Reply with one word: "A" if Answer A is better, "B" if Answer B is better, or "tie".'
)
VERDICTS = ("A", "B", "tie")


@dataclasses.dataclass(frozen=True)
class PairItem:
    """One question and the two answers under comparison (x: run A's, y: run B's)."""

    id: str
    question: str
    answer_x: str
    answer_y: str


@dataclasses.dataclass(frozen=True)
class PairwiseJudgment:
    """Verdicts in both orders; `winner` is x, y or tie when they agree, None when the swap flipped it."""

    id: str
    verdict_original: str | None  # x shown as A
    verdict_swapped: str | None  # y shown as A
    winner: str | None
    consistent: bool


def parse_verdict(text: str) -> str | None:
    """'A', 'B' or 'tie' from a judge's reply (the first one named), None when it names none.

    Letters count only as capitals (the article "a" is not a verdict) unless the reply is the bare letter.
    """
    stripped = text.strip().rstrip(".").strip("\"'")
    if stripped.lower() in ("a", "b"):
        return stripped.upper()
    found = [(m.start(), m.group(1)) for m in re.finditer(r"\b(A|B)\b", text)]
    found += [(m.start(), "tie") for m in re.finditer(r"\btie\b", text, re.I)]
    return min(found)[1] if found else None


def resolve_swap(verdict_original: str | None, verdict_swapped: str | None) -> tuple[str | None, bool]:
    """(winner, consistent): map both verdicts back to x/y; they must name the same winner (or both tie)."""
    if verdict_original is None or verdict_swapped is None:
        return None, False
    first = {"A": "x", "B": "y", "tie": "tie"}[verdict_original]
    second = {"A": "y", "B": "x", "tie": "tie"}[verdict_swapped]
    return (first, True) if first == second else (None, False)


class PairwiseJudge:
    """Any llmkit backend as a pairwise judge: by generation (parse the word) or by log-likelihood of A/B/tie."""

    def __init__(
        self, client: ModelClient, method: str = "generate", prompt: str = PAIRWISE_PROMPT, name: str = "judge"
    ):
        if method not in ("generate", "loglikelihood"):
            raise ValueError(f"judge method must be generate or loglikelihood, got {method!r}")
        self.client, self.method, self.prompt, self.name = client, method, prompt, name

    def _verdicts(self, prompts: list[str]) -> list[str | None]:
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        if self.method == "generate":
            replies = self.client.chat(
                conversations, [SamplingParams(temperature=0, max_tokens=8, seed=0)] * len(prompts)
            )
            return [parse_verdict(r[0].content) for r in replies]
        contexts = [self.client.render_chat(c) for c in conversations]
        scored = self.client.loglikelihood([(c, v) for c in contexts for v in VERDICTS])
        return [
            max(VERDICTS, key=lambda v, i=i: scored[i * len(VERDICTS) + VERDICTS.index(v)].logprob)
            for i in range(len(contexts))
        ]

    def judge(self, items: Sequence[PairItem]) -> list[PairwiseJudgment]:
        original = [self.prompt.format(question=i.question, first=i.answer_x, second=i.answer_y) for i in items]
        swapped = [self.prompt.format(question=i.question, first=i.answer_y, second=i.answer_x) for i in items]
        verdicts = self._verdicts(original + swapped)
        out = []
        for index, item in enumerate(items):
            first, second = verdicts[index], verdicts[len(items) + index]
            winner, consistent = resolve_swap(first, second)
            out.append(PairwiseJudgment(item.id, first, second, winner, consistent))
        return out


def summarize_pairwise(judgments: Sequence[PairwiseJudgment]) -> dict[str, Any]:
    """Flip rate (verdicts that did not survive the swap), win/tie rates over all items, position preference."""
    n = len(judgments)
    if n == 0:
        return {"n": 0}
    flips = [0.0 if j.consistent else 1.0 for j in judgments]
    shown_first = [v == "A" for j in judgments for v in (j.verdict_original, j.verdict_swapped) if v in ("A", "B")]
    return {
        "n": n,
        "flip_rate": bootstrap(flips).to_dict(),
        "unparsed": sum(j.verdict_original is None or j.verdict_swapped is None for j in judgments),
        "win_rate_x": bootstrap([float(j.winner == "x") for j in judgments]).to_dict(),
        "win_rate_y": bootstrap([float(j.winner == "y") for j in judgments]).to_dict(),
        "tie_rate": sum(j.winner == "tie" for j in judgments) / n,
        "first_position_preference": sum(shown_first) / len(shown_first) if shown_first else None,
    }
