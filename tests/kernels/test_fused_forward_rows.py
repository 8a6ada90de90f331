"""A step larger than `fused_forward.MAX_CALL_ROWS` runs as several native calls (the forward's activation
buffers grow to the largest call): no call sees more rows, and the hidden states equal one call's."""

from __future__ import annotations

import os

import pytest
import torch
from test_fused_forward import BLOCK, prefill_history, step_for, stored, tiny

from llmkit.core import ops
from llmkit.core.models.quantized import set_activations
from llmkit.core.ops.paged_step import InputEmbeddings
from llmkit.kernels import fused_forward

BLOCKS = 96


class CountingForward:
    """Passes `run` through to the native forward and records each call's rows."""

    def __init__(self, native):
        self.native, self.rows = native, []

    def run(self, hidden, *args):
        self.rows.append(hidden.shape[0])
        self.native.run(hidden, *args)


def hidden_states(model, step, history, max_rows, monkeypatch, embeddings=None):
    config = model.config
    caches = [
        ops.allocate(BLOCKS, config.num_kv_heads, BLOCK, config.head_dim, "auto", torch.float32)
        for _ in range(config.num_layers)
    ]
    generator = torch.Generator().manual_seed(5)
    prefill_history(model, caches, history, config.vocab_size, generator, fused_forward.paged_forward)
    counting = CountingForward(fused_forward._native(model, caches))
    with monkeypatch.context() as patch:
        patch.setattr(fused_forward, "MAX_CALL_ROWS", max_rows)
        patch.setattr(fused_forward, "_native", lambda _model, _caches: counting)
        with torch.inference_mode():
            hidden = fused_forward.paged_forward(model, caches, step, input_embeddings=embeddings)
    return hidden, counting.rows


# Row limits per activation type. Below 48 rows a float32 matmul takes the GEMV path, which sums in another
# order than the GEMM of larger calls (~3e-6 apart); real parts are never that small (over MAX_CALL_ROWS,
# a step is cut into equal parts of more than MAX_CALL_ROWS / 2 rows). int8 activations sum integers.
LIMITS = {"float32": (64, 100), "int8": (2, 7, 16, 64, 100)}


@pytest.mark.parametrize("activations", ["float32", "int8"])
def test_a_step_over_the_row_limit_runs_in_parts_with_the_same_result(activations, monkeypatch):
    """70 decodes then three prefill chunks (one over cached context), cut inside the decode rows, inside
    a prefill chunk and between them, with image rows on both sides of a cut: every part within the limit,
    the hidden states equal to one call's."""
    seed = int.from_bytes(os.urandom(4), "little")
    model = stored(tiny(seed % 1000), "q8_0")
    set_activations(model, activations)
    generator = torch.Generator().manual_seed(seed)
    decodes = torch.randint(1, 17, (70,), generator=generator).tolist()
    step, history = step_for(generator, decodes, [(0, 60), (19, 50), (0, 9)], model.config.vocab_size, BLOCKS)
    rows = step.input_ids.shape[0]  # 189
    values = torch.randn(5, model.config.hidden_size, generator=generator)
    embeddings = InputEmbeddings(torch.tensor([4, 62, 64, 120, 188]), values)
    whole, calls = hidden_states(model, step, history, rows, monkeypatch, embeddings)
    assert calls == [rows]
    for max_rows in LIMITS[activations]:
        parts, calls = hidden_states(model, step, history, max_rows, monkeypatch, embeddings)
        assert sum(calls) == rows and max(calls) <= max_rows and len(calls) == -(-rows // max_rows)
        assert torch.equal(parts, whole), (max_rows, (parts - whole).abs().max())


def test_image_rows_outside_a_step_cut_into_parts_are_refused(monkeypatch):
    model = tiny(3)
    config = model.config
    caches = [ops.allocate(8, config.num_kv_heads, BLOCK, config.head_dim, "auto", torch.float32) for _ in model.layers]
    step, _ = step_for(torch.Generator().manual_seed(0), [], [(0, 9)], config.vocab_size, 8)
    monkeypatch.setattr(fused_forward, "MAX_CALL_ROWS", 4)
    for rows in ([9], [-1]):
        outside = InputEmbeddings(torch.tensor(rows), torch.randn(1, config.hidden_size))
        with pytest.raises(ValueError, match="embedding_rows"):
            fused_forward.paged_forward(model, caches, step, None, outside)
    with pytest.raises(ValueError, match="same length"):
        fused_forward.paged_forward(
            model, caches, step, None, InputEmbeddings(torch.tensor([1, 2]), torch.randn(1, 64))
        )
