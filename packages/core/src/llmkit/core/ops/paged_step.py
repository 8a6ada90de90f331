"""The model's forward over a paged KV cache for one engine step: the reference (the model's own
torch forward with paged attention through core's ops) that native fused forwards must equal.

Token order in the flat step: decoding sequences (one token each) first, then prefill chunks back to
back (`query_start_loc` offsets into the prefill part).
"""

from __future__ import annotations

import dataclasses

import torch

from .dispatch import implementation
from .kv_layout import PagedKVCache


@dataclasses.dataclass
class PagedStep:
    """Tensors of one forward: flat tokens, their positions and slots, and per-sequence tables."""

    input_ids: torch.Tensor  # [N] int64
    positions: torch.Tensor  # [N] int64
    slot_mapping: torch.Tensor  # [N] int64
    num_decode: int  # the first num_decode tokens each belong to a decoding sequence
    decode_block_tables: torch.Tensor  # [D, max_blocks] int32
    decode_seq_lens: torch.Tensor  # [D] int32
    prefill_block_tables: torch.Tensor  # [P, max_blocks] int32
    prefill_seq_lens: torch.Tensor  # [P] int32
    query_start_loc: torch.Tensor  # [P + 1] int32


@dataclasses.dataclass(frozen=True)
class InputEmbeddings:
    """Rows of a step whose input is a given embedding instead of their token's (a vision-language model's
    image embeddings in place of its placeholder tokens), applied right after the embedding lookup."""

    rows: torch.Tensor  # [R] int64, rows of the flat step
    embeddings: torch.Tensor  # [R, hidden]


class PagedAttention:
    """The `AttentionContext` of one step: write new K/V into their slots, then decode/prefill attention."""

    def __init__(self, caches: list[PagedKVCache], step: PagedStep, scale: float):
        self.caches, self.step, self.scale = caches, step, scale

    def attend(self, layer: int, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        cache, step, device = self.caches[layer], self.step, query.device.type
        implementation("reshape_and_cache", device)(key, value, cache, step.slot_mapping)
        out = torch.empty_like(query)
        d = step.num_decode
        if d:
            implementation("paged_attention_decode", device)(
                out[:d], query[:d], cache, step.decode_block_tables, step.decode_seq_lens, self.scale
            )
        if d < query.shape[0]:
            implementation("paged_attention_prefill", device)(
                out[d:],
                query[d:],
                cache,
                step.prefill_block_tables,
                step.prefill_seq_lens,
                step.query_start_loc,
                self.scale,
            )
        return out


def paged_forward(
    model,
    caches: list[PagedKVCache],
    step: PagedStep,
    num_layers: int | None = None,
    input_embeddings: InputEmbeddings | None = None,
) -> torch.Tensor:
    """Final hidden states [N, hidden] of the step's tokens (after the final norm), writing their K/V."""
    attention = PagedAttention(caches, step, model.config.head_dim**-0.5)
    if input_embeddings is None:
        return model(step.input_ids, step.positions, attention, num_layers)
    x = model.embed_tokens(step.input_ids).to(model.dtype)  # LlamaModel.forward with some rows replaced
    x[input_embeddings.rows] = input_embeddings.embeddings.to(x.dtype)
    cos, sin = model.rotary(step.positions, x.dtype)
    for layer in model.layers[:num_layers]:
        x = layer(x, cos, sin, attention)
    return model.norm(x)


def dispatch_paged_forward(
    model,
    caches: list[PagedKVCache],
    step: PagedStep,
    num_layers: int | None = None,
    input_embeddings: InputEmbeddings | None = None,
) -> torch.Tensor:
    forward = implementation("paged_forward", model.device.type)
    if input_embeddings is None:  # registered forwards that predate the argument keep working on text steps
        return forward(model, caches, step, num_layers)
    return forward(model, caches, step, num_layers, input_embeddings)


def describe_forward(model) -> str:
    """One line for startup logs: which forward runs this model, on which kernels, over which weight formats.

    A registered `paged_forward` may carry `describe()` (its kernels) and `unsupported_reason(model)`
    (why it would hand this model to the reference)."""
    from collections import Counter

    formats = Counter(  # stored layers carry `stored`, a QuantizedWeight (models.quantized)
        m.stored.format.name if hasattr(m, "stored") else str(m.weight.dtype).removeprefix("torch.")
        for m in model.modules()
        if hasattr(m, "stored") or isinstance(m, torch.nn.Linear | torch.nn.Embedding)
    )
    weights = ", ".join(f"{name} x{count}" for name, count in formats.most_common())
    chosen = implementation("paged_forward", model.device.type)
    reason = _reference_reason(model)
    if reason is not None:
        return f"forward: torch reference on {model.device} ({reason}); weights {weights}"
    return f"forward: {getattr(chosen, 'describe', lambda: 'native')()} on {model.device}; weights {weights}"


def forward_is_native(model) -> bool:
    """True when `paged_forward` runs this model in a registered native forward, not the torch reference."""
    return _reference_reason(model) is None


def _reference_reason(model) -> str | None:
    chosen = implementation("paged_forward", model.device.type)
    if chosen is paged_forward:
        return "no native forward is registered"
    return getattr(chosen, "unsupported_reason", lambda _model: None)(model)
