"""Scale-out under `torchrun`: process group (gloo on CPU, NCCL on GPUs), DDP or FSDP2 wrapping, reductions."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from llmkit.core.device import resolve_device


@dataclasses.dataclass
class DistributedContext:
    """Where this process sits: rank, world size, device and the wrapping strategy."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    strategy: str = "none"  # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum over every process (float64 on the wire)."""
        if not self.enabled:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self._wire_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def max(self, value: float) -> float:
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._wire_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def gather_objects(self, obj: object) -> list[object]:
        if not self.enabled:
            return [obj]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def _wire_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def choose_device(requested: str, local_rank: int) -> torch.device:
    """The `device` option as this process's device: `cuda` and `auto` take the GPU of its local rank.

    Training runs torch's own ops, so `auto` takes any GPU torch sees (no native kernels needed)."""
    device = resolve_device(requested, auto_needs_native_kernels=False)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def local_rank() -> int:
    """This process's GPU slot on its machine under torchrun (LOCAL_RANK), 0 when run alone."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_distributed(requested_device: str, strategy: str) -> DistributedContext:
    """Join the process group torchrun describes (WORLD_SIZE, RANK, LOCAL_RANK), or run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank_on_machine = local_rank()
    device = choose_device(requested_device, rank_on_machine)
    if world_size == 1:
        return DistributedContext(device=device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return DistributedContext(dist.get_rank(), world_size, rank_on_machine, device, strategy)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_module(module: nn.Module, context: DistributedContext, shard_units: Sequence[nn.Module] = ()) -> nn.Module:
    """DDP (gradients all-reduced, averaged) or FSDP2 (`fully_shard` on each decoder layer, then the root)."""
    if not context.enabled:
        return module
    if context.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for unit in shard_units:
            fully_shard(unit)
        fully_shard(module)
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


@contextlib.contextmanager
def gradient_sync(module: nn.Module, context: DistributedContext, sync: bool) -> Iterator[None]:
    """Skip the gradient reduction on all but the last micro-batch of an update."""
    if not context.enabled or sync:
        yield
        return
    if context.strategy == "fsdp":
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
        return
    with module.no_sync():
        yield


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
