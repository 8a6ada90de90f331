"""Training options: one dataclass per method, read from YAML and overridden by command-line flags."""

from .loading import config_from_file, config_to_dict, load_config
from .options import (
    DPOConfig,
    GRPOConfig,
    PPOConfig,
    RewardConfig,
    RLConfig,
    SFTConfig,
    SupervisedConfig,
    TrainConfig,
)

CONFIG_CLASSES = {"sft": SFTConfig, "reward": RewardConfig, "dpo": DPOConfig, "ppo": PPOConfig, "grpo": GRPOConfig}

__all__ = [
    "CONFIG_CLASSES",
    "DPOConfig",
    "GRPOConfig",
    "PPOConfig",
    "RLConfig",
    "RewardConfig",
    "SFTConfig",
    "SupervisedConfig",
    "TrainConfig",
    "config_from_file",
    "config_to_dict",
    "load_config",
]
