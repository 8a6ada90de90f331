"""Trained models on disk as HF-layout directories that `load_pretrained` (and transformers) read back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from llmkit.core.models.config import ModelConfig
from llmkit.core.models.llama import LlamaModel
from llmkit.core.models.pretrained import Pretrained

_ARCHITECTURE_CLASSES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}


def hf_config(config: ModelConfig, dtype: torch.dtype, tokenizer) -> dict:
    """ModelConfig -> an HF config.json dict (rope scaling kept as llmkit reads it back)."""
    raw = {
        "architectures": [_ARCHITECTURE_CLASSES[config.architecture]],
        "model_type": config.architecture,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": config.rope_theta,
        "tie_word_embeddings": config.tie_word_embeddings,
        "attention_bias": config.attention_bias,
        "mlp_bias": config.mlp_bias,
        "hidden_act": "silu",
        "torch_dtype": str(dtype).removeprefix("torch."),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_ids[0] if tokenizer.eos_token_ids else None,
    }
    if config.rope_scaling:
        raw["rope_scaling"] = dict(config.rope_scaling)
    return raw


def model_tensors(model: LlamaModel) -> dict[str, torch.Tensor]:
    """HF tensor names (`model.` prefix, `lm_head.weight`) -> contiguous CPU tensors."""
    tensors = {}
    for name, tensor in model.state_dict().items():
        if name.endswith((".lora_A", ".lora_B")):
            raise ValueError("merge LoRA adapters (merge_lora) before saving the full model")
        key = name if name.startswith("lm_head") else f"model.{name}"
        tensors[key] = tensor.detach().to("cpu").contiguous()
    return tensors


def save_pretrained(pretrained: Pretrained, directory: str | Path, model: LlamaModel | None = None) -> Path:
    """config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with the chat template) and
    generation_config.json, written to a temporary directory and moved into place."""
    directory = Path(directory)
    model = model or pretrained.model
    tokenizer = pretrained.tokenizer
    staging = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(model_tensors(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
    (staging / "config.json").write_text(json.dumps(hf_config(model.config, model.dtype, tokenizer), indent=2))
    tokenizer.backend.save(str(staging / "tokenizer.json"))
    tokenizer_config = {
        "bos_token": tokenizer.bos_token or None,
        "eos_token": tokenizer.eos_token or None,
        "pad_token": None if tokenizer.pad_token_id is None else tokenizer.id_to_token(tokenizer.pad_token_id),
    }
    if pretrained.chat_template is not None:
        tokenizer_config["chat_template"] = pretrained.chat_template.source
    (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    generation = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": list(tokenizer.eos_token_ids)}
    (staging / "generation_config.json").write_text(json.dumps(generation, indent=2))
    replace_directory(staging, directory)
    return directory


def replace_directory(staging: Path, directory: Path) -> None:
    """Move a finished directory into place; an old one is renamed away first and then removed."""
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def weights_fingerprint(model: torch.nn.Module, include_adapters: bool = True) -> str:
    """sha256 over tensor names, shapes, dtypes and bytes: two models match only if identical."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if not include_adapters and name.endswith((".lora_A", ".lora_B")):
            continue
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()
