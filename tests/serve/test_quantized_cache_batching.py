"""What a quantized KV cache guarantees about batching (docs/serve.md, "Quantized KV cache and batching").

Per-(block, kv head) scales belong to one sequence's block, and a prefill chunk cut by the token budget
ends on a block boundary, so the cache adds no batch dependence of its own: with row-by-row (batch-
invariant) matmuls, a sequence's greedy tokens and logprobs are bitwise the same alone and inside a
mixed batch whose budget chunks its prompt. Torch's own GEMMs round differently with the number of
rows; a quantized cache can turn that ~1e-6 into a one-step rounding difference, which is not covered."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from llmkit.core import SamplingParams, ops
from llmkit.serve.engine import Engine

_linear = F.linear


def _row_by_row_linear(x, weight, bias=None):
    """F.linear whose every output row is computed alone, so no row depends on the others."""
    if x.dim() == 2 and x.shape[0] > 1:
        return torch.cat([_linear(x[i : i + 1], weight, bias) for i in range(x.shape[0])])
    return _linear(x, weight, bias)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Bitwise claims need one thread: torch splits other reductions (attention, norms) by thread count
    and batch shape too, which moves logprobs by ~1e-7 without changing what the cache holds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def kernels(request, monkeypatch):
    if request.param == "reference":
        monkeypatch.setenv("LLMKIT_KERNELS", "reference")
    else:
        monkeypatch.delenv("LLMKIT_KERNELS", raising=False)
        if ops.implementation("reshape_and_cache", "cpu") is ops.reference("reshape_and_cache"):
            pytest.skip("llmkit-kernels is not installed (tests/kernels covers it)")
    return request.param


@pytest.mark.parametrize("kernels", ["reference", "native"], indirect=True)
@pytest.mark.parametrize("kv_cache_dtype", ["int8", "fp8_e4m3"])
def test_a_sequence_reads_the_same_alone_and_chunked_in_a_mixed_batch(tiny, monkeypatch, kernels, kv_cache_dtype):
    monkeypatch.setattr(F, "linear", _row_by_row_linear)
    rng = random.Random(0)
    vocab = tiny.model.config.vocab_size
    target, *others = ([rng.randrange(3, vocab) for _ in range(n)] for n in (45, 7, 30, 60))
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True, logprobs=True)
    alone = Engine(tiny, num_blocks=64, kv_cache_dtype=kv_cache_dtype).generate([target], params, progress=False)
    # a budget of 40 leaves 33 tokens for the target's first chunk after the 7-token prompt: cut mid-block
    mixed = Engine(tiny, num_blocks=64, kv_cache_dtype=kv_cache_dtype, max_num_batched_tokens=40)
    batch = mixed.generate([others[0], target, *others[1:]], params, progress=False)
    expected, got = alone[0].completions[0], batch[1].completions[0]
    assert got.token_ids == expected.token_ids
    assert got.logprobs == expected.logprobs  # bitwise
