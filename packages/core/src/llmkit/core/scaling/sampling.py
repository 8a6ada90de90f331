"""Where a strategy's samples come from: a `Sampler` draws n completions of one prompt and reports their cost.

`BackendSampler` draws them from any core `Backend` as one request with `n` samples, so on the engine the n
sequences share the prompt's KV blocks through the prefix cache (one computes them, the rest reuse them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..sampling import SamplingParams

Message = Mapping[str, Any]
Prompt = str | Sequence[Message]  # raw text, or a conversation for the chat template


@dataclasses.dataclass(frozen=True)
class SampleBatch:
    """n completions of one prompt, with what they cost."""

    texts: list[str]
    completion_tokens: list[int]  # generated tokens per sample
    prompt_tokens: int  # the prompt's length
    prompt_tokens_reused: int  # summed over samples: prompt tokens read from the prefix cache instead of computed

    @property
    def prompt_tokens_computed(self) -> int:
        return self.prompt_tokens * len(self.texts) - self.prompt_tokens_reused


class Sampler(Protocol):
    def sample(self, prompt: Prompt, n: int) -> SampleBatch: ...


class BackendSampler:
    """Samples from a core `Backend`: `generate` for text prompts, `chat` for conversations."""

    def __init__(self, backend: Any, params: SamplingParams, tools: Sequence[Mapping[str, Any]] | None = None):
        self.backend, self.params, self.tools = backend, params, tools

    def sample(self, prompt: Prompt, n: int) -> SampleBatch:
        params = self.params.replace(n=n)
        if isinstance(prompt, str):
            output = self.backend.generate([prompt], params)[0]
            return SampleBatch(
                [c.text for c in output.completions],
                [len(c.token_ids) for c in output.completions],
                len(output.prompt_token_ids),
                sum(c.cached_prompt_tokens for c in output.completions),
            )
        result = self.backend.chat([list(prompt)], params, self.tools)[0]
        return SampleBatch(
            [c.text for c in result.choices],
            [len(c.token_ids) for c in result.choices],
            result.prompt_tokens,
            sum(c.cached_prompt_tokens for c in result.choices),
        )
