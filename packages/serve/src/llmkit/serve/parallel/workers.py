"""Tensor-parallel ranks on one machine: rank 0 is the engine's own process, ranks 1..N-1 are worker
processes (torch.multiprocessing, spawn) that run the same forward and logits on their shards.

Rank 0's `TensorParallelRunner` sends each model call's inputs (the step's `StepInputs`, then the
rows whose logits it takes) to the workers before making it, so every rank joins the collectives in
the same order; `None` stops them. Startup: every rank loads the model, all compare a fingerprint
of what they loaded, then each keeps only its shard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import time
from typing import Any

import torch
import torch.multiprocessing as mp

from llmkit.core import ops
from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.pretrained import Pretrained, load_pretrained
from llmkit.core.models.quantized import set_activations

from ..model_runner import ModelRunner, StepInputs
from .group import STARTUP_TIMEOUT_S, TensorParallelError, TensorParallelGroup
from .sharding import check_shardable, shard_model, weight_bytes, weights_fingerprint

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to load the same model and join the group (picklable, for spawn)."""

    model: str
    load_options: dict[str, Any]
    activations: str | None  # set on the loaded model when not None (the engine's default)
    size: int
    port: int
    timeout_s: float
    block_size: int
    kv_cache_dtype: str

    @classmethod
    def for_engine(cls, model: str, load_options: dict[str, Any], activations: str | None, cfg) -> WorkerSpec:
        """The spec of an engine's ranks (`cfg`: its EngineConfig; the port comes when rank 0 has one)."""
        size, timeout = cfg.tensor_parallel_size, cfg.tensor_parallel_timeout
        return cls(model, load_options, activations, size, 0, timeout, cfg.block_size, cfg.kv_cache_dtype)


def refuse_unsupported(model, cfg, steering, device: str) -> None:
    """Clear errors for what tensor parallelism does not run yet (`cfg`: the EngineConfig; before anything loads)."""
    refused = []
    if isinstance(model, Pretrained):
        refused.append("a loaded Pretrained (pass the model's name or path: every rank loads it)")
    if torch.device(device).type != "cpu":
        refused.append(f"device {device!r} (CPU with gloo only; NCCL on CUDA is not built yet)")
    if cfg.speculative is not None:
        refused.append(f"speculative decoding ({cfg.speculative.method})")
    if steering is not None:
        refused.append("steering vectors")
    if cfg.kv_cache_dtype != "auto":
        refused.append(f"kv_cache_dtype={cfg.kv_cache_dtype!r} (quantized KV caches)")
    if cfg.tensor_parallel_size < 1:
        refused.append(f"tensor_parallel_size={cfg.tensor_parallel_size} (must be at least 1)")
    if cfg.tensor_parallel_timeout <= 0:
        refused.append(f"tensor_parallel_timeout={cfg.tensor_parallel_timeout} (must be positive seconds)")
    if refused:
        raise InvalidParameterError(
            f"tensor_parallel_size={cfg.tensor_parallel_size} does not support: {'; '.join(refused)}"
        )


def _allocate_caches(model, num_blocks: int, block_size: int, kv_cache_dtype: str) -> list:
    config = model.config
    return [
        ops.allocate(
            num_blocks,
            config.num_kv_heads,
            block_size,
            config.head_dim,
            kv_cache_dtype,
            model.dtype,
            model.device,
        )
        for _ in range(config.num_layers)
    ]


def _load(spec: WorkerSpec) -> Pretrained:
    pretrained = load_pretrained(spec.model, **spec.load_options)
    if spec.activations is not None:
        set_activations(pretrained.model, spec.activations)
    return pretrained


def _join(group: TensorParallelGroup) -> None:
    """Wait (up to STARTUP_TIMEOUT_S) for every rank's process to start, then form the groups."""
    group.store.set(f"started/{group.rank}", "1")
    try:
        group.store.wait([f"started/{r}" for r in range(group.size)], datetime.timedelta(seconds=STARTUP_TIMEOUT_S))
    except Exception as error:
        raise TensorParallelError(f"tensor-parallel ranks did not all start within {STARTUP_TIMEOUT_S:g} s") from error
    group.connect()


