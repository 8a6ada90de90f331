"""What the engine reports: per-step deltas of each request, and per-request timing."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class SequenceDelta:
    """What one sequence (sample `index` of its request) produced in one step."""

    index: int
    token_ids: list[int]
    text: str
    finish_reason: str | None
    logprobs: list[float] | None = None
    top_logprobs: list[dict[int, float]] | None = None


@dataclasses.dataclass
class RequestTiming:
    """Seconds, measured on the engine's clock, for the latency metrics."""

    arrival: float
    first_token: float | None = None
    finished: float | None = None
    num_output_tokens: int = 0

    @property
    def time_to_first_token(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.arrival

    @property
    def time_per_output_token(self) -> float | None:
        if self.finished is None or self.first_token is None or self.num_output_tokens < 2:
            return None
        return (self.finished - self.first_token) / (self.num_output_tokens - 1)


@dataclasses.dataclass
class RequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    deltas: list[SequenceDelta]
    finished: bool
    num_cached_tokens: int
    timing: RequestTiming
    error: str | None = None  # set when the request ended because a step failed on it
    # With `SamplingParams.prompt_logprobs`, once every prompt position has one (first entry None: no context);
    # the top ones when the request also asks for `top_logprobs`. Repeated on every later output.
    prompt_logprobs: list[float | None] | None = None
    prompt_top_logprobs: list[dict[int, float] | None] | None = None
    samples_cached_tokens: list[int] = dataclasses.field(default_factory=list)  # per sample, prefix-cache hits
