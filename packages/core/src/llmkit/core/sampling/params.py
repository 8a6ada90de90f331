"""`SamplingParams`: how one request turns logits into tokens, validated when it is made."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import ContextLengthError, InvalidParameterError
from .thinking import ThinkingBudget

MAX_TOP_LOGPROBS = 20


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling settings (OpenAI / vLLM names and semantics).

    temperature 0 is exact greedy decoding; top_k 0 disables top-k; repetition_penalty
    applies to prompt and output tokens, presence/frequency penalties to output tokens.
    `logits_processors` names plugin samplers: ("typical", {"mass": 0.9}) or just "name".
    `prompt_logprobs` also reports each prompt token's logprob given the tokens before it.
    `thinking_budget` forces the closing tag once a thinking section has spent its tokens (see thinking.py).
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    logprobs: bool = False
    top_logprobs: int = 0
    prompt_logprobs: bool = False
    n: int = 1
    logits_processors: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    thinking_budget: ThinkingBudget | None = None  # closes the reply's thinking section after that many tokens

    def __post_init__(self) -> None:
        _check(self.temperature >= 0, f"temperature must be >= 0 (0 is greedy), got {self.temperature}")
        _check(
            isinstance(self.top_k, int) and self.top_k >= 0,
            f"top_k must be an integer >= 0 (0 disables), got {self.top_k}",
        )
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _check(0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p}")
        _check(self.repetition_penalty > 0, f"repetition_penalty must be > 0, got {self.repetition_penalty}")
        _check(-2 <= self.presence_penalty <= 2, f"presence_penalty must be in [-2, 2], got {self.presence_penalty}")
        _check(-2 <= self.frequency_penalty <= 2, f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}")
        _check(
            isinstance(self.max_tokens, int) and self.max_tokens >= 1,
            f"max_tokens must be an integer >= 1, got {self.max_tokens}",
        )
        _check(isinstance(self.n, int) and self.n >= 1, f"n must be an integer >= 1, got {self.n}")
        _check(
            0 <= self.top_logprobs <= MAX_TOP_LOGPROBS,
            f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {self.top_logprobs}",
        )
        _check(self.seed is None or isinstance(self.seed, int), f"seed must be an integer, got {self.seed!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        _check(all(isinstance(s, str) and s for s in stop), "stop strings must be non-empty strings")
        object.__setattr__(self, "stop", stop)
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))
        object.__setattr__(self, "logits_processors", _normalize_processors(self.logits_processors))
        _check(
            self.thinking_budget is None or isinstance(self.thinking_budget, ThinkingBudget),
            f"thinking_budget must be a ThinkingBudget or None, got {type(self.thinking_budget).__name__}",
        )

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def replace(self, **changes: Any) -> SamplingParams:
        return dataclasses.replace(self, **changes)

    def completion_budget(self, prompt_tokens: int, context_length: int) -> int:
        """How many tokens each sequence of this request may generate: `max_tokens`, cut to the room the
        context leaves after the prompt. The one place that rule lives; a prompt that leaves no room for a
        single generated token is a `ContextLengthError`."""
        if prompt_tokens >= context_length:
            raise ContextLengthError(
                f"the prompt has {prompt_tokens} tokens; the model's context holds {context_length} "
                "(the prompt plus at least one generated token)"
            )
        return min(self.max_tokens, context_length - prompt_tokens)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidParameterError(message)


def _normalize_processors(spec: Any) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    from ..plugins import registry

    if isinstance(spec, Mapping):
        spec = list(spec.items())
    elif isinstance(spec, str):
        spec = [spec]
    normalized = []
    for item in spec:
        name, args = (item, {}) if isinstance(item, str) else item
        _check(isinstance(name, str) and isinstance(args, Mapping), f"bad logits processor spec {item!r}")
        processor = registry("samplers").get(name)
        validate = getattr(processor, "validate", None)
        if validate is not None:
            try:
                validate(dict(args))
            except (ValueError, TypeError) as err:
                raise InvalidParameterError(f"logits processor {name!r}: {err}") from None
        normalized.append((name, dict(args)))
    return tuple(normalized)
