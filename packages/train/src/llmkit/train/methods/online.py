"""Shared by PPO and GRPO: prompt records, the rollout engine, verifier rewards and the completions log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from ..config import RLConfig
from ..data.order import DataOrder
from ..data.records import PromptRecord, load_records
from ..data.truncation import DataReport, Truncation
from ..errors import ConfigError
from ..runtime import Runtime
from ..verifiers.rewards import VerifierRewards, prompt_text
from .base import Method
from .rollouts import Rollout, RolloutEngine


class OnlineMethod(Method):
    """A method that learns from its own samples: each step generates, scores, then updates."""

    headline_metrics = ("reward_mean",)  # PPO and GRPO: the mean reward of the step's rollouts

    config: RLConfig

    def __init__(self, config: RLConfig, runtime: Runtime):
        super().__init__(config, runtime)
        if not config.data:
            raise ConfigError(f"{self.name} needs data: a JSONL file of prompt records (--data FILE)")
        encoder = runtime.encoder()
        report = DataReport("prompts")
        truncation = Truncation(config.truncation, config.max_length, report)
        self.records: list[PromptRecord] = []
        self.prompts: list[list[int]] = []
        for where, record in load_records(config.data, self.name):
            ids = truncation.prompt(encoder.encode_prompt(record.prompt), config.max_new_tokens, where)
            if ids is not None:
                self.records.append(record)
                self.prompts.append(ids)
        truncation.finish()
        self.notes.append(report.summary())
        if runtime.context.is_main:
            report.write(runtime.output_dir)
        self.rewards = VerifierRewards(config.verifiers)
        self.order = DataOrder(len(self.records), config.seed)
        self.global_prompts = config.batch_size * runtime.context.world_size
        self.engine: RolloutEngine | None = None
        self.completions_path = runtime.output_dir / "completions.jsonl"

    def start_engine(self) -> RolloutEngine:
        self.engine = RolloutEngine(self.runtime, self.config)
        if not self.engine.shares_weights():
            raise RuntimeError("the rollout engine does not run the policy's own weights")
        return self.engine

    def total_steps(self) -> int:
        return self.config.max_steps

    def after_update(self) -> None:
        if self.engine is not None:
            self.engine.weights_changed()

    def take_prompts(self) -> tuple[list[int], list[int]]:
        """This process's share of the step's prompts: (global prompt numbers, record indices)."""
        context = self.runtime.context
        start = self.order.consumed
        indices = self.order.take(self.global_prompts)
        numbers = list(range(start, start + len(indices)))
        return numbers[context.rank :: context.world_size], indices[context.rank :: context.world_size]

    def verifier_rewards(
        self, rollouts: Sequence[Rollout], records: Sequence[PromptRecord]
    ) -> tuple[torch.Tensor, dict]:
        """Rewards [len(rollouts)] and the mean score of each verifier (global over processes)."""
        scored = self.rewards.score([(records[r.prompt_index], r.text) for r in rollouts])
        rewards = torch.tensor([total for total, _ in scored], dtype=torch.float32)
        names = sorted({name for _, scores in scored for name in scores})
        sums = self.runtime.context.sum(
            [sum(scores.get(n, 0.0) for _, scores in scored) for n in names] + [len(scored)]
        )
        return rewards, {f"verifier_{n}": sums[i] / max(sums[-1], 1) for i, n in enumerate(names)}

    def reward_stats(self, rewards: torch.Tensor) -> dict[str, float]:
        """Global mean and std of the step's rewards."""
        total, squares, count = self.runtime.context.sum(
            [float(rewards.sum()), float((rewards**2).sum()), float(len(rewards))]
        )
        mean = total / count
        variance = max(0.0, squares / count - mean**2) * (count / (count - 1) if count > 1 else 1.0)
        return {"reward_mean": mean, "reward_std": variance**0.5}

    def completion_stats(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        lengths = [len(r.completion_ids) for r in rollouts]
        sums = self.runtime.context.sum(
            [sum(lengths), sum(r.finish_reason == "length" for r in rollouts), len(rollouts)]
        )
        return {"completion_length": sums[0] / sums[2], "truncated_fraction": sums[1] / sums[2]}

    def log_completions(self, step: int, rollouts: Sequence[Rollout], records: Sequence[PromptRecord], rewards) -> None:
        if not self.runtime.context.is_main or not self.config.log_completions:
            return
        with self.completions_path.open("a") as handle:
            for rollout, reward in list(zip(rollouts, rewards.tolist(), strict=True))[: self.config.log_completions]:
                record = records[rollout.prompt_index]
                entry = {
                    "step": step + 1,
                    "prompt": prompt_text(record.prompt),
                    "completion": rollout.text,
                    "reward": reward,
                    "finish_reason": rollout.finish_reason,
                }
                handle.write(json.dumps(entry) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.state_dict(), "rollout_steps": self.order.consumed // self.global_prompts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state["order"])
        if self.runtime.context.is_main and self.completions_path.is_file():
            done = int(state["rollout_steps"])
            lines = self.completions_path.read_text().splitlines()
            kept = [line for line in lines if line and json.loads(line)["step"] <= done]
            self.completions_path.write_text("".join(line + "\n" for line in kept))
