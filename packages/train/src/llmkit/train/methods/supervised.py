"""Shared by SFT, reward modelling and DPO: records -> items, held-out split, seeded resumable batches."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch

from ..config import SupervisedConfig
from ..data.order import DataOrder
from ..data.records import load_records
from ..data.truncation import DataReport, Truncation
from ..errors import ConfigError, DataError
from ..modeling.forward import autocast
from ..runtime import Runtime
from .base import Method, MicroBatch, StepPlan


def split_held_out(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded random `fraction` of records held out (at least one when fraction > 0)."""
    if fraction <= 0:
        return records, []
    count = max(1, round(len(records) * fraction))
    if count >= len(records):
        raise DataError(f"eval_fraction={fraction} leaves no training record out of {len(records)}")
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed + 7919)).tolist()
    held = set(order[:count])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]


class SupervisedMethod(Method):
    """A method over a fixed data set: subclasses turn records into items and items into micro-batches."""

    record_kind: str = "sft"
    config: SupervisedConfig

    def __init__(self, config: SupervisedConfig, runtime: Runtime):
        super().__init__(config, runtime)
        if not config.data:
            raise ConfigError(f"{self.name} needs data: a JSONL file of records (--data FILE)")
        records = self.load_records(config.data)
        held_out: list = []
        if config.eval_data:
            held_out = self.load_records(config.eval_data)
        else:
            records, held_out = split_held_out(records, config.eval_fraction, config.seed)
        self.train_items = self.prepare(records, "train")
        self.eval_items = self.prepare(held_out, "eval") if held_out else []
        self.order = DataOrder(len(self.train_items), config.seed)
        self.last_eval: dict[str, float] = {}
        context = runtime.context
        self.global_batch = config.batch_size * config.gradient_accumulation_steps * context.world_size

    def load_records(self, path: str) -> list[tuple[str, Any]]:
        """(location, record) for every record of a JSONL file."""
        return load_records(path, self.record_kind)

    def prepare(self, records: list[tuple[str, Any]], split: str) -> list[Any]:
        """Encode and truncate records (reporting what happened) into training items."""
        report = DataReport(split)
        truncation = Truncation(self.config.truncation, self.config.max_length, report)
        items = self.encode(records, truncation)
        truncation.finish()
        self.notes.append(report.summary())
        if self.runtime.context.is_main:
            report.write(self.runtime.output_dir)
        return self.group(items)

    @abc.abstractmethod
    def encode(self, records: list[tuple[str, Any]], truncation: Truncation) -> list[Any]:
        """Records -> items (None-free), through `truncation`."""

    def group(self, items: list[Any]) -> list[Any]:
        """Items -> the units the data order shuffles (SFT packing groups sequences into rows)."""
        return items

    @abc.abstractmethod
    def micro_batch(self, items: Sequence[Any]) -> MicroBatch: ...

    def total_steps(self) -> int:
        if self.config.max_steps:
            return self.config.max_steps
        steps = math.ceil(self.config.num_epochs * len(self.train_items) / self.global_batch)
        if steps < 1:
            raise ConfigError("num_epochs is too small for one step; set max_steps")
        return steps

    def plan_step(self, step: int) -> StepPlan:
        context, size = self.runtime.context, self.config.batch_size
        indices = self.order.take(self.global_batch)
        mine = indices[context.rank :: context.world_size]
        micro = [
            self.micro_batch([self.train_items[i] for i in mine[j * size : (j + 1) * size]])
            for j in range(self.config.gradient_accumulation_steps)
        ]
        return StepPlan([micro], {"epoch": self.order.epoch})

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Loss and metrics over every held-out item (each process evaluates all of them)."""
        if not self.eval_items:
            return {}
        module = self.module
        was_training = module.training
        module.eval()
        loss, units, sums = 0.0, 0.0, {}
        try:
            for start in range(0, len(self.eval_items), self.config.batch_size):
                batch = self.micro_batch(self.eval_items[start : start + self.config.batch_size])
                with autocast(self.runtime.device, self.config.bf16):
                    output = module(batch)
                loss += float(output.loss_sum)
                units += batch.units
                for key, (value, count) in output.metrics.items():
                    pair = sums.setdefault(key, [0.0, 0.0])
                    pair[0] += value
                    pair[1] += count
        finally:
            module.train(was_training)
        result = {"loss": loss / units if units else float("nan")}
        result.update({key: value / count for key, (value, count) in sums.items() if count})
        self.last_eval = result
        return result

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "order" in state:
            self.order.load_state_dict(state["order"])
