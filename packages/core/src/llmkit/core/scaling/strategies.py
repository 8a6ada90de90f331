"""Inference-time scaling: spend more samples on one prompt and choose among them.

- `self_consistency`: majority vote over extracted answers (Wang et al. 2022); optionally only samples that
  pass a verifier vote (code: the samples that pass the tests).
- `best_of_n`: the sample with the highest score (a verifier's score, or any scorer such as a reward model).
- `weighted_vote`: votes weighted by that score.
- `verify_and_retry`: one sample at a time; a failing verifier's detail goes back as a user turn, up to K tries.

Ties: a vote goes to the answer seen first, best-of-N to the earliest top-scored sample (sample order).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InvalidParameterError
from ..verifiers import VerifierResult, verify
from .answers import AnswerExtractor, answer_extractor
from .sampling import Prompt, SampleBatch, Sampler, TokenTop
from .voting import vote_totals, weighted_vote

Scorer = Callable[[str, str], float]  # (prompt text, completion) -> score, e.g. a reward model
STRATEGIES = ("self_consistency", "best_of_n", "weighted_vote", "verify_and_retry")
RETRY_FEEDBACK = "Your answer did not pass the check: {detail}\nPlease correct it and answer again."


@dataclasses.dataclass
class ScalingCost:
    """What a scaled request cost, over every sample of every round."""

    samples: int = 0
    rounds: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0  # each round's prompt length, summed over rounds
    prompt_tokens_computed: int = 0  # summed over samples: prompt tokens run through the model
    prompt_tokens_reused: int = 0  # summed over samples: prompt tokens read from the prefix cache
    wall_seconds: float = 0.0

    def add(self, batch: SampleBatch) -> None:
        self.samples += len(batch.texts)
        self.rounds += 1
        self.generated_tokens += sum(batch.completion_tokens)
        self.prompt_tokens += batch.prompt_tokens
        self.prompt_tokens_computed += batch.prompt_tokens_computed
        self.prompt_tokens_reused += batch.prompt_tokens_reused


@dataclasses.dataclass
class ScalingResult:
    strategy: str
    text: str  # the chosen sample
    index: int  # its position among `samples`
    answer: str | None  # its extracted answer (the vote's winner for the voting strategies)
    samples: list[str]
    answers: list[str | None]
    scores: list[float] | None = None  # per sample, where a scorer or verifier ran
    votes: dict[str, float] | None = None  # total per answer, for the voting strategies
    passed: bool | None = None  # verify_and_retry: whether the last attempt passed
    verdicts: list[VerifierResult] | None = None
    completion_tokens: list[int] = dataclasses.field(default_factory=list)
    cost: ScalingCost = dataclasses.field(default_factory=ScalingCost)
    tokens: list[list[TokenTop]] | None = None  # per sample, where the sampler reported top logprobs


def prompt_text(prompt: Prompt) -> str:
    """What verifiers and scorers see as the prompt: the text, or the last user turn of a conversation."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    content = users[-1].get("content", "") if users else ""
    return content if isinstance(content, str) else str(content)


