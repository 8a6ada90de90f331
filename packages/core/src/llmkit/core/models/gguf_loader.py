"""GGUF checkpoints (llama.cpp's format): metadata, dequantized tensors, tokenizer and chat template."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType, GGUFReader
from gguf.quants import dequantize

from ..errors import ModelFormatError
from ..quant import FORMATS, QuantizedWeight, format_of_ggml
from ..tokenizer import Tokenizer
from .checkpoint import Checkpoint, expected_tensor_names
from .config import ModelConfig
from .gguf_file import GGUFFile

Q = GGMLQuantizationType
SUPPORTED_TENSOR_TYPES = frozenset(
    {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K}
)

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}
# Types kept as stored with `keep_stored` (the kernels' formats); others are dequantized, with a warning.
STORED_TENSOR_TYPES = frozenset(f.ggml_type for f in FORMATS.values())
logger = logging.getLogger(__name__)

# The llama.cpp converter permutes Q/K rows for its interleaved RoPE only for these architectures.
_PERMUTED_QK = {"llama"}


def llmkit_tensor_name(gguf_name: str) -> str | None:
    """Our parameter name for a GGUF tensor name (None for tensors llmkit does not use)."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _LAYER_NAMES:
        return f"layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}"
    return None


def unpermute_qk(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's `permute` of Q/K rows (interleaved -> rotate-half RoPE layout)."""
    rows = weight.shape[0]
    return weight.reshape(num_heads, rows // num_heads // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def read_fields(reader: GGUFReader) -> dict[str, Any]:
    return {key: field.contents() for key, field in reader.fields.items()}


class GGUFLoader:
    """Loads `.gguf` files (F32/F16/BF16, Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 and K-quants): into float32 tensors, or
    with `keep_stored` the matrices as `QuantizedWeight`s over the memory-mapped file (no copy, except
    llama's Q/K rows, which are reordered for rotate-half RoPE)."""

    def can_load(self, path: Path) -> bool:
        if path.is_file():
            with path.open("rb") as f:
                return f.read(4) == b"GGUF"
        return False

    def load(self, path: Path, *, keep_stored: bool = False) -> Checkpoint:
        try:
            reader = GGUFFile(path)
            fields = reader.fields
        except (ValueError, OSError) as err:  # GGUFFormatError is a ValueError
            raise ModelFormatError(f"{path} is not a readable GGUF file ({type(err).__name__}: {err})") from None
        config = config_from_fields(fields, {info.name for info in reader.tensors})
        rope_factors = next((info for info in reader.tensors if info.name == "rope_freqs.weight"), None)
        if rope_factors is not None:
            # Llama 3.1 GGUFs carry their RoPE scaling as per-frequency divisors.
            factors = np.array(dequantize(rope_factors.data, rope_factors.tensor_type), dtype=np.float32)
            config = dataclasses.replace(
                config, rope_scaling={"rope_type": "freq_factors", "factors": factors.tolist()}
            )
        tensors = {}
        for info in reader.tensors:
            name = llmkit_tensor_name(info.name)
            if name is None:
                continue
            if info.tensor_type not in SUPPORTED_TENSOR_TYPES:
                raise ModelFormatError(
                    f"tensor {info.name!r} has type {info.tensor_type.name}, which llmkit cannot dequantize "
                    f"(supported: {', '.join(sorted(t.name for t in SUPPORTED_TENSOR_TYPES))})"
                )
            heads = None
            if config.architecture in _PERMUTED_QK and ".q_proj." in name:
                heads = config.num_heads
            elif config.architecture in _PERMUTED_QK and ".k_proj." in name:
                heads = config.num_kv_heads
            if keep_stored and len(info.shape) == 2 and info.tensor_type in STORED_TENSOR_TYPES:
                tensor = _stored_matrix(info, path, heads)
            else:
                if keep_stored and len(info.shape) == 2:
                    logger.warning(
                        "%s: tensor %r is %s, which the native kernels do not cover (%s); dequantized to float32",
                        path.name,
                        info.name,
                        info.tensor_type.name,
                        ", ".join(f.name for f in FORMATS.values()),
                    )
                try:
                    array = dequantize(np.asarray(info.data), info.tensor_type)
                except Exception as err:
                    raise ModelFormatError(f"tensor {info.name!r} in {path} is corrupt: {err}") from None
                tensor = torch.from_numpy(np.array(array, dtype=np.float32))
                if heads is not None:
                    tensor = unpermute_qk(tensor, heads)
            tensors[name] = tensor
        # The header's pages and those of the tensors copied above (llama's Q/K rows, norms) stay resident
        # otherwise; matrices kept as stored fault theirs in when first read.
        reader.drop_resident_pages()
        missing = [n for n in expected_tensor_names(config) if n not in tensors]
        if missing:
            raise ModelFormatError(
                f"{path} lacks the tensor {missing[0]!r}"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
            )
        return Checkpoint(
            config=config,
            tensors=tensors,
            tokenizer=Tokenizer.from_gguf_fields(fields),
            chat_template=fields.get("tokenizer.chat_template"),
            path=path,
            format="gguf",
            metadata={k: v for k, v in fields.items() if k.startswith("general.")},
        )


def _stored_matrix(info: Any, path: Path, heads: int | None) -> QuantizedWeight:
    """A 2-D tensor's blocks as stored, viewing the memory-mapped file (rows reordered when `heads`)."""
    fmt = format_of_ggml(info.tensor_type)
    cols, rows = (int(d) for d in info.shape)
    data = np.asarray(info.data)
    if data.dtype != np.uint8:  # F32/F16/BF16 arrive typed; their bytes are the stored row
        data = data.view(np.uint8)
    data = data.reshape(rows, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the map is read-only; nothing ever writes to it
        tensor = torch.from_numpy(data)
    try:
        weight = QuantizedWeight(tensor, fmt, rows, cols)
    except Exception as err:
        raise ModelFormatError(f"tensor {info.name!r} in {path} is corrupt: {err}") from None
    if heads is not None:
        order = unpermute_qk(torch.arange(rows), heads)
        weight = weight.rows_subset(order)
    return weight


def config_from_fields(fields: dict[str, Any], tensor_names: set[str]) -> ModelConfig:
    arch = fields.get("general.architecture")
    if arch is None:
        raise ModelFormatError("GGUF metadata lacks 'general.architecture'")

    def get(key: str, default: Any = None) -> Any:
        value = fields.get(f"{arch}.{key}", default)
        if value is None:
            raise ModelFormatError(f"GGUF metadata lacks '{arch}.{key}'")
        return value

    if arch not in ("llama", "qwen2"):
        raise ModelFormatError(f"unsupported GGUF architecture {arch!r}; llmkit reads llama and qwen2")
    hidden = int(get("embedding_length"))
    heads = int(get("attention.head_count"))
    tokens = fields.get("tokenizer.ggml.tokens") or []
    return ModelConfig(
        architecture=arch,
        vocab_size=int(fields.get(f"{arch}.vocab_size") or len(tokens)),
        hidden_size=hidden,
        intermediate_size=int(get("feed_forward_length")),
        num_layers=int(get("block_count")),
        num_heads=heads,
        num_kv_heads=int(get("attention.head_count_kv", heads)),
        head_dim=int(fields.get(f"{arch}.attention.key_length") or hidden // heads),
        max_position_embeddings=int(get("context_length")),
        rms_norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        rope_theta=float(get("rope.freq_base", 10000.0)),
        rope_scaling=_rope_scaling(fields, arch),
        tie_word_embeddings="output.weight" not in tensor_names,
        attention_bias=arch == "qwen2",
    )


def _rope_scaling(fields: dict[str, Any], arch: str) -> dict[str, Any] | None:
    kind = fields.get(f"{arch}.rope.scaling.type")
    if kind in (None, "none"):
        return None
    factor = fields.get(f"{arch}.rope.scaling.factor")
    original = fields.get(f"{arch}.rope.scaling.original_context_length")
    if kind == "linear":
        return {"rope_type": "linear", "factor": factor}
    if kind == "yarn":
        return {"rope_type": "yarn", "factor": factor, "original_max_position_embeddings": original}
    raise ModelFormatError(f"unsupported GGUF rope scaling type {kind!r}; llmkit supports linear and yarn")
