"""The reference `generate()`: batched prefill, then decode over a contiguous KV cache.

It is the textbook path the serving engine is checked against: left-padded rows,
one forward per step for the whole batch, stop conditions per sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import torch

from .errors import ContextLengthError, InvalidParameterError
from .interp.steering import Steering, steer
from .models.attention import KVCache
from .models.llama import LlamaModel
from .sampling import SampleOutput, SamplingBatch, SamplingParams, force_thinking_budgets, sample
from .sampling.rng import derive_seed
from .stopping import OutputStream
from .tokenizer import Tokenizer


@dataclasses.dataclass
class Completion:
    token_ids: list[int]
    text: str
    finish_reason: str  # "stop" | "length"
    logprobs: list[float] | None = None
    top_logprobs: list[dict[int, float]] | None = None
    cached_prompt_tokens: int = 0  # prompt tokens this sequence read from a prefix cache instead of computing


@dataclasses.dataclass
class GenerationOutput:
    prompt_token_ids: list[int]
    completions: list[Completion]
    prompt_logprobs: list[float | None] | None = None  # None for the first token (it has no context)


@dataclasses.dataclass
class StreamEvent:
    """One step of one sequence: the token it produced and the text that became visible."""

    prompt_index: int
    sample_index: int
    token_id: int
    text: str
    finish_reason: str | None
    logprob: float | None = None
    top_logprobs: dict[int, float] | None = None


@dataclasses.dataclass
class _Sequence:
    prompt_index: int
    sample_index: int
    prompt_ids: list[int]
    params: SamplingParams
    seed: int
    output: OutputStream
    logprobs: list[float] = dataclasses.field(default_factory=list)
    top_logprobs: list[dict[int, float]] = dataclasses.field(default_factory=list)
    prompt_logprobs: list[float | None] | None = None


def _prepare(
    tokenizer: Tokenizer,
    prompts: Sequence[str | Sequence[int]],
    params: SamplingParams | Sequence[SamplingParams],
    context_length: int,
) -> list[_Sequence]:
    if isinstance(params, SamplingParams):
        params = [params] * len(prompts)
    if len(params) != len(prompts):
        raise InvalidParameterError(f"{len(prompts)} prompts but {len(params)} SamplingParams")
    sequences = []
    for i, (prompt, p) in enumerate(zip(prompts, params, strict=True)):
        ids = tokenizer.encode(prompt, add_special_tokens=True) if isinstance(prompt, str) else [int(t) for t in prompt]
        if not ids:
            raise InvalidParameterError(f"prompt {i} is empty")
        try:
            budget = p.completion_budget(len(ids), context_length)
        except ContextLengthError as err:
            raise ContextLengthError(f"prompt {i}: {err}") from None
        base_seed = p.seed if p.seed is not None else int(torch.randint(0, 2**62, (1,)))
        for j in range(p.n):
            stream = OutputStream(tokenizer, p, budget)
            sequences.append(_Sequence(i, j, ids, p, derive_seed(base_seed, j), stream))
    return sequences


def stream_generate(
    model: LlamaModel,
    tokenizer: Tokenizer,
    prompts: Sequence[str | Sequence[int]],
    params: SamplingParams | Sequence[SamplingParams] = SamplingParams(),
    steering: Steering | None = None,
) -> Iterator[StreamEvent]:
    """Yield a `StreamEvent` per sequence per step until every sequence has finished. `steering` adds
    steering vectors to the residual stream (`llmkit.core.interp`) while the stream runs."""
    sequences = _prepare(tokenizer, prompts, params, model.config.max_position_embeddings)
    with steer(model, steering):
        yield from _run(model, sequences)


def generate(
    model: LlamaModel,
    tokenizer: Tokenizer,
    prompts: Sequence[str | Sequence[int]],
    params: SamplingParams | Sequence[SamplingParams] = SamplingParams(),
    steering: Steering | None = None,
) -> list[GenerationOutput]:
    """Generate for every prompt (n samples each); outputs come back in prompt order. `steering` adds
    steering vectors to the residual stream (`llmkit.core.interp`) for this call only."""
    sequences = _prepare(tokenizer, prompts, params, model.config.max_position_embeddings)
    with steer(model, steering):
        for _ in _run(model, sequences):
            pass
    outputs: list[GenerationOutput] = []
    for seq in sequences:
        if seq.sample_index == 0:
            outputs.append(GenerationOutput(seq.prompt_ids, [], seq.prompt_logprobs))
        outputs[-1].completions.append(
            Completion(
                token_ids=seq.output.token_ids,
                text=seq.output.text,
                finish_reason=seq.output.finish_reason or "length",
                logprobs=seq.logprobs if seq.params.logprobs or seq.params.top_logprobs else None,
                top_logprobs=seq.top_logprobs if seq.params.top_logprobs else None,
            )
        )
    return outputs


@torch.inference_mode()
def _run(model: LlamaModel, sequences: list[_Sequence]) -> Iterator[StreamEvent]:
    batch, longest = len(sequences), max(len(s.prompt_ids) for s in sequences)
    device = model.device
    max_new = max(s.output.max_new_tokens for s in sequences)
    cache = KVCache(
        model.config.num_layers,
        batch,
        longest + max_new,
        model.config.num_kv_heads,
        model.config.head_dim,
        model.dtype,
        device,
    )
    input_ids = torch.zeros(batch, longest, dtype=torch.int64, device=device)
    valid = torch.zeros(batch, longest, dtype=torch.bool, device=device)
    for row, seq in enumerate(sequences):  # left padding
        input_ids[row, longest - len(seq.prompt_ids) :] = torch.tensor(seq.prompt_ids)
        valid[row, longest - len(seq.prompt_ids) :] = True
    positions = (valid.cumsum(dim=1) - 1).clamp(min=0)
    hidden = model(input_ids.flatten(), positions.flatten(), cache.step(valid)).view(batch, longest, -1)
    logits = model.compute_logits(hidden[:, -1])
    for row, seq in enumerate(sequences):
        if seq.params.prompt_logprobs:
            n = len(seq.prompt_ids)
            seq.prompt_logprobs = [None, *prompt_token_logprobs(model, hidden[row, longest - n :], seq.prompt_ids)]
    next_position = positions[:, -1] + 1
    vocab = logits.shape[-1]
    while True:
        sampling = SamplingBatch.build(
            [s.params for s in sequences],
            [s.seed for s in sequences],
            [s.output.token_ids for s in sequences],
            [s.prompt_ids for s in sequences],
            vocab,
            device,
        )
        force_thinking_budgets(
            logits, [s.params.thinking_budget for s in sequences], [s.output.token_ids for s in sequences]
        )
        chosen = sample(logits, sampling)
        tokens = chosen.token_ids.tolist()
        for row, seq in enumerate(sequences):
            if not seq.output.finished:
                yield _advance(seq, row, tokens[row], chosen)
        if all(s.output.finished for s in sequences):
            return
        step_ids = chosen.token_ids[:, None]
        hidden = model(step_ids.flatten(), next_position, cache.step(torch.ones_like(step_ids, dtype=torch.bool)))
        logits = model.compute_logits(hidden)
        next_position = next_position + 1


def prompt_token_logprobs(model: LlamaModel, hidden: torch.Tensor, prompt_ids: list[int]) -> list[float]:
    """log P(prompt[i+1] | prompt[:i+1]) from the hidden states of the prompt's positions."""
    logprobs = model.compute_logits(hidden[:-1]).log_softmax(-1)
    targets = torch.tensor(prompt_ids[1:], device=hidden.device)
    return logprobs.gather(1, targets[:, None]).squeeze(1).tolist()


def _advance(seq: _Sequence, row: int, token: int, chosen: SampleOutput) -> StreamEvent:
    text = seq.output.append(token)
    logprob = top = None
    if chosen.logprobs is not None and (seq.params.logprobs or seq.params.top_logprobs):
        logprob = float(chosen.logprobs[row])
        seq.logprobs.append(logprob)
        if seq.params.top_logprobs:
            k = seq.params.top_logprobs
            ids = chosen.top_logprob_ids[row, :k].tolist()
            top = dict(zip(ids, chosen.top_logprobs[row, :k].tolist(), strict=True))
            seq.top_logprobs.append(top)
    return StreamEvent(seq.prompt_index, seq.sample_index, token, text, seq.output.finish_reason, logprob, top)
