"""`Checkpoint`: what a model loader hands back, and the loader interface plugins implement."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import torch

from ..quant import QuantizedWeight
from ..tokenizer import Tokenizer
from .config import ModelConfig


@dataclasses.dataclass
class Checkpoint:
    """Config, weights named as in `LlamaModel`, tokenizer and chat template of one model.

    Tensors are float32, except with `load(..., keep_stored=True)`: then matrices are as the file stores
    them (a `QuantizedWeight` of GGUF blocks, or a bf16/fp16 tensor)."""

    config: ModelConfig
    tensors: dict[str, torch.Tensor | QuantizedWeight]
    tokenizer: Tokenizer
    chat_template: str | None
    path: Path
    format: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


class ModelLoader(Protocol):
    """Reads one checkpoint format; registered through `llmkit_register_model_loaders`."""

    def can_load(self, path: Path) -> bool:
        """True when `path` (file or directory) is in this loader's format."""
        ...

    def load(self, path: Path, *, keep_stored: bool = False) -> Checkpoint:
        """Float32 tensors; with `keep_stored`, matrices as stored (no float copy)."""
        ...


def expected_tensor_names(config: ModelConfig) -> list[str]:
    """Every parameter name `LlamaModel(config)` needs."""
    names = ["embed_tokens.weight", "norm.weight"]
    if not config.tie_word_embeddings:
        names.append("lm_head.weight")
    for i in range(config.num_layers):
        prefix = f"layers.{i}."
        names += [prefix + "input_layernorm.weight", prefix + "post_attention_layernorm.weight"]
        for proj in ("q_proj", "k_proj", "v_proj"):
            names.append(f"{prefix}self_attn.{proj}.weight")
            if config.attention_bias:
                names.append(f"{prefix}self_attn.{proj}.bias")
        names.append(prefix + "self_attn.o_proj.weight")
        for proj in ("gate_proj", "up_proj", "down_proj"):
            names.append(f"{prefix}mlp.{proj}.weight")
            if config.mlp_bias:
                names.append(f"{prefix}mlp.{proj}.bias")
        if config.mlp_bias:
            names.append(prefix + "self_attn.o_proj.bias")
    return names
