"""A tiny random Idefics3 (SmolVLM) directory for the engine and server image tests, written without transformers.

The shapes, tokenizer, processor settings and chat template of tests/core/vision_fixtures.py (whose model core
checks against transformers), but the files are written directly: importing transformers' image stack costs
tens of seconds, and these tests compare the engine with core's own non-paged reference instead."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from core.vision_fixtures import CHAT_TEMPLATE, TEXT_CONFIG, TILE, VISION_CONFIG, build_tokenizer
from safetensors.torch import save_file

from llmkit.core.models.vision import Idefics3Config, Idefics3Model, LlavaConfig, LlavaModel

EOS = "<end_of_utterance>"


def build_tiny_vlm(directory: Path, seed: int = 0) -> Path:
    tokenizer = build_tokenizer()
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS}))
    (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    config = {
        "model_type": "idefics3",
        "image_token_id": tokenizer.token_to_id("<image>"),
        "scale_factor": 2,
        "tie_word_embeddings": False,
        "text_config": {
            **TEXT_CONFIG,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": False,
            "bos_token_id": 1,
            "eos_token_id": tokenizer.token_to_id(EOS),
        },
        "vision_config": {**VISION_CONFIG, "model_type": "idefics3_vision", "hidden_act": "gelu_pytorch_tanh"},
    }
    (directory / "config.json").write_text(json.dumps(config))
    processor = {
        "image_seq_len": 4,
        "image_processor": {
            "do_image_splitting": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "max_image_size": {"longest_edge": TILE},
            "resample": 1,
            "rescale_factor": 1 / 255,
            "size": {"longest_edge": 4 * TILE},
        },
    }
    (directory / "processor_config.json").write_text(json.dumps(processor))
    model = Idefics3Model(Idefics3Config.from_hf_dict(config))
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, param in model.named_parameters():
        stored = "lm_head.weight" if name == "text_model.lm_head.weight" else f"model.{name}"
        tensors[stored] = (torch.randn(param.shape, generator=generator) * 0.3).contiguous()
    save_file(tensors, str(directory / "model.safetensors"))
    return directory


def build_tiny_llava(directory: Path, seed: int = 0) -> Path:
    """A tiny random LLaVA (CLIP tower of 3 layers, 4x4 patches of 8 pixels -> 16 image tokens an image, MLP
    projector) with the same tokenizer and chat template, in the layout transformers saves."""
    tokenizer = build_tokenizer()
    tokenizer.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({"eos_token": EOS}))
    (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    config = {
        "model_type": "llava",
        "image_token_index": tokenizer.token_to_id("<image>"),
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "projector_hidden_act": "gelu",
        "tie_word_embeddings": False,
        "text_config": {**TEXT_CONFIG, "rms_norm_eps": 1e-6, "eos_token_id": tokenizer.token_to_id(EOS)},
        "vision_config": {**VISION_CONFIG, "model_type": "clip_vision_model", "num_hidden_layers": 3},
    }
    (directory / "config.json").write_text(json.dumps(config))
    processor = {"image_processor": {"size": {"shortest_edge": TILE}, "crop_size": {"height": TILE, "width": TILE}}}
    (directory / "processor_config.json").write_text(json.dumps(processor))
    model = LlavaModel(LlavaConfig.from_hf_dict(config), post_layernorm=False)
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, param in model.named_parameters():
        if name == "text_model.lm_head.weight":
            stored = "lm_head.weight"
        elif name.startswith("text_model."):
            stored = "model.language_model." + name.removeprefix("text_model.")
        else:
            stored = f"model.{name}"
        tensors[stored] = (torch.randn(param.shape, generator=generator) * 0.3).contiguous()
    save_file(tensors, str(directory / "model.safetensors"))
    return directory
