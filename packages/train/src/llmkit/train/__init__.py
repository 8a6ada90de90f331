"""llmkit.train: SFT, reward models, DPO, PPO and GRPO/RLVR on llmkit's model, one loop for all five.

Names are imported on first use, so registering the plugin (verifiers, commands) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "api",
    "Trainer": "loop",
    "TrainResult": "loop",
    "SFTConfig": "config",
    "RewardConfig": "config",
    "DPOConfig": "config",
    "PPOConfig": "config",
    "GRPOConfig": "config",
    "load_config": "config",
    "METHODS": "methods",
    "Method": "methods",
    "TrainingModule": "methods",
    "load_reward_model": "methods",
    "LoRALinear": "modeling",
    "apply_lora": "modeling",
    "load_adapters": "modeling",
    "merge_lora": "modeling",
    "save_adapters": "modeling",
    "save_pretrained": "modeling",
    "BUILTIN_VERIFIERS": "verifiers",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "TrainingError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmkit.train' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
