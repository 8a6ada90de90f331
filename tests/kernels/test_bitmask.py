"""Token-bitmask application: native kernel against the reference."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from kernel_helpers import MODEL_DTYPES, cpu_isa

from llmkit.core.ops import token_bitmask
from llmkit.kernels import _C, ops


def random_bitmask(g, rows, vocab, density):
    allowed = torch.rand(rows, vocab, generator=g) < density
    words = -(-vocab // 32)
    padded = torch.zeros(rows, words * 32, dtype=torch.bool)
    padded[:, :vocab] = allowed
    bits = (padded.view(rows, words, 32).long() << torch.arange(32)).sum(-1)
    return torch.where(bits >= 2**31, bits - 2**32, bits).to(torch.int32)


@given(
    rows=st.integers(1, 6),
    vocab=st.integers(1, 300),
    density=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    dtype=st.sampled_from(MODEL_DTYPES),
    with_indices=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_bitmask_matches_the_reference(rows, vocab, density, dtype, with_indices, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g).to(dtype)
    bitmask = random_bitmask(g, rows, vocab, density)
    indices = None
    if with_indices:
        indices = torch.randperm(rows, generator=g)[: max(1, rows // 2)]
        indices[0] -= rows  # negative rows count from the end, as in torch indexing
    expected = logits.clone()
    token_bitmask.apply_token_bitmask_(expected, bitmask, indices)
    for isa in _C.supported_cpu_isas():
        actual = logits.clone()
        with cpu_isa(isa):
            ops.apply_token_bitmask_(actual, bitmask, indices)
        assert torch.equal(actual, expected), isa


def test_bitmask_on_a_strided_logits_view_and_the_default_vocabulary():
    g = torch.Generator().manual_seed(5)
    wide = torch.randn(4, 49_200, generator=g)
    logits = wide[:, :49_152]
    bitmask = random_bitmask(g, 4, 49_152, 0.3)
    expected = logits.clone()
    token_bitmask.apply_token_bitmask_(expected, bitmask)
    ops.apply_token_bitmask_(logits, bitmask)
    assert torch.equal(logits, expected)


def test_numpy_arrays_are_read_through_dlpack():
    logits = np.random.default_rng(0).standard_normal((2, 40)).astype(np.float32)
    bitmask = np.array([[1, 0], [-1, 255]], dtype=np.int32)
    _C.apply_token_bitmask(logits, bitmask)
    assert np.isneginf(logits[0, 1:]).all() and logits[0, 0] != -np.inf
    assert np.isfinite(logits[1, :32]).all() and np.isfinite(logits[1, 32:40]).all()
