"""RLAIF: a judge model labels which of two responses is better, in both presentation orders.

A label counts only if it survives the swap: the judge must prefer the same response when it is shown
first and when it is shown second. Position-biased or unparseable judgments are dropped and counted.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from typing import Any

from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from .constitution import Constitution

JUDGE_PROMPT = (
    "Consider this request from a person to an AI assistant:\n\n{prompt}\n\n{question}\n\n"
    "(A) {first}\n\n(B) {second}\n\nAnswer with a single letter: A or B."
)


@dataclasses.dataclass(frozen=True)
class PreferenceItem:
    id: str
    prompt: str
    responses: tuple[str, str]


@dataclasses.dataclass(frozen=True)
class PreferenceLabel:
    item: PreferenceItem
    principle: str
    verdict_original: str | None  # response 0 shown as A
    verdict_swapped: str | None  # response 1 shown as A
    preferred: int | None  # index of the preferred response; None when the swap disagreed

    @property
    def consistent(self) -> bool:
        return self.preferred is not None

    def preference_record(self) -> dict[str, Any]:
        """The pair in llmkit-train's preference format (only for consistent labels)."""
        chosen = self.item.responses[self.preferred]
        rejected = self.item.responses[1 - self.preferred]
        return {"id": self.item.id, "prompt": self.item.prompt, "chosen": chosen, "rejected": rejected}

    def trace(self) -> dict[str, Any]:
        return {
            "id": self.item.id,
            "principle": self.principle,
            "verdict_original": self.verdict_original,
            "verdict_swapped": self.verdict_swapped,
            "preferred": self.preferred,
        }


def parse_choice(text: str) -> str | None:
    """'A' or 'B' from a judge's reply: a bare letter, "(A)", or the first capital A/B standing alone."""
    stripped = text.strip().strip("().'\"*").strip()
    if stripped.upper() in ("A", "B"):
        return stripped.upper()
    found = re.search(r"(?<![A-Za-z])\(?([AB])\)?(?![A-Za-z])", text)
    return found.group(1) if found else None


def resolve_swap(verdict_original: str | None, verdict_swapped: str | None) -> int | None:
    """Index of the preferred response when both orders name the same one, else None."""
    if verdict_original is None or verdict_swapped is None:
        return None
    first_pick = 0 if verdict_original == "A" else 1
    second_pick = 1 if verdict_swapped == "A" else 0
    return first_pick if first_pick == second_pick else None


def label_preferences(
    backend: Backend,
    items: Sequence[PreferenceItem],
    constitution: Constitution,
    params: SamplingParams | None = None,
    seed: int = 0,
) -> list[PreferenceLabel]:
    """Judge every item in both orders (one batched call each) under a principle drawn per item."""
    params = params or SamplingParams(temperature=0.0, max_tokens=8)
    rng = random.Random(seed)
    principles = [rng.choice(constitution.for_preferences()) for _ in items]

    def ask(swapped: bool) -> list[str | None]:
        conversations = []
        for item, principle in zip(items, principles, strict=True):
            first, second = item.responses[::-1] if swapped else item.responses
            content = JUDGE_PROMPT.format(prompt=item.prompt, question=principle.preference, first=first, second=second)
            conversations.append([{"role": "user", "content": content}])
        return [parse_choice(r.message.content) for r in backend.chat(conversations, params)]

    originals, swaps = ask(False), ask(True)
    return [
        PreferenceLabel(item, principle.name, original, swapped, resolve_swap(original, swapped))
        for item, principle, original, swapped in zip(items, principles, originals, swaps, strict=True)
    ]
