"""`ModelConfig`: the architecture hyper-parameters every loader produces."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import ModelFormatError

SUPPORTED_ARCHITECTURES = ("llama", "mistral", "qwen2")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a Llama-family decoder (Llama, Mistral and Qwen2 share this shape)."""

    architecture: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False

    def __post_init__(self) -> None:
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ModelFormatError(
                f"unsupported architecture {self.architecture!r}; llmkit runs {', '.join(SUPPORTED_ARCHITECTURES)}"
            )
        if self.num_heads % self.num_kv_heads:
            raise ModelFormatError(
                f"num_heads ({self.num_heads}) is not a multiple of num_kv_heads ({self.num_kv_heads})"
            )

    @property
    def num_query_groups(self) -> int:
        return self.num_heads // self.num_kv_heads

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        """Read an HF `config.json` (transformers 4.x `rope_scaling` or 5.x `rope_parameters`)."""
        archs = raw.get("architectures") or []
        model_type = raw.get("model_type", "")
        by_class = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "Qwen2ForCausalLM": "qwen2"}
        architecture = next((by_class[a] for a in archs if a in by_class), model_type)
        if architecture not in SUPPORTED_ARCHITECTURES:
            named = ", ".join(archs) or model_type or "nothing"
            raise ModelFormatError(
                f"unsupported architecture {named!r} in config.json; llmkit runs {', '.join(by_class)}"
            )
        activation = raw.get("hidden_act", "silu")
        if activation != "silu":
            raise ModelFormatError(f"unsupported activation {activation!r} in config.json; llmkit runs SwiGLU (silu)")
        try:
            hidden = raw["hidden_size"]
            heads = raw["num_attention_heads"]
            rope_theta, rope_scaling = _rope_from_hf(raw)
            return cls(
                architecture=architecture,
                vocab_size=raw["vocab_size"],
                hidden_size=hidden,
                intermediate_size=raw["intermediate_size"],
                num_layers=raw["num_hidden_layers"],
                num_heads=heads,
                num_kv_heads=raw.get("num_key_value_heads") or heads,
                head_dim=raw.get("head_dim") or hidden // heads,
                max_position_embeddings=raw.get("max_position_embeddings", 2048),
                rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
                rope_theta=rope_theta,
                rope_scaling=rope_scaling,
                tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
                attention_bias=bool(raw.get("attention_bias", architecture == "qwen2")),
                mlp_bias=bool(raw.get("mlp_bias", False)),
            )
        except KeyError as missing:
            raise ModelFormatError(f"config.json lacks the field {missing.args[0]!r}") from None


def _rope_from_hf(raw: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    params = raw.get("rope_parameters")
    if params is None:
        scaling = raw.get("rope_scaling")
        return float(raw.get("rope_theta", 10000.0)), _normalize_rope_scaling(scaling)
    params = dict(params)
    theta = float(params.pop("rope_theta", raw.get("rope_theta", 10000.0)))
    return theta, _normalize_rope_scaling(params)


def _normalize_rope_scaling(scaling: dict[str, Any] | None) -> dict[str, Any] | None:
    if not scaling:
        return None
    scaling = dict(scaling)
    kind = scaling.pop("rope_type", None) or scaling.pop("type", None) or "default"
    scaling.pop("type", None)
    if kind == "default":
        return None
    return {"rope_type": kind, **scaling}
