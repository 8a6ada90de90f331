"""The native fused forward (one `_C.LlamaForward.run` per engine step) against core's reference
`paged_forward` (the model's torch forward with paged attention), on tiny random models: dense
float32 and weights kept as stored in several block formats, steps mixing decodes and prefill chunks,
every KV-cache format."""

from __future__ import annotations

import os

import pytest
import torch
from kernel_helpers import cpu_isa, relative_error

from llmkit.core import ops
from llmkit.core.models.config import ModelConfig
from llmkit.core.models.quantized import QuantizedEmbedding, QuantizedLinear, set_activations
from llmkit.core.ops import PagedStep
from llmkit.core.ops.paged_step import InputEmbeddings
from llmkit.core.quant import quantize
from llmkit.core.testing import random_model, tiny_config
from llmkit.kernels import _C, fused_forward

BLOCK = 16


def tiny(seed: int, **overrides) -> torch.nn.Module:
    config = ModelConfig.from_hf_dict(tiny_config(hidden_size=256, intermediate_size=512, head_dim=64, **overrides))
    return random_model(config, seed)


def stored(model: torch.nn.Module, fmt: str) -> torch.nn.Module:
    """The model with every matrix quantized to `fmt` (as `load_pretrained(quantize=fmt)` does)."""
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, child_name, QuantizedLinear(quantize(child.weight.detach(), fmt), child.bias))
            elif isinstance(child, torch.nn.Embedding):
                setattr(module, child_name, QuantizedEmbedding(quantize(child.weight.detach(), fmt)))
    return model


