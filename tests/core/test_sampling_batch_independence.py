"""A row's sampling distribution is its own: the same kept tokens and probabilities alone as inside any
mixed batch (issue 25: rows at top_p=1 lost their tail once another row asked for top-k)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmkit.core import SamplingParams
from llmkit.core.sampling.sampler import SamplingBatch, apply_top_k_top_p, filtered_logits

VOCAB = 1000


def peaked_logits(rows: int, seed: int) -> torch.Tensor:
    """Logits whose float32 cumulative probability reaches 1.0 well before the end of the sorted list."""
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed)) * 5


def filtered(logits: torch.Tensor, params: list[SamplingParams], rows: list[int] | None = None) -> torch.Tensor:
    """filtered_logits of `rows` (default all) of a batch whose row r generated tokens r..r+2 so far."""
    rows = list(range(len(params))) if rows is None else rows
    outputs = [list(range(row, row + 3)) for row in rows]
    batch = SamplingBatch.build(params, rows, outputs, [[7, 8, 9]] * len(rows), VOCAB)
    return filtered_logits(logits, batch)


def test_a_temperature_only_row_keeps_every_token_beside_a_top_k_row():
    logits = peaked_logits(2, seed=0)
    mixed = filtered(logits, [SamplingParams(temperature=1.0), SamplingParams(top_k=40)])
    assert int(torch.isfinite(mixed[0]).sum()) == VOCAB
    assert int(torch.isfinite(mixed[1]).sum()) == 40


def test_top_p_of_one_never_removes_a_token():
    logits = peaked_logits(3, seed=1)
    top_k = torch.tensor([VOCAB, 50, VOCAB])
    kept = torch.isfinite(apply_top_k_top_p(logits, top_k, torch.tensor([1.0, 1.0, 1.0])))
    assert kept.sum(dim=-1).tolist() == [VOCAB, 50, VOCAB]


row_params = st.builds(
    SamplingParams,
    temperature=st.sampled_from([0.0, 0.3, 0.7, 1.0, 1.6]),
    top_k=st.sampled_from([0, 1, 5, 40, 999]),
    top_p=st.sampled_from([1.0, 0.999, 0.9, 0.5, 0.05]),
    min_p=st.sampled_from([0.0, 0.0, 0.01, 0.2]),
    repetition_penalty=st.sampled_from([1.0, 1.0, 1.3]),
    presence_penalty=st.sampled_from([0.0, 0.0, 0.5]),
    frequency_penalty=st.sampled_from([0.0, 0.0, -0.4]),
)


@settings(max_examples=60, deadline=None)
@given(params=st.lists(row_params, min_size=2, max_size=6), seed=st.integers(0, 2**16))
def test_each_row_filters_the_same_alone_and_in_a_mixed_batch(params, seed):
    logits = peaked_logits(len(params), seed)
    together = filtered(logits, params)
    for row, row_params_ in enumerate(params):
        alone = filtered(logits[row : row + 1], [row_params_], rows=[row])[0]
        kept = torch.isfinite(together[row])
        assert torch.equal(kept, torch.isfinite(alone)), f"row {row} ({row_params_}) kept another token set"
        torch.testing.assert_close(together[row].softmax(-1), alone.softmax(-1), rtol=1e-6, atol=1e-7)
