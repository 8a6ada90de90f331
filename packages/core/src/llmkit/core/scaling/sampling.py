"""Where a strategy's samples come from: a `Sampler` draws n completions of one prompt and reports their cost.

`BackendSampler` draws them from any core `Backend` as one request with `n` samples, so on the engine the n
sequences share the prompt's KV blocks through the prefix cache (one computes them, the rest reuse them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..errors import InvalidParameterError
from ..sampling import SamplingParams

Message = Mapping[str, Any]
Prompt = str | Sequence[Message]  # raw text, or a conversation for the chat template


@dataclasses.dataclass(frozen=True)
class TokenTop:
    """One generated token: its text and the largest logprobs of its position's distribution, largest first."""

    text: str
    top: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class SampleBatch:
    """n completions of one prompt, with what they cost."""

    texts: list[str]
    completion_tokens: list[int]  # generated tokens per sample
    prompt_tokens: int  # the prompt's length
    prompt_tokens_reused: int  # summed over samples: prompt tokens read from the prefix cache instead of computed
    tokens: list[list[TokenTop]] | None = None  # per sample, where the sampler asked for top logprobs

    @property
    def prompt_tokens_computed(self) -> int:
        return self.prompt_tokens * len(self.texts) - self.prompt_tokens_reused


class Sampler(Protocol):
    def sample(self, prompt: Prompt, n: int) -> SampleBatch: ...


class BackendSampler:
    """Samples from a core `Backend`: `generate` for text prompts, `chat` for conversations. With
    `params.top_logprobs` set, each sample's tokens and their top logprobs come back too (the logprob-margin
    escalation rule reads them)."""

    def __init__(self, backend: Any, params: SamplingParams, tools: Sequence[Mapping[str, Any]] | None = None):
        self.backend, self.params, self.tools = backend, params, tools

    def sample(self, prompt: Prompt, n: int) -> SampleBatch:
        params = self.params.replace(n=n)
        if isinstance(prompt, str):
            output = self.backend.generate([prompt], params)[0]
            return SampleBatch(
                [c.text for c in output.completions],
                [_generated_tokens(c) for c in output.completions],
                getattr(output, "prompt_tokens", None) or len(output.prompt_token_ids),
                sum(c.cached_prompt_tokens for c in output.completions),
                self._tokens(output.completions),
            )
        result = self.backend.chat([list(prompt)], params, self.tools)[0]
        return SampleBatch(
            [c.text for c in result.choices],
            [_generated_tokens(c) for c in result.choices],
            result.prompt_tokens,
            sum(c.cached_prompt_tokens for c in result.choices),
            self._tokens(result.choices),
        )

    def _tokens(self, samples: Sequence[Any]) -> list[list[TokenTop]] | None:
        """Each sample's tokens as text with their top logprobs (None unless `params.top_logprobs` asked)."""
        if not self.params.top_logprobs:
            return None
        out = []
        for sample in samples:
            top = getattr(sample, "top_logprobs", None)
            # an HTTP backend returns each token's text instead of its id (eval's `openai`: `token_texts`)
            texts = getattr(sample, "token_texts", None)
            if top is None or len(top) != len(sample.token_ids if texts is None else texts):
                raise InvalidParameterError(
                    f"backend {getattr(self.backend, 'name', self.backend)!r} returned no top logprobs per token "
                    "although SamplingParams.top_logprobs asked for them"
                )
            pieces = _pieces(self.backend.tokenizer, sample.token_ids) if texts is None else texts
            out.append(
                [TokenTop(piece, tuple(sorted(t.values(), reverse=True))) for piece, t in zip(pieces, top, strict=True)]
            )
        return out


def _generated_tokens(sample: Any) -> int:
    """Tokens a sample generated: its token ids, or the server's count where HTTP returns no ids (eval's
    `openai` backend sets `completion_tokens`)."""
    counted = getattr(sample, "completion_tokens", None)
    return int(counted) if counted is not None else len(sample.token_ids)


def _pieces(tokenizer: Any, token_ids: Sequence[int]) -> list[str]:
    """Each token's share of the decoded text (prefix decodes, so multi-byte characters land on one token)."""
    pieces, before = [], ""
    for i in range(len(token_ids)):
        text = tokenizer.decode(list(token_ids[: i + 1]))
        pieces.append(text[len(before) :])
        before = text
    return pieces
