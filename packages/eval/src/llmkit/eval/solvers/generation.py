"""Generation solvers: n completions per prompt, and self-consistency (sample N, vote with core's
`llmkit.core.scaling.majority_vote`, the one vote the server and orchestrate use too)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from llmkit.core.sampling import SamplingParams
from llmkit.core.scaling import majority_vote

from ..client import ModelClient
from ..data import Sample
from ..scoring.extraction import extractor, normalizer
from .base import Prompt, stable_seed


@dataclasses.dataclass(frozen=True)
class Generate:
    """`samples` completions per prompt (greedy when temperature is 0) until a stop string or max_tokens."""

    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    samples: int = 1
    kind: str = "generate"

    def params(self, seed: int, sample: Sample) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            stop=tuple(self.stop),
            n=self.samples,
            seed=stable_seed(seed, sample.id) if self.temperature > 0 else 0,
        )

    def solve(self, samples: Sequence[Sample], prompts: Sequence[Prompt], client: ModelClient, seed: int):
        params = [self.params(seed, s) for s in samples]
        if all(isinstance(p, str) for p in prompts):
            results = client.complete(list(prompts), params)
            return [
                {"completions": [c.text for c in r], "finish_reasons": [c.finish_reason for c in r]} for r in results
            ]
        replies = client.chat(list(prompts), params)
        return [
            {"completions": [c.content for c in r], "finish_reasons": [c.finish_reason for c in r]} for r in replies
        ]


@dataclasses.dataclass(frozen=True)
class SelfConsistency:
    """Sample N answers at temperature > 0, normalize them, and take the majority (Wang et al. 2022)."""

    samples: int = 8
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    extract: str = "marked_or_last_number"
    normalize: str = "number"
    kind: str = "self_consistency"

    def solve(self, samples: Sequence[Sample], prompts: Sequence[Prompt], client: ModelClient, seed: int):
        generate = Generate(self.max_tokens, self.stop, self.temperature, self.top_p, self.samples)
        responses = generate.solve(samples, prompts, client, seed)
        pull, clean = extractor(self.extract), normalizer(self.normalize)
        for response in responses:
            answers = []
            for text in response["completions"]:
                raw = pull(text)
                answers.append(clean(raw) if raw is not None else None)
            response["answers"] = answers
            response["majority"] = majority_vote(answers)
        return responses
