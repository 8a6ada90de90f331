"""Configs of the vision tower and of an Idefics3 / SmolVLM model, read from an HF `config.json`."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import ModelFormatError
from ..config import ModelConfig

# model_type of the whole model -> model_type its vision_config carries.
VISION_LANGUAGE_TYPES = {"idefics3": "idefics3_vision", "smolvlm": "smolvlm_vision"}
_ACTIVATIONS = ("gelu_pytorch_tanh", "gelu", "quick_gelu")  # quick_gelu: CLIP (LLaVA)


@dataclasses.dataclass(frozen=True)
class VisionConfig:
    """A SigLIP-style vision transformer: patch conv, learned positions, pre-norm encoder layers, post norm."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    image_size: int
    patch_size: int
    num_channels: int = 3
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ModelFormatError(f"vision hidden_size {self.hidden_size} is not a multiple of {self.num_heads} heads")
        if self.image_size % self.patch_size:
            raise ModelFormatError(f"vision image_size {self.image_size} is not a multiple of patch {self.patch_size}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ModelFormatError(
                f"unsupported vision activation {self.hidden_act!r}; llmkit runs {', '.join(_ACTIVATIONS)}"
            )

    @property
    def patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> VisionConfig:
        try:
            return cls(
                hidden_size=raw["hidden_size"],
                intermediate_size=raw["intermediate_size"],
                num_layers=raw["num_hidden_layers"],
                num_heads=raw["num_attention_heads"],
                image_size=raw["image_size"],
                patch_size=raw["patch_size"],
                num_channels=raw.get("num_channels", 3),
                layer_norm_eps=raw.get("layer_norm_eps", 1e-6),
                hidden_act=raw.get("hidden_act", "gelu_pytorch_tanh"),
            )
        except KeyError as missing:
            raise ModelFormatError(f"config.json's vision_config lacks the field {missing.args[0]!r}") from None


@dataclasses.dataclass(frozen=True)
class Idefics3Config:
    """SmolVLM / Idefics3: a vision tower, a pixel-shuffle connector (`scale_factor`) and a Llama decoder."""

    model_type: str
    text: ModelConfig
    vision: VisionConfig
    scale_factor: int
    image_token_id: int

    def __post_init__(self) -> None:
        if self.vision.patches_per_side % self.scale_factor:
            raise ModelFormatError(
                f"{self.vision.patches_per_side} patches per side do not divide by scale_factor {self.scale_factor}"
            )

    @property
    def image_seq_len(self) -> int:
        """Image tokens one tile becomes: (patches per side / scale_factor) squared."""
        return (self.vision.patches_per_side // self.scale_factor) ** 2

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> Idefics3Config:
        model_type = raw.get("model_type")
        if model_type not in VISION_LANGUAGE_TYPES:
            raise ModelFormatError(
                f"model_type {model_type!r} is not a vision-language family llmkit runs "
                f"({', '.join(VISION_LANGUAGE_TYPES)})"
            )
        for field in ("text_config", "vision_config", "image_token_id"):
            if field not in raw:
                raise ModelFormatError(f"config.json of a {model_type} model lacks the field {field!r}")
        text_raw = dict(raw["text_config"])
        text_raw.setdefault("model_type", "llama")
        # The head is tied at the top level of a multimodal config (transformers ties lm_head to embed_tokens).
        text_raw["tie_word_embeddings"] = bool(raw.get("tie_word_embeddings", text_raw.get("tie_word_embeddings")))
        return cls(
            model_type=model_type,
            text=ModelConfig.from_hf_dict(text_raw),
            vision=VisionConfig.from_hf_dict(raw["vision_config"]),
            scale_factor=int(raw.get("scale_factor", 2)),
            image_token_id=int(raw["image_token_id"]),
        )
