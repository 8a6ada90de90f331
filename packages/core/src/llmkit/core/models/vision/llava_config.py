"""Config of a LLaVA-style model: a CLIP or SigLIP tower, an MLP projector, a Llama decoder."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import ModelFormatError
from ..config import ModelConfig
from .config import VisionConfig

TOWERS = ("clip", "siglip")
PROJECTOR_ACTIVATIONS = ("gelu", "gelu_pytorch_tanh", "quick_gelu")
# transformers' defaults for fields `save_pretrained` may leave out of a vision_config.
_VISION_DEFAULTS = {
    "clip_vision_model": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 32,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    },
    "siglip_vision_model": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 16,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    },
}
# What LlavaConfig fills in for a vision_config without a model_type (llava-1.5's CLIP ViT-L/14-336).
_LLAVA_VISION_DEFAULTS = {
    "model_type": "clip_vision_model",
    "intermediate_size": 4096,
    "hidden_size": 1024,
    "patch_size": 14,
    "image_size": 336,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
}


@dataclasses.dataclass(frozen=True)
class LlavaConfig:
    """`feature_layers` index the tower's hidden states (0 = the embeddings after any pre-norm, k = the output of
    layer k); several are concatenated along the feature axis. `drop_first_token` drops position 0 (the class
    token of CLIP: transformers' "default" select strategy). `post_norm_last` applies the tower's post layernorm
    to the deepest feature layer (llama.cpp's mmproj graph does when the file holds `v.post_ln`; transformers'
    LLaVA never does)."""

    text: ModelConfig
    vision: VisionConfig
    tower: str
    feature_layers: tuple[int, ...]
    drop_first_token: bool
    projector_act: str
    projector_bias: bool
    image_token_id: int
    post_norm_last: bool = False
    model_type: str = "llava"

    def __post_init__(self) -> None:
        if self.tower not in TOWERS:
            raise ModelFormatError(f"LLaVA vision tower {self.tower!r} is not one llmkit runs ({', '.join(TOWERS)})")
        if self.projector_act not in PROJECTOR_ACTIVATIONS:
            raise ModelFormatError(
                f"unsupported projector activation {self.projector_act!r}; llmkit runs "
                f"{', '.join(PROJECTOR_ACTIVATIONS)}"
            )
        if not self.feature_layers or not all(0 <= f <= self.vision.num_layers for f in self.feature_layers):
            raise ModelFormatError(
                f"vision feature layers {self.feature_layers} are outside the tower's 0..{self.vision.num_layers}"
            )

    @property
    def class_token(self) -> bool:
        return self.tower == "clip"

    @property
    def image_seq_len(self) -> int:
        """Image tokens one image becomes: its patches (+ the class token) (- the dropped first token)."""
        return self.vision.patches_per_side**2 + int(self.class_token) - int(self.drop_first_token)

    @property
    def layers_to_run(self) -> int:
        return max(self.feature_layers)

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> LlavaConfig:
        if raw.get("model_type") != "llava":
            raise ModelFormatError(f"model_type {raw.get('model_type')!r} is not llava")
        vision_raw = dict(raw.get("vision_config") or {})
        if "model_type" not in vision_raw:
            vision_raw = {**_LLAVA_VISION_DEFAULTS, **vision_raw}
        vision_type = vision_raw["model_type"]
        if vision_type not in _VISION_DEFAULTS:
            raise ModelFormatError(
                f"LLaVA vision tower {vision_type!r} is not one llmkit runs ({', '.join(_VISION_DEFAULTS)})"
            )
        vision = VisionConfig.from_hf_dict({**_VISION_DEFAULTS[vision_type], **vision_raw})
        text_raw = dict(raw.get("text_config") or {})
        text_raw.setdefault("model_type", "llama")
        text_raw["tie_word_embeddings"] = bool(raw.get("tie_word_embeddings", text_raw.get("tie_word_embeddings")))
        layer = raw.get("vision_feature_layer", -2)
        layers = [layer] if isinstance(layer, int) else list(layer)
        strategy = raw.get("vision_feature_select_strategy", "default")
        if strategy not in ("default", "full"):
            raise ModelFormatError(f"unknown vision_feature_select_strategy {strategy!r} (default or full)")
        return cls(
            text=ModelConfig.from_hf_dict(text_raw),
            vision=vision,
            tower="clip" if vision_type == "clip_vision_model" else "siglip",
            feature_layers=tuple(f if f >= 0 else vision.num_layers + 1 + f for f in layers),
            drop_first_token=strategy == "default",
            projector_act=raw.get("projector_hidden_act", "gelu"),
            projector_bias=bool(raw.get("multimodal_projector_bias", True)),
            image_token_id=int(raw.get("image_token_index", raw.get("image_token_id", 32000))),
        )
