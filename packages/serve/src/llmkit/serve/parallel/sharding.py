"""One rank's shard of core's `LlamaModel` for tensor parallelism (Megatron-style).

Q/K/V and gate/up are column-parallel (each rank holds its heads' / its intermediate slice's rows);
O and down are row-parallel (each rank holds the matching columns; one all-reduce sums the partial
outputs). The embedding and the LM head are vocabulary-parallel: each rank holds 1/N of the rows,
looks up only its own ids (zeros elsewhere, then an all-reduce) and computes its slice of the logits
(an all-gather assembles them). Norms and RoPE are replicated. Weights kept as stored (GGUF blocks)
stay as stored: row splits copy whole rows, column splits cut each row at block boundaries.
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from llmkit.core import ops
from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.config import ModelConfig
from llmkit.core.models.llama import LlamaModel
from llmkit.core.models.quantized import QuantizedEmbedding, QuantizedLinear

from .group import TensorParallelGroup


def _block_elems(module: nn.Module) -> int:
    return module.stored.format.block_elems if isinstance(module, QuantizedLinear) else 1


def _fits(model: LlamaModel, size: int) -> bool:
    config = model.config
    if config.num_heads % size or config.num_kv_heads % size or config.intermediate_size % size:
        return False
    for layer in model.layers:  # row-parallel weights split their columns on block boundaries
        if (config.num_heads // size * config.head_dim) % _block_elems(layer.self_attn.o_proj):
            return False
        if (config.intermediate_size // size) % _block_elems(layer.mlp.down_proj):
            return False
    return config.vocab_size >= size


def check_shardable(model: LlamaModel, size: int) -> None:
    """A clear error, naming the sizes that would work, when `size` ranks cannot split this model."""
    if size < 1:
        raise InvalidParameterError(f"tensor_parallel_size must be at least 1, got {size}")
    if _fits(model, size):
        return
    config = model.config
    formats = sorted(
        {m.stored.format.name for m in model.modules() if isinstance(m, QuantizedLinear) and _block_elems(m) > 1}
    )
    working = [n for n in range(1, config.num_heads + 1) if _fits(model, n)]
    raise InvalidParameterError(
        f"tensor_parallel_size {size} does not divide this model: {config.num_heads} heads, {config.num_kv_heads} KV "
        f"heads (head_dim {config.head_dim}), intermediate size {config.intermediate_size}"
        + (f", row-parallel weights in {', '.join(formats)} blocks" if formats else "")
        + f"; sizes that work: {', '.join(map(str, working))}"
    )


def shard_config(config: ModelConfig, size: int) -> ModelConfig:
    """The shard's shape: 1/size of the heads, KV heads and intermediate (so its KV cache holds 1/size)."""
    return dataclasses.replace(
        config,
        num_heads=config.num_heads // size,
        num_kv_heads=config.num_kv_heads // size,
        intermediate_size=config.intermediate_size // size,
    )


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=False)


def _rows(module: nn.Module, start: int, stop: int) -> nn.Module:
    """Output rows [start, stop) of a linear layer (weight rows, and bias entries)."""
    bias = None if module.bias is None else module.bias.detach()[start:stop]
    if isinstance(module, QuantizedLinear):
        rows = module.stored.rows_subset(torch.arange(start, stop))
        return QuantizedLinear(rows, None if bias is None else bias.clone(), module.activations)
    layer = nn.Linear(module.in_features, stop - start, bias=bias is not None, device="meta")
    layer.weight = _frozen(module.weight[start:stop])
    if bias is not None:
        layer.bias = _frozen(bias)
    return layer


def _columns(module: nn.Module, start: int, stop: int) -> nn.Module:
    """Input columns [start, stop) of a linear layer, without its bias (added once, after the all-reduce)."""
    if isinstance(module, QuantizedLinear):
        return QuantizedLinear(module.stored.columns_slice(start, stop), None, module.activations)
    layer = nn.Linear(stop - start, module.out_features, bias=False, device="meta")
    layer.weight = _frozen(module.weight[:, start:stop])
    return layer


