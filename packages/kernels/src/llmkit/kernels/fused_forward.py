"""The native `paged_forward`: a Llama-family step in one call to `_C.LlamaForward` (see
csrc/model/llama_forward.h), built once per (model, KV caches) and kept with the model.

It runs float32-activation models on the CPU: weights as stored (GGUF blocks) or dense float32 (viewed
as f32 "blocks" without a copy). Other models -- bfloat16/float16 dense, CUDA, forward hooks attached
(activation probes), modules replaced (LoRA) -- take the reference forward; `native_forward_reason`
says why, and the engine logs it once at startup.
"""

from __future__ import annotations

import itertools
import weakref

import torch
from torch import nn

from llmkit.core import ops as core_ops
from llmkit.core.models.llama import LlamaModel
from llmkit.core.models.quantized import QuantizedEmbedding, QuantizedLinear, as_stored
from llmkit.core.ops import PagedKVCache, PagedStep, reference
from llmkit.core.ops.paged_step import InputEmbeddings

from . import _C
from .packed import packed_for_int8

_PROJECTIONS = {
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj",
    "up": "mlp.up_proj",
    "down": "mlp.down_proj",
}
_built: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Rows per `LlamaForward.run`: its activation buffers grow to the largest call (~31 KB per row for
# SmolLM2-135M with int8 activations, kept for the forward's life), so a 2048-token step runs as four
# calls of 512 (llama.cpp's default micro-batch) instead of holding 64 MB. 512 rows already fill the
# matmul tiles; the extra calls cost nothing measurable next to a 512-token layer.
MAX_CALL_ROWS = 512


def native_forward_reason(model: nn.Module, caches: list[PagedKVCache] | None = None) -> str | None:
    """None when the native forward runs this model, else why it does not."""
    if not isinstance(model, LlamaModel):
        return f"the model is a {type(model).__name__}, not llmkit's LlamaModel"
    if model.device.type != "cpu":
        return f"the model is on {model.device}; the fused forward is CPU-only"
    if model.dtype != torch.float32:
        return (
            f"activations are {model.dtype}; the fused forward computes in float32 (weights='as-stored' or 'float32')"
        )
    if model.config.head_dim > 256 or model.config.head_dim % 2:
        return f"head_dim {model.config.head_dim} is not an even number up to 256"
    if model.config.mlp_bias:
        return "MLP/output-projection biases are not fused"
    for name, module in model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return f"module {name or 'model'} has forward hooks"
    for layer in model.layers:
        for path in _PROJECTIONS.values():
            module = layer.get_submodule(path)
            if type(module) not in (QuantizedLinear, nn.Linear):
                return f"{path} is a {type(module).__name__}"
    if type(model.embed_tokens) not in (QuantizedEmbedding, nn.Embedding):
        return f"embed_tokens is a {type(model.embed_tokens).__name__}"
    if caches is not None and any(c.key.device.type != "cpu" for c in caches):
        return "the KV cache is not on the CPU"
    return None


def _stored(module: nn.Module):
    if isinstance(module, QuantizedLinear | QuantizedEmbedding):
        return module.stored
    return as_stored(module.weight.detach())


def _spec(weight) -> tuple:
    return (weight.data, weight.format.name, weight.cols)


def _build(model: LlamaModel, caches: list[PagedKVCache]):
    config = model.config
    shape = {
        "hidden": config.hidden_size,
        "heads": config.num_heads,
        "kv_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "intermediate": config.intermediate_size,
        "rms_eps": config.rms_norm_eps,
        "rope_attention_scaling": float(model.rotary.attention_scaling),
        "inv_freq": model.rotary.inv_freq.to(torch.float32).tolist(),
        "int8_activations": getattr(model.layers[0].self_attn.q_proj, "activations", "float32") == "int8",
        # int8 activations repack the Q8_0/Q4_0/Q4_1 projections (csrc/cpu/int8_repack.h); the stored
        # tensors' pages are then dropped where they are a read-only file mapping (they fault back if read).
        "release_stored": True,
    }
    layers = []
    for layer, cache in zip(model.layers, caches, strict=True):
        spec = {key: _spec(_stored(layer.get_submodule(path))) for key, path in _PROJECTIONS.items()}
        for key in ("q", "k", "v"):
            bias = layer.get_submodule(_PROJECTIONS[key]).bias
            spec[f"{key}_bias"] = None if bias is None else bias.detach().to(torch.float32).contiguous()
        spec["attn_norm"] = layer.input_layernorm.weight.detach().contiguous()
        spec["ffn_norm"] = layer.post_attention_layernorm.weight.detach().contiguous()
        spec["cache"] = (cache.kv_dtype, cache.key, cache.value, cache.key_scales, cache.value_scales)
        layers.append(spec)
    embedding = (*_spec(_stored(model.embed_tokens)), packed_head_embedding(model))
    return _C.LlamaForward(shape, embedding, model.norm.weight.detach().contiguous(), layers)


def packed_head_embedding(model: LlamaModel):
    """The embedding table's int8 repacked copy when the model's LM head is that table with int8 activations
    (its matmul packs it and releases the stored pages), so lookups read the same copy; else None."""
    head = model.embed_tokens
    if model.lm_head is not None or not isinstance(head, QuantizedEmbedding) or head.activations != "int8":
        return None
    return packed_for_int8(head.stored)


def _native(model: nn.Module, caches: list[PagedKVCache]):
    """The model's native forward over these caches, built on first use (None when it cannot run it).
    The check runs once per (model, caches): hooks or modules changed afterwards are not seen."""
    key = tuple(id(c.key) for c in caches)
    entry = _built.get(model)
    if entry is None or entry[0] != key:
        native = None if native_forward_reason(model, caches) is not None else _build(model, caches)
        entry = (key, native, caches)  # holds the caches: their ids stay theirs
        _built[model] = entry
    return entry[1]


def paged_forward(
    model: LlamaModel,
    caches: list[PagedKVCache],
    step: PagedStep,
    num_layers: int | None = None,
    input_embeddings: InputEmbeddings | None = None,
) -> torch.Tensor:
    """Final hidden states [N, hidden] of the step's tokens, exactly as the reference computes them up
    to float summation order; `input_embeddings` replaces some rows' token embeddings (image rows)."""
    forward = _native(model, caches)
    if forward is None:
        return reference("paged_forward")(model, caches, step, num_layers, input_embeddings)
    hidden = torch.empty(step.input_ids.shape[0], model.config.hidden_size, dtype=torch.float32)
    parts = split_rows(step, MAX_CALL_ROWS)
    for start, stop, part in parts:
        rows = embeddings = None
        if input_embeddings is not None:
            rows, embeddings = input_embeddings.rows, input_embeddings.embeddings
            if len(parts) > 1:  # one call checks the rows itself
                rows, embeddings = _embeddings_between(rows, embeddings, start, stop, hidden.shape[0])
            rows, embeddings = rows.to(torch.int64).contiguous(), embeddings.to(torch.float32).contiguous()
        forward.run(
            hidden[start:stop],
            part.input_ids,
            part.positions,
            part.slot_mapping,
            part.num_decode,
            part.decode_block_tables,
            part.decode_seq_lens,
            part.prefill_block_tables,
            part.prefill_seq_lens,
            part.query_start_loc,
            -1 if num_layers is None else num_layers,
            model.config.head_dim**-0.5,
            core_ops.native_threads(),
            rows,
            embeddings,
        )
    return hidden


def _embeddings_between(
    rows: torch.Tensor, embeddings: torch.Tensor, start: int, stop: int, tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The input embeddings of rows [start, stop), renumbered from `start`."""
    if rows.dim() != 1 or embeddings.dim() != 2 or rows.shape[0] != embeddings.shape[0]:
        raise ValueError("embedding_rows [R] and embeddings [R, hidden] must have the same length R")
    outside = (rows < 0) | (rows >= tokens)
    if bool(outside.any()):
        index = int(outside.nonzero()[0, 0])
        raise ValueError(f"embedding_rows[{index}] = {int(rows[index])} is outside [0, tokens)")
    inside = (rows >= start) & (rows < stop)
    return rows[inside] - start, embeddings[inside]


def split_rows(step: PagedStep, max_rows: int) -> list[tuple[int, int, PagedStep]]:
    """The step as consecutive row ranges [start, stop) of at most `max_rows` rows, each a step of its own
    (a prefill sequence cut between ranges continues in the next one, over the K/V the first wrote), in
    equal parts; one range when the step fits."""
    n = int(step.input_ids.shape[0])
    if n <= max_rows:
        return [(0, n, step)]
    parts = -(-n // max_rows)
    bounds = [n * i // parts for i in range(parts + 1)]
    decode = step.num_decode
    starts, lens = step.query_start_loc.tolist(), step.prefill_seq_lens.tolist()
    out = []
    for start, stop in itertools.pairwise(bounds):
        first_decode, last_decode = min(start, decode), min(stop, decode)
        lo, hi = max(start, decode) - decode, max(stop, decode) - decode  # offsets into the prefill part
        sequences, seq_lens, query_starts = [], [], [0]
        for i, length in enumerate(lens):
            begin, end = max(starts[i], lo), min(starts[i + 1], hi)
            if begin < end:  # rows [begin, end) of sequence i: the last of its first length - (starts[i+1] - end)
                sequences.append(i)
                seq_lens.append(length - (starts[i + 1] - end))
                query_starts.append(query_starts[-1] + end - begin)
        first_seq = sequences[0] if sequences else 0
        part = PagedStep(
            input_ids=step.input_ids[start:stop],
            positions=step.positions[start:stop],
            slot_mapping=step.slot_mapping[start:stop],
            num_decode=last_decode - first_decode,
            decode_block_tables=step.decode_block_tables[first_decode:last_decode],
            decode_seq_lens=step.decode_seq_lens[first_decode:last_decode],
            prefill_block_tables=step.prefill_block_tables[first_seq : first_seq + len(sequences)],
            prefill_seq_lens=torch.tensor(seq_lens, dtype=step.prefill_seq_lens.dtype),
            query_start_loc=torch.tensor(query_starts, dtype=step.query_start_loc.dtype),
        )
        out.append((start, stop, part))
    return out


def describe() -> str:
    cuda = "CUDA built" if _C.cuda_built() else "no CUDA"
    return f"native fused forward (CPU kernels {_C.cpu_isa()}, {cuda}, parking thread pool)"


paged_forward.unsupported_reason = native_forward_reason
paged_forward.describe = describe
