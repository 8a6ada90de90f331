"""Tiny random HF-layout models for tests in every llmkit package (no download, seconds to build)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from .chat_template import builtin_template_source
from .models.config import ModelConfig
from .models.llama import LlamaModel

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 4,
    "def reverse(s):\n    return s[::-1]\n",
    "What is the capital of France? The capital of France is Paris.",
    "1 + 1 = 2, 2 + 3 = 5, 10 * 12 = 120. Numbers: 0123456789.",
    '{"name": "get_weather", "arguments": {"city": "Paris"}} [1, 2, 3] true false null',
    "Héllo wörld! Ünïcödé, 日本語, emoji 🙂🚀 and more text for the byte-level merges.",
]


def tiny_tokenizer(vocab_size: int = 384) -> HFTokenizer:
    """A deterministic byte-level BPE trained on a fixed corpus, with ChatML special tokens."""
    tokenizer = HFTokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer=trainer)
    return tokenizer


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """An HF config.json dict for a tiny Llama (overridable)."""
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 384,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 256,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    config.update(overrides)
    return config


def random_model(config: ModelConfig, seed: int = 0, std: float = 0.5) -> LlamaModel:
    """A LlamaModel with seeded random weights large enough to give peaked, varied logits."""
    generator = torch.Generator().manual_seed(seed)
    model = LlamaModel(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(std * torch.randn(param.shape, generator=generator) / param.shape[-1] ** 0.5)
    return model.eval()


def write_tiny_model(directory: str | Path, seed: int = 0, std: float = 0.5, **config_overrides: Any) -> Path:
    """Write an HF-layout tiny random model (config, safetensors, tokenizer, ChatML template) and return its path.
    A larger `std` gives more peaked next-token distributions."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    raw = tiny_config(**config_overrides)
    tokenizer = tiny_tokenizer(raw["vocab_size"])
    model = random_model(ModelConfig.from_hf_dict(raw), seed, std)
    tensors = {
        ("model." + k if not k.startswith("lm_head") else k): v.contiguous() for k, v in model.state_dict().items()
    }
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(raw, indent=2))
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "chat_template": builtin_template_source("chatml"),
            }
        )
    )
    return directory