def _check_n(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidParameterError(f"n must be a positive integer, got {n!r}")


def _draw(sampler: Sampler, prompt: Prompt, n: int, cost: ScalingCost) -> SampleBatch:
    batch = sampler.sample(prompt, n)
    if len(batch.texts) != n:
        raise InvalidParameterError(f"the sampler returned {len(batch.texts)} samples for n={n}")
    cost.add(batch)
    return batch


def _verdicts(name: str, prompt: Prompt, texts: Sequence[str], reference: Any) -> list[VerifierResult]:
    return [verify(name, prompt_text(prompt), text, reference) for text in texts]


def _scores(
    prompt: Prompt, texts: Sequence[str], scorer: Scorer | None, verifier: str | None, reference: Any
) -> tuple[list[float], list[VerifierResult] | None]:
    if (scorer is None) == (verifier is None):
        raise InvalidParameterError("give exactly one of scorer (e.g. a reward model) and verifier")
    if scorer is not None:
        return [float(scorer(prompt_text(prompt), text)) for text in texts], None
    verdicts = _verdicts(verifier, prompt, texts, reference)
    return [v.score for v in verdicts], verdicts


def self_consistency(
    sampler: Sampler,
    prompt: Prompt,
    n: int,
    answer: str | AnswerExtractor = "number",
    verifier: str | None = None,
    reference: Any = None,
) -> ScalingResult:
    """Majority vote over the samples' answers. With `verifier`, only passing samples vote (all vote if none pass)."""
    _check_n(n)
    extract, cost, started = answer_extractor(answer), ScalingCost(), time.perf_counter()
    batch = _draw(sampler, prompt, n, cost)
    answers = [extract(text) for text in batch.texts]
    verdicts = _verdicts(verifier, prompt, batch.texts, reference) if verifier else None
    voters = answers
    if verdicts is not None and any(v.passed for v in verdicts):
        voters = [a if v.passed else None for a, v in zip(answers, verdicts, strict=True)]
    votes = vote_totals(voters)
    winner = weighted_vote(voters, None)
    index = voters.index(winner) if winner is not None else 0
    cost.wall_seconds = time.perf_counter() - started
    return ScalingResult(
        "self_consistency", batch.texts[index], index, winner, batch.texts, answers,
        votes=votes, verdicts=verdicts, completion_tokens=batch.completion_tokens, cost=cost,
        tokens=batch.tokens,
    )  # fmt: skip


def best_of_n(
    sampler: Sampler,
    prompt: Prompt,
    n: int,
    scorer: Scorer | None = None,
    verifier: str | None = None,
    reference: Any = None,
    answer: str | AnswerExtractor = "exact",
) -> ScalingResult:
    """The sample with the highest score; the earliest one among equals."""
    _check_n(n)
    extract, cost, started = answer_extractor(answer), ScalingCost(), time.perf_counter()
    batch = _draw(sampler, prompt, n, cost)
    scores, verdicts = _scores(prompt, batch.texts, scorer, verifier, reference)
    index = scores.index(max(scores))
    cost.wall_seconds = time.perf_counter() - started
    return ScalingResult(
        "best_of_n", batch.texts[index], index, extract(batch.texts[index]), batch.texts,
        [extract(t) for t in batch.texts], scores=scores, verdicts=verdicts,
        passed=verdicts[index].passed if verdicts else None, completion_tokens=batch.completion_tokens, cost=cost,
        tokens=batch.tokens,
    )  # fmt: skip


def weighted_vote_strategy(
    sampler: Sampler,
    prompt: Prompt,
    n: int,
    scorer: Scorer | None = None,
    verifier: str | None = None,
    reference: Any = None,
    answer: str | AnswerExtractor = "number",
) -> ScalingResult:
    """Votes over the answers, each weighted by its sample's score (scores must be >= 0)."""
    _check_n(n)
    extract, cost, started = answer_extractor(answer), ScalingCost(), time.perf_counter()
    batch = _draw(sampler, prompt, n, cost)
    scores, verdicts = _scores(prompt, batch.texts, scorer, verifier, reference)
    answers = [extract(text) for text in batch.texts]
    winner = weighted_vote(answers, scores)
    index = answers.index(winner) if winner is not None else 0
    cost.wall_seconds = time.perf_counter() - started
    return ScalingResult(
        "weighted_vote", batch.texts[index], index, winner, batch.texts, answers, scores=scores,
        votes=vote_totals(answers, scores), verdicts=verdicts, completion_tokens=batch.completion_tokens, cost=cost,
        tokens=batch.tokens,
    )  # fmt: skip


def verify_and_retry(
    sampler: Sampler,
    prompt: Prompt,
    verifier: str,
    reference: Any = None,
    max_attempts: int = 3,
    feedback: str = RETRY_FEEDBACK,
    answer: str | AnswerExtractor = "exact",
) -> ScalingResult:
    """Sample, verify; on failure add the reply and the verifier's detail (as a user turn) and sample again,
    until one passes or `max_attempts` samples were drawn. The last sample is the answer either way."""
    _check_n(max_attempts)
    if isinstance(prompt, str):
        raise InvalidParameterError("verify_and_retry needs a conversation (the verifier's error goes back as a turn)")
    extract, cost, started = answer_extractor(answer), ScalingCost(), time.perf_counter()
    conversation = list(prompt)
    texts: list[str] = []
    verdicts: list[VerifierResult] = []
    tokens: list[int] = []
    tops: list[list[TokenTop]] | None = []
    for _ in range(max_attempts):
        batch = _draw(sampler, conversation, 1, cost)
        text = batch.texts[0]
        verdict = verify(verifier, prompt_text(prompt), text, reference)
        texts.append(text)
        verdicts.append(verdict)
        tokens.extend(batch.completion_tokens)
        tops = None if tops is None or batch.tokens is None else [*tops, *batch.tokens]
        if verdict.passed:
            break
        conversation += [
            {"role": "assistant", "content": text},
            {"role": "user", "content": feedback.format(detail=verdict.detail or "it was wrong")},
        ]
    cost.wall_seconds = time.perf_counter() - started
    return ScalingResult(
        "verify_and_retry", texts[-1], len(texts) - 1, extract(texts[-1]), texts, [extract(t) for t in texts],
        scores=[v.score for v in verdicts], passed=verdicts[-1].passed, verdicts=verdicts, completion_tokens=tokens,
        cost=cost, tokens=tops,
    )  # fmt: skip


def run_strategy(
    strategy: str,
    sampler: Sampler,
    prompt: Prompt,
    n: int,
    *,
    answer: str | AnswerExtractor | None = None,
    verifier: str | None = None,
    reference: Any = None,
    scorer: Scorer | None = None,
) -> ScalingResult:
    """One entry point by name (what the server's request extension calls); `n` is max_attempts for
    verify_and_retry."""
    if strategy == "self_consistency":
        return self_consistency(sampler, prompt, n, answer or "number", verifier, reference)
    if strategy == "best_of_n":
        return best_of_n(sampler, prompt, n, scorer, verifier, reference, answer or "exact")
    if strategy == "weighted_vote":
        return weighted_vote_strategy(sampler, prompt, n, scorer, verifier, reference, answer or "number")
    if strategy == "verify_and_retry":
        if verifier is None:
            raise InvalidParameterError("verify_and_retry needs a verifier")
        return verify_and_retry(sampler, prompt, verifier, reference, n, answer=answer or "exact")
    raise InvalidParameterError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