@torch.inference_mode()
def worker_main(rank: int, spec: WorkerSpec) -> None:
    """A worker rank: load, check, shard, then run rank 0's commands until `None` (or a failure)."""
    group = TensorParallelGroup(rank, spec.size, spec.port, spec.timeout_s)
    _join(group)
    model = _load(spec).model
    group.all_gather_object(weights_fingerprint(model), startup=True)
    shard = shard_model(model, group)
    del model
    group.all_gather_object(weight_bytes(shard), startup=True)
    caches = _allocate_caches(shard, group.receive_command(), spec.block_size, spec.kv_cache_dtype)
    hidden = None
    while (command := group.receive_command()) is not None:
        kind, payload = command
        if kind == "forward":
            hidden = ops.paged_forward(shard, caches, payload)
        else:  # "logits": the same rows rank 0 takes
            shard.compute_logits(hidden[torch.tensor(payload, dtype=torch.int64)])


class TensorParallelRunner(ModelRunner):
    """Rank 0's runner: each forward and logits call is sent to the workers first, then made here."""

    def __init__(self, *args, group: TensorParallelGroup, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def forward(self, inputs: StepInputs) -> torch.Tensor:
        self.group.send_command(("forward", inputs))
        return super().forward(inputs)

    def logits(self, hidden: torch.Tensor, rows: list[int]) -> torch.Tensor:
        self.group.send_command(("logits", list(rows)))
        return super().logits(hidden, rows)

    def decode_logits(self, *args, **kwargs) -> torch.Tensor:
        raise TensorParallelError("early-exit and draft decoding are not supported with tensor parallelism")


class TensorParallelRanks:
    """Rank 0's side of startup and shutdown: spawn the workers, check their weights, shard rank 0's model."""

    def __init__(self, pretrained: Pretrained, spec: WorkerSpec):
        check_shardable(pretrained.model, spec.size)  # a bad size fails before any process starts
        self.group = TensorParallelGroup(0, spec.size, 0, spec.timeout_s)
        self.serving = False  # workers listen for commands once their caches exist
        self.spec = dataclasses.replace(spec, port=self.group.port)
        context = mp.get_context("spawn")
        self.processes = [
            context.Process(target=worker_main, args=(rank, self.spec), name=f"llmkit-tp-rank{rank}", daemon=True)
            for rank in range(1, spec.size)
        ]
        try:
            for process in self.processes:
                process.start()
            _join(self.group)
            fingerprints = self.group.all_gather_object(weights_fingerprint(pretrained.model), startup=True)
            differing = [rank for rank, f in enumerate(fingerprints) if f != fingerprints[0]]
            if differing:
                raise TensorParallelError(f"ranks {differing} loaded different weights than rank 0 ({spec.model})")
            self.shard = shard_model(pretrained.model, self.group)
            self.weight_bytes = self.group.all_gather_object(weight_bytes(self.shard), startup=True)
            self.full_weight_bytes = weight_bytes(pretrained.model)
        except BaseException as error:
            self.stop()
            raise self.explain(error) from error

    def start_caches(self, num_blocks: int) -> None:
        """Tell the workers the KV cache size rank 0 chose (each allocates its 1/N of the KV heads)."""
        self.group.send_command(num_blocks)
        self.serving = True

    def explain(self, error: BaseException) -> BaseException:
        """`error`, with the workers' exit codes when some have ended (a killed rank says so)."""
        deadline = time.monotonic() + 1.0  # a rank that just died may not be reaped yet
        for process in self.processes:
            if process.pid is not None:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
        ended = [
            f"rank {rank} exited with code {p.exitcode}" for rank, p in enumerate(self.processes, 1) if not p.is_alive()
        ]
        if not ended or not isinstance(error, TensorParallelError):
            return error
        return TensorParallelError(f"{error} ({'; '.join(ended)})")

    def stop(self, graceful: bool = True) -> None:
        """Stop the workers: a stop command when they are listening (`graceful`), then end what is left
        (SIGTERM, then SIGKILL for a rank that is stopped or stuck)."""
        if graceful and self.serving and all(p.is_alive() for p in self.processes):
            with contextlib.suppress(TensorParallelError):  # a rank is gone: terminate below
                self.group.send_command(None)
        self.serving = False
        started = [p for p in self.processes if p.pid is not None]
        for process in started:
            process.join(timeout=5 if graceful else 0)
        for signal in ("terminate", "kill"):
            for process in started:
                if process.is_alive():
                    getattr(process, signal)()
                    process.join(timeout=2)
