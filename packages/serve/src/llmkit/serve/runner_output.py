"""`RunnerOutput`: what `ModelRunner.execute()` computed for one `SchedulerOutput` — new tokens and
their logprobs per sequence. It changes no sequence; `Scheduler.update_from_output()` applies it."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SampledTokens:
    """One sequence's new tokens: the sampled token, or the accepted drafts then the correction or
    bonus token when drafts were verified."""

    token_ids: list[int]
    logprobs: list[float] | None = None  # of each token, when the request asked for logprobs
    top_logprobs: list[dict[int, float]] | None = None
    num_accepted_drafts: int | None = None  # None: no drafts were verified


@dataclasses.dataclass(frozen=True)
class RunnerOutput:
    """Keyed by `Sequence.seq_id`, in the runner's order. A sequence mid-prefill has no sampled tokens."""

    sampled: dict[int, SampledTokens] = dataclasses.field(default_factory=dict)
    prompt_logprobs: dict[int, list[float]] = dataclasses.field(default_factory=dict)  # new ones this step
    prompt_top_logprobs: dict[int, list[dict[int, float]]] = dataclasses.field(default_factory=dict)  # likewise
