"""Every training option, with its default, its help text and its valid range.

Names follow TRL where TRL means the same thing (`learning_rate`, `beta`, `label_smoothing`,
`num_generations`, `epsilon`, `epsilon_high`, `kl_coef`, `cliprange` ...); docs/train.md maps the rest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmkit.core.models.store import DEFAULT_MODEL

from ..errors import ConfigError

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def option(default: Any, help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None) -> Any:
    """A dataclass field that carries its help text, choices and lower bound (the CLI reads them)."""
    return dataclasses.field(default=default, metadata=describe(help, choices, minimum))


def describe(help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None) -> dict[str, Any]:
    return {"help": help, "choices": choices, "minimum": minimum}


@dataclasses.dataclass
class TrainConfig:
    """Options every method shares: model, data, optimizer, precision, LoRA, logging and checkpoints."""

    model: str = option(DEFAULT_MODEL, "catalog name, .gguf file or HF-layout directory to start from")
    data: str = option("", "training records (JSONL)")
    output_dir: str = option("", "where metrics, checkpoints and the final model go (default runs/METHOD)")
    seed: int = option(0, "seeds data order, initialization, dropout and sampling")
    max_steps: int = option(0, "optimizer steps (RL: rollout steps); 0 derives it from num_epochs", minimum=0)
    batch_size: int = option(8, "per process: sequences (SFT), pairs (reward, DPO) or prompts (PPO, GRPO)", minimum=1)
    learning_rate: float = option(1e-5, "peak learning rate of AdamW", minimum=0)
    lr_scheduler: str = option("cosine", "decay after warmup", ("cosine", "linear", "constant"))
    warmup_steps: int = option(0, "linear warmup from 0 to the peak learning rate", minimum=0)
    min_lr_ratio: float = option(0.0, "final learning rate as a fraction of the peak (cosine, linear)", minimum=0)
    weight_decay: float = option(0.0, "AdamW decoupled weight decay (not applied to norms and biases)", minimum=0)
    adam_beta1: float = option(0.9, "AdamW beta1", minimum=0)
    adam_beta2: float = option(0.999, "AdamW beta2", minimum=0)
    adam_epsilon: float = option(1e-8, "AdamW epsilon", minimum=0)
    max_grad_norm: float = option(1.0, "clip the global gradient norm to this (0 disables)", minimum=0)
    max_length: int = option(1024, "longest sequence (prompt + completion) in tokens", minimum=2)
    truncation: str = option(
        "error",
        "what to do with a record longer than max_length: stop with an error, drop it, or truncate it (reported)",
        ("error", "drop", "truncate"),
    )
    dtype: str = option("float32", "dtype of the weights", ("float32", "bfloat16"))
    bf16: bool = option(False, "bfloat16 autocast for the forward pass (weights and optimizer stay in dtype)")
    gradient_checkpointing: bool = option(False, "recompute each decoder layer in the backward pass to save memory")
    lora_rank: int = option(0, "LoRA rank; 0 trains every weight", minimum=0)
    lora_alpha: float = option(16.0, "LoRA scale numerator: the update is (alpha / rank) * B @ A", minimum=0)
    lora_dropout: float = option(0.0, "dropout on the LoRA input", minimum=0)
    lora_targets: list = dataclasses.field(
        default_factory=lambda: list(LORA_TARGETS), metadata=describe("linear layers that get adapters")
    )
    train_top_layers: int = option(
        0, "train only the last N decoder layers (and the final norm and heads; LoRA too); 0 trains all", minimum=0
    )
    chat_template: str | None = option(None, "override the model's chat template (name or .jinja file)")
    logging_steps: int = option(1, "print a metrics line every N steps (every step goes to metrics.jsonl)", minimum=1)
    save_steps: int = option(0, "write a checkpoint every N steps (0: only at the end)", minimum=0)
    save_total_limit: int = option(2, "checkpoints kept on disk (oldest removed first)", minimum=1)
    save_merged: bool = option(True, "with LoRA, also save the merged full model at the end (adapters always)")
    resume: bool = option(False, "continue from the latest checkpoint in output_dir")
    device: str = option("auto", "cpu, cuda, cuda:N or auto (cuda when available)")
    distributed: str = option("ddp", "strategy when launched by torchrun", ("ddp", "fsdp"))
    progress: bool = option(True, "show a progress bar")

    method = "train"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            choices, minimum = field.metadata.get("choices"), field.metadata.get("minimum")
            if choices and value not in choices:
                raise ConfigError(f"{field.name} must be one of {', '.join(choices)}; got {value!r}")
            if minimum is not None and isinstance(value, int | float) and value < minimum:
                raise ConfigError(f"{field.name} must be >= {minimum}; got {value}")
        unknown = sorted(set(self.lora_targets) - set(LORA_TARGETS))
        if unknown:
            raise ConfigError(f"lora_targets {unknown} are not linear layers of the model; known: {LORA_TARGETS}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_dropout must be in [0, 1); got {self.lora_dropout}")
        if not self.output_dir:
            self.output_dir = f"runs/{self.method}"


@dataclasses.dataclass
class SupervisedConfig(TrainConfig):
    """Options of the methods that learn from a fixed data set (SFT, reward model, DPO)."""

    num_epochs: float = option(1.0, "passes over the data when max_steps is 0", minimum=0)
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step", minimum=1)
    eval_data: str | None = option(None, "held-out records (JSONL) evaluated every eval_steps and at the end")
    eval_fraction: float = option(0.0, "hold out this fraction of data (seeded) when eval_data is not given", minimum=0)
    eval_steps: int = option(0, "evaluate every N steps (0: only at the end)", minimum=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction must be in [0, 1); got {self.eval_fraction}")


@dataclasses.dataclass
class SFTConfig(SupervisedConfig):
    """Supervised fine-tuning: causal LM loss on assistant turns or completions."""

    loss_on: str = option(
        "auto",
        "tokens that carry loss: assistant turns, completions, or all tokens; auto picks by record format",
        ("auto", "assistant", "completion", "all"),
    )
    packing: bool = option(False, "pack sequences into rows of max_length (best-fit decreasing)")
    add_eos: bool = option(True, "end raw-text completions with the end-of-sequence token")
    freeze_vision_tower: bool = option(
        False, "vision-language models: keep the vision tower fixed (the connector and language model train)"
    )

    method = "sft"


@dataclasses.dataclass
class RewardConfig(SupervisedConfig):
    """Bradley-Terry reward model: a scalar head on the LM scores chosen above rejected."""

    use_margin: bool = option(True, "subtract a record's `margin` inside the sigmoid (Llama 2 style)")
    center_rewards_coefficient: float = option(
        0.0, "weight of the mean squared summed reward, which centers rewards on 0 (TRL's name)", minimum=0
    )

    method = "reward"


@dataclasses.dataclass
class DPOConfig(SupervisedConfig):
    """Direct preference optimization against a frozen reference."""

    beta: float = option(0.1, "strength of the implicit KL constraint", minimum=0)
    loss_type: str = option("sigmoid", "DPO loss", ("sigmoid", "ipo", "hinge"))
    label_smoothing: float = option(0.0, "conservative DPO: assumed probability that a label is flipped", minimum=0)
    reference_model: str | None = option(
        None, "reference checkpoint; default: the starting model (with LoRA: the base, adapters off)"
    )
    reference_cache: str | None = option(
        None, "file of precomputed reference log-probs: built if missing, validated against the model if present"
    )

    method = "dpo"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError(f"label_smoothing must be in [0, 0.5); got {self.label_smoothing}")


@dataclasses.dataclass
class RLConfig(TrainConfig):
    """Options of the online methods: rollouts from llmkit-serve's engine, scored by verifiers or a reward model."""

    max_steps: int = option(100, "rollout steps (each: generate, score, update)", minimum=1)
    max_new_tokens: int = option(128, "longest completion a rollout may generate", minimum=1)
    temperature: float = option(
        1.0, "rollout sampling temperature; log-probs in the loss use the same temperature (TRL semantics)", minimum=0
    )
    top_p: float = option(1.0, "rollout nucleus sampling", minimum=0)
    top_k: int = option(0, "rollout top-k (0 disables)", minimum=0)
    verifiers: dict = dataclasses.field(
        default_factory=dict,
        metadata=describe("verifier name -> weight, for records that name none (e.g. {math_answer: 1.0})"),
    )
    micro_batch_size: int = option(8, "sequences per forward/backward in the update (memory only)", minimum=1)
    kv_cache_memory: str = option("1GiB", "KV cache of the rollout engine (bytes with unit, or a fraction)")
    max_num_seqs: int = option(64, "sequences the rollout engine decodes at once", minimum=1)
    log_completions: int = option(2, "completions written to completions.jsonl per step", minimum=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, weight in self.verifiers.items():
            if not isinstance(weight, int | float) or isinstance(weight, bool):
                raise ConfigError(f"verifiers: the weight of {name!r} must be a number; got {weight!r}")
        if self.max_steps < 1:
            raise ConfigError(f"{self.method} needs max_steps >= 1 (rollout steps); got {self.max_steps}")

    @property
    def logprob_temperature(self) -> float:
        """Temperature of the log-probs in the loss: the sampling temperature (1 for greedy rollouts)."""
        return self.temperature if self.temperature > 0 else 1.0


@dataclasses.dataclass
class PPOConfig(RLConfig):
    """PPO with a value head, GAE and a KL penalty to the reference (Ziegler et al. 2019; TRL's PPOTrainer)."""

    reward_model: str | None = option(None, "a `llmkit train reward` output directory scoring completions")
    kl_coef: float = option(0.05, "KL penalty per token in the reward (the initial value when adaptive)", minimum=0)
    kl_estimator: str = option("k1", "per-token KL estimator in the reward", ("k1", "k3"))
    target_kl: float = option(0.0, "adaptive KL controller target (0 keeps kl_coef fixed)", minimum=0)
    kl_horizon: int = option(10000, "adaptive KL controller horizon in sequences", minimum=1)
    gamma: float = option(1.0, "discount", minimum=0)
    lam: float = option(0.95, "GAE lambda", minimum=0)
    cliprange: float = option(0.2, "policy ratio clip", minimum=0)
    cliprange_value: float = option(0.2, "value clip around the rollout's values", minimum=0)
    vf_coef: float = option(0.1, "weight of the value loss", minimum=0)
    value_lr: float = option(
        1e-3,
        "peak learning rate of the value head (a fresh linear layer; the policy's rate, e.g. 5e-4 for LoRA "
        "or 1e-5 for full fine-tuning, leaves it near constant); same schedule as learning_rate",
        minimum=0,
    )
    num_ppo_epochs: int = option(4, "passes over each rollout batch", minimum=1)
    num_mini_batches: int = option(1, "optimizer steps per pass", minimum=1)
    whiten_advantages: bool = option(True, "normalize advantages to mean 0, std 1 over the batch")
    missing_eos_penalty: float = option(
        0.0, "subtracted from the score of completions cut by max_new_tokens", minimum=0
    )

    method = "ppo"


@dataclasses.dataclass
class GRPOConfig(RLConfig):
    """GRPO / RLVR: group-relative advantages over G completions per prompt (Shao et al. 2024; DAPO's clip-higher)."""

    num_generations: int = option(8, "completions per prompt (the group)", minimum=2)
    beta: float = option(0.04, "weight of the k3 KL to the reference (0 skips the reference)", minimum=0)
    epsilon: float = option(0.2, "lower clip: ratio >= 1 - epsilon", minimum=0)
    epsilon_high: float | None = option(None, "upper clip: ratio <= 1 + epsilon_high (default: epsilon)")
    scale_rewards: str = option(
        "group",
        "divide advantages by the reward std of the group, of the batch, or not at all",
        ("group", "batch", "none"),
    )
    loss_aggregation: str = option(
        "token_mean",
        "sequence_mean: mean per sequence then over sequences (GRPO); token_mean: over all tokens (DAPO); "
        "constant: token sum / (sequences x loss_normalizer) (Dr. GRPO)",
        ("sequence_mean", "token_mean", "constant"),
    )
    loss_normalizer: int = option(0, "the constant of loss_aggregation=constant (0: max_new_tokens)", minimum=0)
    num_iterations: int = option(
        1, "optimizer steps per rollout batch (mu); > 1 makes the ratio clip active", minimum=1
    )

    method = "grpo"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epsilon_high is None:
            self.epsilon_high = self.epsilon
        if self.loss_normalizer == 0:
            self.loss_normalizer = self.max_new_tokens
