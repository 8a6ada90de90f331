"""The one training loop every method runs: plan a step, accumulate micro-batches, clip, step, log, save."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch

from .checkpoint import CheckpointManager
from .config import TrainConfig, config_to_dict
from .distributed import gradient_sync, shutdown_distributed, wrap_module
from .errors import ConfigError, TrainingError
from .methods.base import Method, MicroBatch
from .metrics import EVAL_HEADLINE, MetricsLog, ProgressDisplay, format_metrics
from .modeling.forward import autocast
from .optim import build_optimizer, build_scheduler
from .runtime import build_runtime


@dataclasses.dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path
    steps: int
    last_metrics: dict[str, Any]


class Trainer:
    """Runs `method_class` with `config`: `Trainer(GRPOMethod, config).train()`."""

    def __init__(self, method_class: type[Method], config: TrainConfig):
        self.config = config
        runtime = build_runtime(config, method_class.needs_reference(config), method_class.reference_name(config))
        self.runtime, self.context = runtime, runtime.context
        self.method = method_class(config, runtime)
        self.module = self.method.build_module().to(runtime.device)
        layers = list(runtime.policy.layers) if self.context.strategy == "fsdp" else []
        self.wrapped = wrap_module(self.module, self.context, layers)
        self.optimizer = build_optimizer(self.module, config, self.module.own_learning_rates())
        self.total_steps = self.method.total_steps()
        self.scheduler = build_scheduler(self.optimizer, config, self.total_steps * self.method.updates_per_step())
        self.checkpoints = CheckpointManager(runtime.output_dir, self.context, config.save_total_limit)
        self.metrics = MetricsLog(runtime.output_dir, self.context.is_main)
        self.trainable = [p for p in self.module.parameters() if p.requires_grad]

    def _resume(self) -> int:
        latest = self.checkpoints.latest()
        if not self.config.resume:
            if latest is not None or self.metrics.path.is_file():
                raise ConfigError(
                    f"{self.runtime.output_dir} already holds a run; pass --resume to continue it "
                    "or choose another output_dir"
                )
            return 0
        if latest is None:
            return 0
        state = self.checkpoints.load(latest, self.wrapped, self.optimizer, self.scheduler, config_to_dict(self.config))
        self.method.load_state_dict(state.get("method", {}))
        self.metrics.truncate_after(state["step"])
        self.method.after_update()
        return int(state["step"])

    def _save(self, step: int) -> None:
        state = {"method": self.method.state_dict(), "config": config_to_dict(self.config)}
        self.checkpoints.save(step, self.wrapped, self.optimizer, self.scheduler, state)

    def _update(self, micro_batches: list[MicroBatch]) -> tuple[dict[str, float], list[str]]:
        """One optimizer update over this process's micro-batches; the loss is the global mean over units."""
        total_units, total_tokens = self.context.sum(
            [sum(mb.units for mb in micro_batches), sum(mb.tokens for mb in micro_batches)]
        )
        if total_units <= 0:
            return {"tokens": total_tokens}, ["no unit carries loss in this update (nothing to learn from); skipped"]
        scale = self.context.world_size / total_units
        loss_sum = 0.0
        sums: dict[str, list[float]] = {}
        device = self.runtime.device
        for index, batch in enumerate(micro_batches):
            last = index == len(micro_batches) - 1
            with gradient_sync(self.wrapped, self.context, last), autocast(device, self.config.bf16):
                output = self.wrapped(batch)
            with gradient_sync(self.wrapped, self.context, last):
                (output.loss_sum * scale).backward()
            loss_sum += float(output.loss_sum.detach())
            for key, (value, count) in output.metrics.items():
                pair = sums.setdefault(key, [0.0, 0.0])
                pair[0] += value
                pair[1] += count
        keys = sorted(sums)
        reduced = self.context.sum([loss_sum] + [v for k in keys for v in sums[k]])
        grad_norm = self._clip()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.after_update()
        record = {"loss": reduced[0] / total_units, "grad_norm": grad_norm, "tokens": total_tokens}
        for i, key in enumerate(keys):
            value, count = reduced[1 + 2 * i], reduced[2 + 2 * i]
            record[key] = value / count if count else float("nan")
        return record, []

    def _gather_full_state(self) -> dict[str, torch.Tensor]:
        """FSDP2: every process joins the all-gather of the full (unsharded) weights, on the CPU."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.module, options=options)

    def _clip(self) -> float:
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.trainable, max_norm)
        if hasattr(norm, "full_tensor"):
            norm = norm.full_tensor()
        return float(norm)

    def _step(self, step: int) -> tuple[dict[str, Any], list[str]]:
        started = time.perf_counter()
        learning_rate = self.scheduler.get_last_lr()[0]
        plan = self.method.plan_step(step)
        planned = time.perf_counter()
        notes = list(plan.notes)
        records = []
        for micro_batches in plan.updates:
            record, update_notes = self._update(micro_batches)
            records.append(record)
            notes += update_notes
        finished = time.perf_counter()
        merged: dict[str, Any] = {"step": step + 1}
        for key in {k for r in records for k in r}:
            values = [r[key] for r in records if key in r]
            merged[key] = sum(values) if key == "tokens" else sum(values) / len(values)
        merged.update(plan.metrics)
        merged["lr"] = learning_rate
        merged["step_time"] = finished - started
        merged["update_time"] = finished - planned
        merged["tokens_per_s"] = merged.get("tokens", 0) / max(finished - started, 1e-9)
        if merged.get("loss") == 0.0 and not plan.notes:
            notes.append(self.method.explain_zero_loss(merged))
        return merged, notes

    def train(self) -> TrainResult:
        config, context = self.config, self.context
        start = self._resume()
        final_dir = self.runtime.output_dir / "final"
        record: dict[str, Any] = {}
        description = f"{self.method.name} {self.runtime.output_dir.name}"
        try:
            with ProgressDisplay(
                self.total_steps, start, config.progress, context.is_main, description, self.method.headline_metrics
            ) as display:
                if start:
                    display.print(f"resumed from step {start}")
                for note in self.method.notes:
                    display.print(note)
                if start == 0 and getattr(config, "eval_steps", 0):
                    baseline = {f"eval_{k}": v for k, v in self.method.evaluate().items()}
                    if baseline:
                        self.metrics.write({"step": 0, **baseline})
                        display.print(f"step 0: {format_metrics(baseline, EVAL_HEADLINE)}")
                for step in range(start, self.total_steps):
                    record, notes = self._step(step)
                    if context.is_main:
                        for note in notes:
                            display.print(f"step {step + 1}: {note}")
                    done = step + 1
                    eval_steps = getattr(config, "eval_steps", 0)
                    if done == self.total_steps or (eval_steps and done % eval_steps == 0):
                        record.update({f"eval_{k}": v for k, v in self.method.evaluate().items()})
                    if math.isnan(record.get("loss", 0.0)):
                        raise TrainingError(
                            f"the loss became NaN at step {done}; lower learning_rate or check the data"
                        )
                    self.metrics.write(record)
                    display.step(record, print_line=done % config.logging_steps == 0 or done == self.total_steps)
                    if done == self.total_steps or (config.save_steps and done % config.save_steps == 0):
                        self._save(done)
            self.module.eval()
            full_state = self._gather_full_state() if context.strategy == "fsdp" else None
            if context.is_main:
                self.method.save_final(final_dir, full_state)
            context.barrier()
        finally:
            shutdown_distributed()
        return TrainResult(self.runtime.output_dir, final_dir, self.total_steps, record)
