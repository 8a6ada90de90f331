"""The batched sampler: exact support sets, the temperature formula, seeded draws that follow the
target distribution (chi-square) and do not depend on batch composition, penalties, validation."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import chisquare

from llmkit.core import InvalidParameterError, SamplingParams
from llmkit.core.sampling.sampler import SamplingBatch, filtered_logits, plain_argmax, sample

PROBS = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05])
LOGITS = PROBS.log()


def batch_of(params, rows=1, seeds=None, outputs=None, prompts=None, vocab=5):
    params = [params] * rows if isinstance(params, SamplingParams) else list(params)
    seeds = list(range(len(params))) if seeds is None else seeds
    outputs = outputs or [[] for _ in params]
    return SamplingBatch.build(params, seeds, outputs, prompts, vocab)


def support(params):
    final = filtered_logits(LOGITS[None], batch_of(params))[0]
    return set(torch.nonzero(torch.isfinite(final)).flatten().tolist())


@pytest.mark.parametrize(
    "params,expected",
    [
        (SamplingParams(top_k=2), {0, 1}),
        (SamplingParams(top_k=1), {0}),
        (SamplingParams(top_p=0.65), {0, 1}),
        (SamplingParams(top_p=0.75), {0, 1, 2}),
        (SamplingParams(top_p=0.39), {0}),
        (SamplingParams(min_p=0.3), {0, 1, 2}),
        (SamplingParams(min_p=0.5), {0, 1}),
        (SamplingParams(top_k=3, top_p=0.8), {0, 1}),
        (SamplingParams(top_k=4, min_p=0.2), {0, 1, 2, 3}),
        (SamplingParams(), {0, 1, 2, 3, 4}),
    ],
)
def test_support_sets_are_exact(params, expected):
    assert support(params) == expected


def test_kept_tokens_are_renormalized_target_probabilities():
    final = filtered_logits(LOGITS[None], batch_of(SamplingParams(top_k=3)))[0]
    expected = torch.tensor([0.4, 0.3, 0.15, 0, 0]) / 0.85
    torch.testing.assert_close(final.softmax(-1), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("temperature", [0.25, 0.7, 1.0, 2.0])
def test_temperature_matches_the_formula(temperature):
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0)) * 3
    final = filtered_logits(logits, batch_of(SamplingParams(temperature=temperature), vocab=50))
    torch.testing.assert_close(final.softmax(-1), (logits / temperature).softmax(-1))


def draw_many(params, logits, n=40_000, step=0):
    batch = batch_of(
        params, rows=n, seeds=list(range(1000, 1000 + n)), outputs=[[0] * step] * n, vocab=logits.shape[-1]
    )
    return sample(logits.expand(n, -1).contiguous(), batch).token_ids


@pytest.mark.parametrize(
    "params,target",
    [
        (SamplingParams(), PROBS),
        (SamplingParams(temperature=0.5), (LOGITS / 0.5).softmax(-1)),
        (SamplingParams(top_k=3), torch.tensor([0.4, 0.3, 0.15, 0, 0]) / 0.85),
        (SamplingParams(top_p=0.75), torch.tensor([0.4, 0.3, 0.15, 0, 0]) / 0.85),
    ],
)
def test_seeded_draws_follow_the_target_distribution(params, target):
    tokens = draw_many(params, LOGITS[None])
    counts = torch.bincount(tokens, minlength=5)
    kept = target > 0
    assert counts[~kept].sum() == 0, "a filtered token was drawn"
    expected = target[kept].double() / target[kept].double().sum() * len(tokens)
    assert chisquare(counts[kept].double().numpy(), expected.numpy()).pvalue > 1e-3


def test_draws_at_different_steps_are_independent():
    first, later = draw_many(SamplingParams(), LOGITS[None]), draw_many(SamplingParams(), LOGITS[None], step=7)
    table = torch.zeros(5, 5, dtype=torch.float64)
    table.index_put_((first, later), torch.ones(len(first), dtype=torch.float64), accumulate=True)
    expected = torch.outer(PROBS.double(), PROBS.double()) * len(first)
    expected *= len(first) / expected.sum()
    assert chisquare(table.flatten().numpy(), expected.flatten().numpy(), ddof=8).pvalue > 1e-3


def test_same_seed_same_token_whatever_the_batch():
    vocab = 1000
    logits = torch.randn(8, vocab, generator=torch.Generator().manual_seed(3))
    mine = SamplingParams(temperature=0.9, top_p=0.95, seed=1234)
    others = [SamplingParams(temperature=0), SamplingParams(top_k=5), SamplingParams(min_p=0.1, temperature=1.3)]
    for step in range(20):
        alone = sample(logits[:1], SamplingBatch.build([mine], [1234], [[1] * step], None, vocab)).token_ids[0]
        params = [others[0], others[1], mine, others[2]]
        rows = torch.stack([logits[5], logits[6], logits[0], logits[7]])
        outputs = [[2] * 3, [], [1] * step, [4] * 11]
        mixed = sample(rows, SamplingBatch.build(params, [7, 8, 1234, 9], outputs, None, vocab)).token_ids[2]
        assert alone == mixed


def test_different_seeds_differ():
    tokens = draw_many(SamplingParams(), torch.zeros(1, 1000), n=200)
    assert len(set(tokens.tolist())) > 150


def test_temperature_zero_is_exactly_greedy():
    logits = torch.randn(64, 300, generator=torch.Generator().manual_seed(5))
    params = SamplingParams(temperature=0, top_k=3, top_p=0.1, min_p=0.9)
    tokens = sample(logits, SamplingBatch.build([params] * 64, list(range(64)), [[]] * 64, None, 300)).token_ids
    assert torch.equal(tokens, logits.argmax(-1))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"top_k": 3, "top_p": 0.1, "min_p": 0.9},
        {"repetition_penalty": 1.3},
        {"presence_penalty": 0.5},
        {"frequency_penalty": 0.5},
        {"temperature": 0.7},
    ],
)
def test_plain_argmax_is_exactly_what_sample_returns(changes):
    """The serving stage's shortcut: when plain_argmax holds, sample() gives the raw argmax; penalized
    greedy rows and sampled rows do not take it."""
    logits = torch.randn(8, 300, generator=torch.Generator().manual_seed(7))
    outputs = [[int(logits[row].argmax()), 5] for row in range(8)]  # penalties would move the argmax
    params = (
        [SamplingParams(temperature=0, **changes)] * 8
        if "temperature" not in changes
        else [SamplingParams(**changes)] * 8
    )
    tokens = sample(logits, SamplingBatch.build(params, list(range(8)), outputs, [[1]] * 8, 300)).token_ids
    assert plain_argmax(params) == (set(changes) <= {"top_k", "top_p", "min_p"})
    assert torch.equal(tokens, logits.argmax(-1)) == plain_argmax(params)


def test_repetition_penalty_matches_transformers():
    transformers = pytest.importorskip("transformers")
    logits = torch.randn(2, 40, generator=torch.Generator().manual_seed(6))
    prompt, output = [[1, 2, 3], [5]], [[3, 7], [9, 9, 11]]
    params = SamplingParams(repetition_penalty=1.3)
    penalized = filtered_logits(logits, SamplingBatch.build([params] * 2, [0, 0], output, prompt, 40))
    for row in range(2):
        ids = torch.tensor([prompt[row] + output[row]])
        expected = transformers.RepetitionPenaltyLogitsProcessor(1.3)(ids, logits[row : row + 1].clone())
        torch.testing.assert_close(penalized[row], expected[0])


def test_presence_and_frequency_penalties_follow_openai():
    logits = torch.zeros(1, 6)
    params = SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)
    final = filtered_logits(logits, SamplingBatch.build([params], [0], [[2, 2, 2, 4]], [[1]], 6))[0]
    assert final.tolist() == [0, 0, -(0.5 + 3 * 0.25), 0, -(0.5 + 0.25), 0]


def test_logprobs_are_those_of_the_raw_distribution():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(8))
    params = SamplingParams(temperature=0.5, top_k=4, logprobs=True, top_logprobs=3)
    out = sample(logits, SamplingBatch.build([params] * 3, [1, 2, 3], [[]] * 3, None, 50))
    raw = logits.log_softmax(-1)
    torch.testing.assert_close(out.logprobs, raw.gather(1, out.token_ids[:, None]).squeeze(1))
    torch.testing.assert_close(out.top_logprobs, raw.topk(3).values)
    assert math.isclose(out.top_logprobs.exp().sum(-1).max().item(), raw.topk(3).values.exp().sum(-1).max().item())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(top_p=0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(top_k=-1), "top_k"),
        (dict(min_p=2), "min_p"),
        (dict(repetition_penalty=0), "repetition_penalty"),
        (dict(presence_penalty=3), "presence_penalty"),
        (dict(max_tokens=0), "max_tokens"),
        (dict(n=0), "n must"),
        (dict(top_logprobs=50), "top_logprobs"),
        (dict(stop=[""]), "stop strings"),
        (dict(seed="x"), "seed"),
    ],
)
def test_invalid_sampling_values_are_clear_errors(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        SamplingParams(**kwargs)


def test_unknown_plugin_sampler_is_named():
    from llmkit.core import PluginError

    with pytest.raises(PluginError, match="no samplers entry named 'mirostat'"):
        SamplingParams(logits_processors=["mirostat"])


def test_argmax_rows_is_torch_argmax_on_every_row():
    """numpy's argmax stands in for torch's on CPU float32: the first maximum of each row, a NaN counting
    as the maximum, fully masked rows at 0; other dtypes and devices keep torch's."""
    from llmkit.core.sampling import argmax_rows

    generator = torch.Generator()
    generator.seed()  # fresh inputs each run
    logits = torch.randn(9, 4099, generator=generator)
    logits[1, [7, 300, 4000]] = logits[1].max() + 1  # ties: the first one
    logits[2, 123] = float("nan")
    logits[2, 500] = float("nan")
    logits[3] = float("-inf")
    logits[4, :] = 0.0
    logits[5, -1] = float("inf")
    for rows in (logits, logits[::2], logits[:, 10:], logits[2:3]):  # strided and offset views too
        assert argmax_rows(rows).tolist() == rows.argmax(dim=-1).tolist()
    assert argmax_rows(logits).dtype == torch.int64
    half = logits.to(torch.float16)
    assert argmax_rows(half).tolist() == half.argmax(dim=-1).tolist()