def step_for(generator, decode_lens, prefill_chunks, vocab, num_blocks):
    """A step: decoding sequences with `decode_lens` tokens so far (the last is new), then prefill chunks
    (already cached, new) -- with scattered blocks. Returns the step and the K/V-writing prefix steps."""
    order = torch.randperm(num_blocks, generator=generator).tolist()
    tables, ids, positions, slots = [], [], [], []

    def table_for(length):
        blocks = [order.pop() for _ in range((length + BLOCK - 1) // BLOCK)]
        tables.append(blocks)
        return blocks

    def tokens(table, start, stop):
        for p in range(start, stop):
            ids.append(int(torch.randint(0, vocab, (1,), generator=generator)))
            positions.append(p)
            slots.append(table[p // BLOCK] * BLOCK + p % BLOCK)

    decode_tables = [table_for(n) for n in decode_lens]
    prefill_tables = [table_for(cached + new) for cached, new in prefill_chunks]
    for table, n in zip(decode_tables, decode_lens, strict=True):
        tokens(table, n - 1, n)
    for table, (cached, new) in zip(prefill_tables, prefill_chunks, strict=True):
        tokens(table, cached, cached + new)
    width = max(len(t) for t in tables)

    def padded(rows):
        out = torch.zeros(len(rows), max(width, 1), dtype=torch.int32)
        for i, row in enumerate(rows):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.int32)
        return out

    starts = [0]
    for _, new in prefill_chunks:
        starts.append(starts[-1] + new)
    step = PagedStep(
        input_ids=torch.tensor(ids),
        positions=torch.tensor(positions),
        slot_mapping=torch.tensor(slots),
        num_decode=len(decode_lens),
        decode_block_tables=padded(decode_tables),
        decode_seq_lens=torch.tensor(decode_lens, dtype=torch.int32),
        prefill_block_tables=padded(prefill_tables),
        prefill_seq_lens=torch.tensor([c + n for c, n in prefill_chunks], dtype=torch.int32),
        query_start_loc=torch.tensor(starts, dtype=torch.int32),
    )
    # The context before this step: each sequence's earlier tokens, prefilled in one chunk.
    history = []
    for table, n in zip(decode_tables, decode_lens, strict=True):
        history.append((table, n - 1))
    for table, (cached, _) in zip(prefill_tables, prefill_chunks, strict=True):
        history.append((table, cached))
    return step, history


def prefill_history(model, caches, history, vocab, generator, forward):
    """Write each sequence's earlier tokens into the caches with `forward`."""
    for table, length in history:
        if length == 0:
            continue
        ids = torch.randint(0, vocab, (length,), generator=generator)
        positions = torch.arange(length)
        slots = torch.tensor([table[p // BLOCK] * BLOCK + p % BLOCK for p in range(length)])
        tables = torch.zeros(1, len(table), dtype=torch.int32)
        tables[0] = torch.tensor(table, dtype=torch.int32)
        forward(
            model,
            caches,
            PagedStep(
                ids,
                positions,
                slots,
                0,
                torch.zeros(0, 1, dtype=torch.int32),
                torch.zeros(0, dtype=torch.int32),
                tables,
                torch.tensor([length], dtype=torch.int32),
                torch.tensor([0, length], dtype=torch.int32),
            ),
        )


def run_both(model, kv_dtype, decode_lens, prefill_chunks, seed, embedded_rows=None):
    """Hidden states of the same step from the reference and the native forward, each on its own caches
    filled with the same history by its own forward; `embedded_rows` take random input embeddings."""
    config = model.config
    results = []
    for forward in (ops.reference("paged_forward"), fused_forward.paged_forward):
        generator = torch.Generator().manual_seed(seed)
        caches = [
            ops.allocate(64, config.num_kv_heads, BLOCK, config.head_dim, kv_dtype, torch.float32)
            for _ in range(config.num_layers)
        ]
        step, history = step_for(generator, decode_lens, prefill_chunks, config.vocab_size, 64)
        prefill_history(model, caches, history, config.vocab_size, generator, forward)
        embeddings = None
        if embedded_rows is not None:
            values = torch.randn(len(embedded_rows), config.hidden_size, generator=torch.Generator().manual_seed(seed))
            embeddings = InputEmbeddings(torch.tensor(embedded_rows), values)
        with torch.inference_mode():
            results.append(forward(model, caches, step, None, embeddings))
    return results


SHAPES = [([5, 17, 40], [(0, 9), (20, 3)]), ([33], []), ([], [(0, 21)])]


@pytest.mark.parametrize("weights", ["float32", "q8_0", "q4_0", "q4_1", "q4_k"])
@pytest.mark.parametrize("decode_lens,prefill_chunks", SHAPES)
def test_native_forward_equals_the_reference(weights, decode_lens, prefill_chunks):
    seed = int.from_bytes(os.urandom(4), "little")
    model = tiny(seed % 1000)
    if weights != "float32":
        model = stored(model, weights)
    assert fused_forward.native_forward_reason(model) is None
    reference, native = run_both(model, "auto", decode_lens, prefill_chunks, seed)
    assert relative_error(native, reference) < 1e-4, (weights, seed)


@pytest.mark.parametrize("weights", ["float32", "q4_0"])
def test_input_embeddings_replace_their_rows_in_both_forwards(weights):
    """A vision-language model's image rows: the native forward takes the given embeddings in place of those
    rows' token embeddings exactly as the reference does (a decode row, and rows in both prefill chunks)."""
    seed = int.from_bytes(os.urandom(4), "little")
    model = tiny(seed % 1000)
    if weights != "float32":
        model = stored(model, weights)
    rows = [1, 4, 5, 6, 13, 14]  # decode row 1; rows 3..11 are the first chunk, 12..14 the second
    reference, native = run_both(model, "auto", [5, 17, 40], [(0, 9), (20, 3)], seed, rows)
    assert relative_error(native, reference) < 1e-4, (weights, seed)
    plain, _ = run_both(model, "auto", [5, 17, 40], [(0, 9), (20, 3)], seed)
    changed = (reference - plain).abs().amax(dim=1) > 1e-3
    assert changed[rows].all() and not changed[[0, 2, 3, 12]].any(), seed  # later rows of a chunk see them too


def test_input_embeddings_rows_outside_the_step_are_refused():
    model = tiny(3)
    config = model.config
    caches = [ops.allocate(8, config.num_kv_heads, BLOCK, config.head_dim, "auto", torch.float32) for _ in model.layers]
    step, _ = step_for(torch.Generator().manual_seed(0), [], [(0, 4)], config.vocab_size, 8)
    outside = InputEmbeddings(torch.tensor([4]), torch.randn(1, config.hidden_size))
    with pytest.raises(ValueError, match="embedding_rows"):
        fused_forward.paged_forward(model, caches, step, None, outside)


# K/V from the two forwards differ by ~1e-7, and a quantized cache may round such a value to the
# neighbouring level: int4 (7 levels a side) moves most (1.05e-3 seen once).
QUANTIZED_KV_TOLERANCE = {"fp8_e4m3": 5e-3, "int8": 5e-3, "int4": 1e-2}


@pytest.mark.parametrize("kv_dtype", list(QUANTIZED_KV_TOLERANCE))
def test_native_forward_on_quantized_kv_caches(kv_dtype):
    seed = int.from_bytes(os.urandom(4), "little")
    model = stored(tiny(seed % 1000), "q8_0")
    reference, native = run_both(model, kv_dtype, [12, 30], [(0, 7)], seed)
    assert relative_error(native, reference) < QUANTIZED_KV_TOLERANCE[kv_dtype], (kv_dtype, seed)


def test_int8_activations_follow_their_reference():
    """Each int8 matmul equals its reference to 1e-5 (test_quant_matmul); through a forward, a float
    difference of 1e-7 can flip an activation's int8 rounding, so the two forwards agree to about 1%."""
    seed = int.from_bytes(os.urandom(4), "little")
    model = stored(tiny(seed % 1000), "q4_0")
    set_activations(model, "int8")
    reference, native = run_both(model, "auto", [9, 26], [(0, 5)], seed)
    assert relative_error(native, reference) < 2e-2, seed


@pytest.mark.parametrize("isa", _C.supported_cpu_isas())
@pytest.mark.parametrize("weights", ["q8_0", "q4_0", "q4_1"])
def test_int8_activations_run_on_repacked_weights(weights, isa):
    """With int8 activations every projection is repacked (rows in groups of 8) when the forward is built,
    including K/V with 36 rows (4 in the rows % 8 tail), and the forward still follows the reference
    (to about 1%, as above); a decode-only step (n = 3) and a mixed one (n = 11)."""
    seed = int.from_bytes(os.urandom(4), "little")
    config = tiny_config(hidden_size=256, intermediate_size=512, num_attention_heads=8, num_key_value_heads=1)
    model = stored(random_model(ModelConfig.from_hf_dict({**config, "head_dim": 36}), seed % 1000), weights)
    set_activations(model, "int8")
    with cpu_isa(isa):
        for decode_lens, prefill_chunks in (([4, 19, 33], []), ([9, 26], [(0, 5), (3, 4)])):
            reference, native = run_both(model, "auto", decode_lens, prefill_chunks, seed)
            assert relative_error(native, reference) < 2e-2, (weights, isa, seed)
    forward = fused_forward._built[model][1]
    stored_bytes = sum(
        layer.get_submodule(path).stored.data.numel()
        for layer in model.layers
        for path in fused_forward._PROJECTIONS.values()
    )
    assert forward.packed_bytes == stored_bytes
    assert forward.released_bytes == 0  # quantized in memory, not a file mapping: nothing to release


def test_models_the_fused_forward_cannot_run_say_why():
    model = tiny(0).to(torch.bfloat16)
    assert "bfloat16" in fused_forward.native_forward_reason(model)
    model = tiny(0)
    model.layers[0].register_forward_hook(lambda *args: None)
    assert "forward hooks" in fused_forward.native_forward_reason(model)


def test_qwen2_biases_are_applied():
    seed = int.from_bytes(os.urandom(4), "little")
    model = tiny(seed % 1000, attention_bias=True)
    with torch.no_grad():
        for layer in model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_()
    reference, native = run_both(model, "auto", [7], [(0, 4)], seed)
    assert relative_error(native, reference) < 1e-4
