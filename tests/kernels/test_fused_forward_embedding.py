"""A tied LM head with int8 activations is packed (cpu/int8_repack.h) and its memory-mapped table's pages
released; the native forward's embedding lookups then read that packed copy, so the table's pages stay out
of the process (each lookup of the mapped table faulted 64 KiB back in), with the same hidden states."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import torch
from test_fused_forward import stored
from test_int8_repack import resident_kib

from llmkit.core import ops
from llmkit.core.models.config import ModelConfig
from llmkit.core.models.quantized import QuantizedEmbedding, set_activations
from llmkit.core.ops import PagedStep
from llmkit.core.quant import QuantizedWeight, quantize
from llmkit.core.testing import random_model, tiny_config
from llmkit.kernels import fused_forward
from llmkit.kernels.packed import packed_for_int8

BLOCK, VOCAB = 16, 8189  # 8189 = 1023 groups of 8 rows + a 5-row tail


def mapped(tmp_path, weight: QuantizedWeight) -> QuantizedWeight:
    """The weight memory-mapped read-only from a file of its bytes, as GGUF tensors are."""
    path = tmp_path / "table.bin"
    path.write_bytes(weight.data.numpy().tobytes())
    array = np.memmap(path, dtype=np.uint8, mode="r", shape=tuple(weight.data.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns that the array is not writable
        return QuantizedWeight(torch.from_numpy(array), weight.format, weight.rows, weight.cols)


def prefill(model, ids: torch.Tensor) -> torch.Tensor:
    """Hidden states of one sequence's prefill on fresh caches (a forward built for them)."""
    config, n = model.config, ids.shape[0]
    blocks = -(-n // BLOCK)
    caches = [
        ops.allocate(blocks, config.num_kv_heads, BLOCK, config.head_dim, "auto", torch.float32)
        for _ in range(config.num_layers)
    ]
    step = PagedStep(
        ids,
        torch.arange(n),
        torch.arange(n),
        0,
        torch.zeros(0, 1, dtype=torch.int32),
        torch.zeros(0, dtype=torch.int32),
        torch.arange(blocks, dtype=torch.int32)[None],
        torch.tensor([n], dtype=torch.int32),
        torch.tensor([0, n], dtype=torch.int32),
    )
    with torch.inference_mode():
        return fused_forward.paged_forward(model, caches, step)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="resident pages are read from /proc")
@pytest.mark.parametrize("fmt", ["q8_0", "q4_0", "q4_1"])
def test_lookups_read_the_packed_head_and_leave_the_mapped_table_out(tmp_path, monkeypatch, fmt):
    seed = int.from_bytes(os.urandom(4), "little")
    config = ModelConfig.from_hf_dict(
        tiny_config(hidden_size=256, intermediate_size=512, head_dim=64, vocab_size=VOCAB, tie_word_embeddings=True)
    )
    model = stored(random_model(config, seed % 1000), fmt)
    table = mapped(tmp_path, model.embed_tokens.stored)
    model.embed_tokens = QuantizedEmbedding(table)
    set_activations(model, "int8")
    generator = torch.Generator().manual_seed(seed)
    ids = torch.cat([torch.randperm(VOCAB - 5, generator=generator)[:195], torch.arange(VOCAB - 5, VOCAB)])

    hidden = prefill(model, ids)

    assert fused_forward.packed_head_embedding(model) is not None
    assert resident_kib(table.data.data_ptr()) <= 16  # 200 lookups of the mapped table: ~all of its 2+ MB
    with monkeypatch.context() as patch:  # the same forward reading the stored table
        patch.setattr(fused_forward, "packed_head_embedding", lambda _model: None)
        assert torch.equal(prefill(model, ids), hidden)


def test_no_packed_embedding_without_a_tied_int8_head():
    config = ModelConfig.from_hf_dict(tiny_config(hidden_size=256, intermediate_size=512, head_dim=64))
    model = stored(random_model(config, 1), "q8_0")  # untied: the head is a QuantizedLinear of its own
    set_activations(model, "int8")
    assert fused_forward.packed_head_embedding(model) is None
    tied = stored(random_model(ModelConfig.from_hf_dict(tiny_config(tie_word_embeddings=True)), 1), "q8_0")
    assert fused_forward.packed_head_embedding(tied) is None  # float32 activations
    set_activations(tied, "int8")
    assert fused_forward.packed_head_embedding(tied) is not None


def test_a_packed_copy_of_another_table_is_refused(monkeypatch):
    config = ModelConfig.from_hf_dict(tiny_config(tie_word_embeddings=True))
    model = stored(random_model(config, 2), "q8_0")
    set_activations(model, "int8")
    other = quantize(torch.randn(config.vocab_size - 8, config.hidden_size), "q8_0")
    monkeypatch.setattr(fused_forward, "packed_head_embedding", lambda _model: packed_for_int8(other))
    with pytest.raises(ValueError, match="packed embedding"):
        prefill(model, torch.arange(5))
