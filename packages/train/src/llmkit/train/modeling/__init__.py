"""Model-side pieces: LoRA, scalar heads, shared forward passes and saving trained models."""

from .export import save_pretrained, weights_fingerprint
from .forward import enable_gradient_checkpointing, hidden_states, target_logprobs
from .heads import ScalarHead
from .lora import (
    LoRALinear,
    adapter_state_dict,
    adapters_disabled,
    apply_lora,
    load_adapters,
    merge_lora,
    save_adapters,
)

__all__ = [
    "LoRALinear",
    "ScalarHead",
    "adapter_state_dict",
    "adapters_disabled",
    "apply_lora",
    "enable_gradient_checkpointing",
    "hidden_states",
    "load_adapters",
    "merge_lora",
    "save_adapters",
    "save_pretrained",
    "target_logprobs",
    "weights_fingerprint",
]