class RowParallelLinear(nn.Module):
    """This rank's columns of a linear layer: partial output, summed over the ranks, then the bias."""

    def __init__(self, local: nn.Module, bias: torch.Tensor | None, group: TensorParallelGroup):
        super().__init__()
        self.local, self.group = local, group
        self.bias = None if bias is None else _frozen(bias.to(torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.group.all_reduce(self.local(x).contiguous())
        return out if self.bias is None else out + self.bias.to(out.dtype)


class VocabParallelEmbedding(nn.Module):
    """Rows [start, stop) of the embedding: own ids looked up, others zero, summed over the ranks."""

    def __init__(self, embedding: nn.Module, start: int, stop: int, group: TensorParallelGroup):
        super().__init__()
        self.start, self.stop, self.group = start, stop, group
        if isinstance(embedding, QuantizedEmbedding):
            self.local = QuantizedEmbedding(
                embedding.stored.rows_subset(torch.arange(start, stop)), embedding.activations
            )
        else:
            self.local = nn.Embedding(stop - start, embedding.embedding_dim, device="meta")
            self.local.weight = _frozen(embedding.weight[start:stop])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mine = (ids >= self.start) & (ids < self.stop)
        rows = self.local((ids - self.start).clamp(0, self.stop - self.start - 1))
        rows = rows * mine.unsqueeze(-1).to(rows.dtype)
        return self.group.all_reduce(rows.contiguous())


def _head_logits(head: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    if isinstance(head, QuantizedEmbedding | QuantizedLinear):
        return ops.quantized_matmul(hidden.to(torch.float32), head.stored, activations=head.activations)
    return F.linear(hidden, head.weight).to(torch.float32)


class ShardedLlamaModel(LlamaModel):
    """A `LlamaModel` holding one rank's shard; `forward` is the parent's (its layers do the collectives)."""

    group: TensorParallelGroup
    vocab_slices: list[tuple[int, int]]

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits [N, V] over the whole vocabulary, on every rank (each computes its slice)."""
        head = self.embed_tokens.local if self.lm_head is None else self.lm_head
        local = _head_logits(head, hidden)
        widest = max(stop - start for start, stop in self.vocab_slices)
        padded = torch.zeros(local.shape[0], widest, dtype=torch.float32, device=local.device)
        padded[:, : local.shape[1]] = local
        parts = self.group.all_gather(padded)
        return torch.cat([p[:, : stop - start] for p, (start, stop) in zip(parts, self.vocab_slices, strict=True)], 1)


def vocab_slices(vocab_size: int, size: int) -> list[tuple[int, int]]:
    chunk = -(-vocab_size // size)
    return [(min(r * chunk, vocab_size), min((r + 1) * chunk, vocab_size)) for r in range(size)]


def shard_model(model: LlamaModel, group: TensorParallelGroup) -> ShardedLlamaModel:
    """Rank `group.rank`'s shard of `model` (whose own weights are then no longer needed)."""
    rank, size = group.rank, group.size
    check_shardable(model, size)
    config = model.config
    local = shard_config(config, size)
    with torch.device("meta"):
        shard = ShardedLlamaModel(local)
    shard.group, shard.vocab_slices = group, vocab_slices(config.vocab_size, size)
    start, stop = shard.vocab_slices[rank]
    if stop <= start:
        raise InvalidParameterError(f"vocabulary of {config.vocab_size} rows is too small for {size} ranks")
    shard.embed_tokens = VocabParallelEmbedding(model.embed_tokens, start, stop, group)
    if model.lm_head is not None:
        shard.lm_head = _rows(model.lm_head, start, stop)
    shard.norm, shard.rotary = model.norm, model.rotary
    q_rows, kv_rows, ff_rows = (
        local.num_heads * local.head_dim,
        local.num_kv_heads * local.head_dim,
        local.intermediate_size,
    )
    for full, part in zip(model.layers, shard.layers, strict=True):
        part.input_layernorm, part.post_attention_layernorm = full.input_layernorm, full.post_attention_layernorm
        attn, mlp = full.self_attn, full.mlp
        part.self_attn.q_proj = _rows(attn.q_proj, rank * q_rows, (rank + 1) * q_rows)
        part.self_attn.k_proj = _rows(attn.k_proj, rank * kv_rows, (rank + 1) * kv_rows)
        part.self_attn.v_proj = _rows(attn.v_proj, rank * kv_rows, (rank + 1) * kv_rows)
        part.self_attn.o_proj = RowParallelLinear(
            _columns(attn.o_proj, rank * q_rows, (rank + 1) * q_rows), attn.o_proj.bias, group
        )
        part.mlp.gate_proj = _rows(mlp.gate_proj, rank * ff_rows, (rank + 1) * ff_rows)
        part.mlp.up_proj = _rows(mlp.up_proj, rank * ff_rows, (rank + 1) * ff_rows)
        part.mlp.down_proj = RowParallelLinear(
            _columns(mlp.down_proj, rank * ff_rows, (rank + 1) * ff_rows), mlp.down_proj.bias, group
        )
    left = [name for name, t in [*shard.named_parameters(), *shard.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"sharding left {left[:3]} unset")  # a model layout this module does not know
    return shard.eval()


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights the model holds (parameters and stored-weight buffers)."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def weights_fingerprint(model: LlamaModel) -> str:
    """A hash of the config and a few bytes of every weight: ranks that loaded different files disagree."""
    digest = hashlib.sha256(repr(model.config).encode())
    for name, tensor in sorted([*model.named_parameters(), *model.named_buffers()], key=lambda item: item[0]):
        flat = tensor.detach().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        for part in (flat[:64], flat[-64:]):
            digest.update(part.contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
