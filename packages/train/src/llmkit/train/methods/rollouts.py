"""Rollouts from llmkit-serve's engine, built over the policy's own `Pretrained` (the same weights, no copy)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

import torch

from llmkit.core.sampling import SamplingParams
from llmkit.serve.engine import Engine, EngineConfig

from ..config import RLConfig
from ..data.encoding import TokenizedSequence
from ..data.packing import TokenBatch, collate
from ..runtime import Runtime


@dataclasses.dataclass
class Rollout:
    """One sampled completion of one prompt."""

    prompt_index: int  # into this process's prompts of the step
    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finish_reason: str

    def sequence(self) -> TokenizedSequence:
        return TokenizedSequence(
            self.prompt_ids + self.completion_ids, [False] * len(self.prompt_ids) + [True] * len(self.completion_ids)
        )


def rollout_seed(seed: int, step: int, prompt_index: int) -> int:
    """A sampling seed per (run seed, step, global prompt index): rollouts do not depend on the process count."""
    digest = hashlib.sha256(f"{seed}:{step}:{prompt_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class RolloutEngine:
    """Generates with the engine; `weights_changed()` after each update drops its stale prefix cache."""

    def __init__(self, runtime: Runtime, config: RLConfig):
        self.runtime, self.config = runtime, config
        engine_config = EngineConfig(
            kv_cache_memory=config.kv_cache_memory,
            max_num_seqs=config.max_num_seqs,
            max_num_batched_tokens=max(2048, config.max_length),
        )
        self.engine = Engine(runtime.pretrained, config=engine_config)

    def shares_weights(self) -> bool:
        """True when the engine runs the very parameter tensors the optimizer updates."""
        return self.engine.pretrained.model is self.runtime.policy

    def generate(self, prompts: Sequence[list[int]], prompt_indices: Sequence[int], step: int, n: int) -> list[Rollout]:
        config = self.config
        params = [
            SamplingParams(
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k,
                max_tokens=config.max_new_tokens,
                n=n,
                seed=rollout_seed(config.seed, step, index),
            )
            for index in prompt_indices
        ]
        policy = self.runtime.policy
        was_training = policy.training
        policy.eval()
        try:
            outputs = self.engine.generate(list(prompts), params, progress=False)
        finally:
            policy.train(was_training)
        return [
            Rollout(i, list(prompt), list(c.token_ids), c.text, c.finish_reason)
            for i, (prompt, output) in enumerate(zip(prompts, outputs, strict=True))
            for c in output.completions
        ]

    def weights_changed(self) -> None:
        self.engine.update_weights(None)


def rollout_batches(rollouts: Sequence[Rollout], size: int, pad_id: int, device: torch.device) -> list[TokenBatch]:
    """Rollouts in chunks of `size` rows (prompt + completion; targets on the completion)."""
    return [
        collate([[r.sequence()] for r in rollouts[start : start + size]], pad_id).to(device)
        for start in range(0, len(rollouts), size)
    ]


def per_sequence(values: torch.Tensor, batch: TokenBatch) -> list[torch.Tensor]:
    """[B, T] values at target positions -> one 1-D tensor per row (its completion tokens, in order)."""
    counts = batch.targets.sum(-1).tolist()
    return list(values[batch.targets].split(counts))


def scatter_targets(values: Sequence[torch.Tensor], batch: TokenBatch) -> torch.Tensor:
    """Inverse of `per_sequence`: per-row completion vectors placed at the batch's target positions."""
    out = torch.zeros(batch.targets.shape, dtype=torch.float32, device=batch.targets.device)
    return out.masked_scatter(batch.targets, torch.cat(list(values)).to(out.device, torch.float32))
