"""Checkpoints: trainable weights (safetensors), optimizer, scheduler, per-rank RNG and trainer state.

Each is written into `checkpoints/step-NNNNNN.tmp` (the step in six digits: `step-000003.tmp`), which is
renamed to `checkpoints/step-NNNNNN` only when complete; `checkpoints/latest` then names it (replaced
atomically). A kill at any moment leaves the previous checkpoint intact, and `--resume` continues from the
newest complete one.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .distributed import DistributedContext, rng_state, set_rng_state
from .errors import CheckpointError

# Options that may change between a run and its resumption without changing what is computed.
RESUMABLE_CHANGES = {"resume", "progress", "logging_steps", "save_steps", "save_total_limit", "output_dir", "device"}


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# numpy's RNG state (an ndarray of uint32) is the only non-tensor object a checkpoint holds.
_NUMPY_ARRAY_GLOBALS = [
    getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct,
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]


def _load_state(path: Path) -> Any:
    """torch.load with weights_only=True: tensors, plain containers and numpy arrays, never arbitrary
    pickled objects (a tampered checkpoint must not run code when a run resumes from it)."""
    try:
        with torch.serialization.safe_globals(_NUMPY_ARRAY_GLOBALS):
            return torch.load(path, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path} holds objects other than tensors and plain data; refusing to load it") from err


def _trainable_names(module: nn.Module) -> set[str]:
    return {name for name, p in module.named_parameters() if p.requires_grad}


def _unwrapped(module: nn.Module) -> nn.Module:
    return getattr(module, "module", module)


class CheckpointManager:
    def __init__(self, output_dir: Path, context: DistributedContext, keep: int):
        self.root = output_dir / "checkpoints"
        self.context, self.keep = context, keep

    def latest(self) -> Path | None:
        pointer = self.root / "latest"
        if not pointer.is_file():
            return None
        path = self.root / pointer.read_text().strip()
        if not (path / "trainer_state.json").is_file():
            raise CheckpointError(f"{pointer} names {path.name}, which is incomplete or missing")
        return path

    def _model_state(self, module: nn.Module) -> dict[str, torch.Tensor]:
        inner = _unwrapped(module)
        names = _trainable_names(inner)
        if self.context.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            full = get_model_state_dict(inner, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        else:
            full = inner.state_dict()
        return {k: v.detach().to("cpu").contiguous() for k, v in full.items() if k in names}

    def _optimizer_state(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        if self.context.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_optimizer_state_dict(_unwrapped(module), optimizer, options=options)
        return optimizer.state_dict()

    def save(
        self,
        step: int,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        trainer_state: dict[str, Any],
    ) -> Path:
        """Write step `step`; every rank calls this (FSDP gathers collectively)."""
        final = self.root / f"step-{step:06d}"
        staging = self.root / f"step-{step:06d}.tmp"
        weights = self._model_state(module)
        optimizer_state = self._optimizer_state(module, optimizer)
        if self.context.is_main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            save_file(weights, str(staging / "trainable.safetensors"))
            torch.save(optimizer_state, staging / "optimizer.pt")
            torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        self.context.barrier()
        torch.save(rng_state(), staging / f"rng-{self.context.rank}.pt")
        self.context.barrier()
        if self.context.is_main:
            state = {**trainer_state, "step": step, "world_size": self.context.world_size}
            (staging / "trainer_state.json").write_text(json.dumps(state, indent=2))
            for file in staging.iterdir():
                with file.open("rb") as handle:
                    os.fsync(handle.fileno())
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            _fsync_directory(self.root)
            pointer = self.root / "latest.tmp"
            pointer.write_text(final.name)
            os.replace(pointer, self.root / "latest")
            _fsync_directory(self.root)
            self._prune(final)
        self.context.barrier()
        return final

    def _prune(self, newest: Path) -> None:
        done = sorted(p for p in self.root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[: max(0, len(done) - self.keep)]:
            if old != newest:
                shutil.rmtree(old, ignore_errors=True)

    def load(
        self,
        path: Path,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        """Restore everything and return the trainer state; refuses a checkpoint of a different run setup."""
        state = json.loads((path / "trainer_state.json").read_text())
        if state.get("world_size") != self.context.world_size:
            raise CheckpointError(
                f"{path} was written by {state.get('world_size')} processes; this run has {self.context.world_size}"
            )
        saved = state.get("config", {})
        changed = sorted(
            k for k in set(saved) | set(config) if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k)
        )
        if changed:
            details = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed[:4])
            raise CheckpointError(f"cannot resume {path}: options changed since it was written ({details})")
        inner = _unwrapped(module)
        weights = load_file(str(path / "trainable.safetensors"))
        missing = _trainable_names(inner) - set(weights)
        if missing:
            raise CheckpointError(f"{path} lacks trainable weights such as {sorted(missing)[:2]}")
        optimizer_state = _load_state(path / "optimizer.pt")
        if self.context.strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True, strict=False)
            set_model_state_dict(inner, weights, options=options)
            set_optimizer_state_dict(inner, optimizer, optimizer_state, options=options)
        else:
            inner.load_state_dict(weights, strict=False)
            optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(_load_state(path / "scheduler.pt"))
        rng_file = path / f"rng-{self.context.rank}.pt"
        set_rng_state(_load_state(rng_file))
        return state
