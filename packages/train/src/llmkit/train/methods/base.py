"""What a method gives the training loop: its module (whose forward is the loss), its batches per step,
and how to save the result. The loop owns optimization, accumulation, distribution and checkpoints."""

from __future__ import annotations

import abc
import copy
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from llmkit.core.models.llama import LlamaModel

from ..config import TrainConfig
from ..modeling.export import save_pretrained
from ..modeling.lora import apply_lora, merge_lora, save_adapters
from ..runtime import Runtime


@dataclasses.dataclass
class MicroBatch:
    """One forward/backward's worth of data; `units` is what the loss is averaged over (tokens, pairs,
    sequences), so sums over micro-batches and processes divided by total units give the batch loss."""

    units: float
    tokens: int


@dataclasses.dataclass
class LossOutput:
    """The loss summed over the micro-batch's units, and metrics as name -> (sum, count)."""

    loss_sum: torch.Tensor
    metrics: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class StepPlan:
    """This process's micro-batches, grouped per optimizer update, and metrics already gathered globally."""

    updates: list[list[MicroBatch]]
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)


class TrainingModule(nn.Module):
    """The nn.Module the loop wraps with DDP/FSDP2: `forward(micro_batch) -> LossOutput`."""

    def __init__(self, policy: nn.Module):
        super().__init__()
        self.policy = policy

    @abc.abstractmethod
    def forward(self, batch: MicroBatch) -> LossOutput: ...

    def own_learning_rates(self) -> list[tuple[list[nn.Parameter], float]]:
        """Parameters that train at their own peak rate rather than `learning_rate` (PPO's value head)."""
        return []


def preference_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """1 where chosen scores above rejected, 0.5 on a tie (a policy equal to its reference is at 0.5, not 0)."""
    return (chosen > rejected).float() + 0.5 * (chosen == rejected).float()


def metric(total: float | torch.Tensor, count: float | torch.Tensor) -> tuple[float, float]:
    return float(total), float(count)


class Method(abc.ABC):
    """One training method: a loss and what it needs."""

    name: ClassVar[str]
    config_class: ClassVar[type[TrainConfig]]
    # The metrics that say whether this method is working, logged every step and shown after the loss
    # in the progress bar and the printed line.
    headline_metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: TrainConfig, runtime: Runtime):
        self.config, self.runtime = config, runtime
        self.notes: list[str] = []

    @classmethod
    def needs_reference(cls, config: TrainConfig) -> bool:
        return False

    @classmethod
    def reference_name(cls, config: TrainConfig) -> str | None:
        return None

    @abc.abstractmethod
    def build_module(self) -> TrainingModule: ...

    @abc.abstractmethod
    def total_steps(self) -> int: ...

    @abc.abstractmethod
    def plan_step(self, step: int) -> StepPlan:
        """Micro-batches for step `step` (0-based); RL methods generate and score rollouts here."""

    def updates_per_step(self) -> int:
        return 1

    def after_update(self) -> None:
        """Called after each optimizer update (RL: tell the engine the shared weights changed)."""
        return None

    def evaluate(self) -> dict[str, float]:
        return {}

    def explain_zero_loss(self, record: dict[str, Any]) -> str:
        """Why a step's loss came out exactly 0 although some units carried loss."""
        return "the loss is exactly 0 although tokens carried loss; check the loss mask and the data"

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned (data position, controllers)."""
        return None

    def save_final(self, directory: Path, full_state: dict[str, torch.Tensor] | None = None) -> None:
        """The trained policy: adapters (and the merged model when asked) under LoRA, else the full model.
        `full_state` is the training module's gathered state under FSDP2 (None otherwise)."""
        save_policy(self.runtime, directory, self.config.save_merged, policy_from_state(self.runtime, full_state))


def policy_from_state(runtime: Runtime, full_state: dict[str, torch.Tensor] | None) -> LlamaModel:
    """The live policy, or (under FSDP2) an unsharded CPU copy rebuilt from the gathered state."""
    if full_state is None:
        return runtime.policy
    config = runtime.config
    with torch.device("meta"):
        model = LlamaModel(runtime.policy.config)
    if runtime.uses_lora:
        apply_lora(model, config.lora_rank, config.lora_alpha, 0.0, config.lora_targets)
    state = {k.removeprefix("policy."): v for k, v in full_state.items() if k.startswith("policy.")}
    model.load_state_dict(state, strict=True, assign=True)
    model.rotary = copy.deepcopy(runtime.policy.rotary).to("cpu")
    return model


def save_policy(runtime: Runtime, directory: Path, save_merged: bool, policy: LlamaModel) -> None:
    if runtime.uses_lora:
        save_adapters(policy, directory / "adapters", runtime.config.model)
        if save_merged:
            merged = merge_lora(copy.deepcopy(policy))
            save_pretrained(runtime.pretrained, directory / "model", merged)
    else:
        save_pretrained(runtime.pretrained, directory / "model", policy)
