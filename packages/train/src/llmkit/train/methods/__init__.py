"""The five methods; each is a loss plus what it needs, run by the one loop in `llmkit.train.loop`."""

from .base import LossOutput, Method, MicroBatch, StepPlan, TrainingModule
from .dpo import DPOMethod
from .grpo import GRPOMethod
from .ppo import PPOMethod
from .reward import RewardMethod, RewardModel, load_reward_model
from .sft import SFTMethod

METHODS: dict[str, type[Method]] = {
    "sft": SFTMethod,
    "reward": RewardMethod,
    "dpo": DPOMethod,
    "ppo": PPOMethod,
    "grpo": GRPOMethod,
}

__all__ = [
    "METHODS",
    "DPOMethod",
    "GRPOMethod",
    "LossOutput",
    "Method",
    "MicroBatch",
    "PPOMethod",
    "RewardMethod",
    "RewardModel",
    "SFTMethod",
    "StepPlan",
    "TrainingModule",
    "load_reward_model",
]
