"""Multiple choice by log-likelihood: score each choice as a continuation of the prompt."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..client import ModelClient
from ..data import Sample
from ..errors import EvalError
from .base import Prompt


@dataclasses.dataclass(frozen=True)
class MultipleChoice:
    """Each choice is scored as `target_delimiter + choice` after the prompt (lm-evaluation-harness)."""

    target_delimiter: str = " "
    kind: str = "multiple_choice"

    def solve(self, samples: Sequence[Sample], prompts: Sequence[Prompt], client: ModelClient, seed: int):
        requests, owners = [], []
        for index, (sample, prompt) in enumerate(zip(samples, prompts, strict=True)):
            if not sample.choices:
                raise EvalError(f"sample {sample.id} has no choices; multiple_choice needs them")
            context = prompt if isinstance(prompt, str) else client.render_chat(prompt)
            for choice in sample.choices:
                requests.append((context, self.target_delimiter + choice))
                owners.append(index)
        scored = client.loglikelihood(requests)
        responses = [{"loglikelihoods": [], "is_greedy": []} for _ in samples]
        for owner, result in zip(owners, scored, strict=True):
            responses[owner]["loglikelihoods"].append(result.logprob)
            responses[owner]["is_greedy"].append(result.is_greedy)
        return responses
