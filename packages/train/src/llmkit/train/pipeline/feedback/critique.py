"""SL-CAI data: prompt -> response -> critique -> revision, with principles drawn from a constitution.

Each round adds the critique request, the critique, the revision request and the revision to the
conversation (Bai et al. 2022, section 3). The final revision becomes the assistant turn of an SFT
record; the whole exchange goes to a trace. Any llmkit backend runs it, batched.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from llmkit.core.backends import Backend
from llmkit.core.sampling import SamplingParams

from .constitution import Constitution


@dataclasses.dataclass
class CritiqueRound:
    principle: str
    critique: str
    revision: str


@dataclasses.dataclass
class RevisedExample:
    id: str
    prompt: str
    response: str
    rounds: list[CritiqueRound]

    @property
    def final(self) -> str:
        return self.rounds[-1].revision if self.rounds else self.response

    def sft_record(self) -> dict[str, Any]:
        """The trainable pair, in llmkit-train's chat SFT format."""
        messages = [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.final}]
        return {"id": self.id, "messages": messages}

    def trace(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "response": self.response,
            "rounds": [dataclasses.asdict(r) for r in self.rounds],
        }


def _replies(backend: Backend, conversations: list[list[dict[str, str]]], params: SamplingParams) -> list[str]:
    return [result.message.content.strip() for result in backend.chat(conversations, params)]


def critique_and_revise(
    backend: Backend,
    prompts: Sequence[tuple[str, str]],
    constitution: Constitution,
    rounds: int = 1,
    params: SamplingParams | None = None,
    seed: int = 0,
) -> list[RevisedExample]:
    """Revised examples for (id, prompt) pairs; each round's principle is drawn per prompt from `seed`."""
    params = params or SamplingParams(temperature=0.0, max_tokens=256)
    rng = random.Random(seed)
    conversations = [[{"role": "user", "content": prompt}] for _, prompt in prompts]
    responses = _replies(backend, conversations, params)
    examples = [RevisedExample(i, p, r, []) for (i, p), r in zip(prompts, responses, strict=True)]
    current = list(responses)
    for _ in range(rounds):
        principles = [rng.choice(constitution.principles) for _ in prompts]
        for conversation, answer, principle in zip(conversations, current, principles, strict=True):
            conversation += [{"role": "assistant", "content": answer}, {"role": "user", "content": principle.critique}]
        critiques = _replies(backend, conversations, params)
        for conversation, critique, principle in zip(conversations, critiques, principles, strict=True):
            conversation += [
                {"role": "assistant", "content": critique},
                {"role": "user", "content": principle.revision},
            ]
        revisions = _replies(backend, conversations, params)
        for conversation in conversations:  # the next round critiques the revision in a fresh exchange
            del conversation[1:]
        for number, (example, principle, critique, revision) in enumerate(
            zip(examples, principles, critiques, revisions, strict=True)
        ):
            kept = revision or current[number]  # an empty revision keeps the previous answer
            example.rounds.append(CritiqueRound(principle.name, critique, kept))
            current[number] = kept
    return examples
