"""Tensor-parallel ranks: rank 0 is the engine's own process, ranks 1..N-1 are workers that run the same
forward and logits on their shards. Two launchers, one code path after the group forms: on one
machine the engine spawns the workers (torch.multiprocessing); under `torchrun` (c10d rendezvous,
one or many machines) every rank runs `llmkit serve`, and ranks 1..N-1 call `serve_as_worker`.

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
import os
import time
from typing import Any

import torch
import torch.multiprocessing as mp

from llmkit.core import ops
from llmkit.core.errors import InvalidParameterError
from llmkit.core.models.pretrained import Pretrained, load_pretrained

from ..activations import apply_default_activations
from ..model_runner import ModelRunner, StepInputs
from .group import HEARTBEAT_S, STARTUP_TIMEOUT_S, TensorParallelError, TensorParallelGroup, torchrun_rank
from .sharding import check_shardable, shard_model, weight_bytes, weights_fingerprint

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to load the same model and join the group (picklable, for spawn)."""

    model: str
    load_options: dict[str, Any]
    default_activations: bool  # the engine's default activations go on the loaded model (none were given)
    size: int
    port: int
    timeout_s: float
    block_size: int
    kv_cache_dtype: str
    launcher: str = "spawn"  # "spawn" (workers started by rank 0) or "torchrun" (every rank started by torchrun)

    @classmethod
    def for_engine(cls, model: str, load_options: dict[str, Any], default_activations: bool, cfg) -> WorkerSpec:
        """The spec of an engine's ranks (`cfg`: its EngineConfig; the port comes when rank 0 has one).
        Under torchrun (its RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) the ranks meet at its store."""
        size, timeout = cfg.tensor_parallel_size, cfg.tensor_parallel_timeout
        launcher = "spawn" if torchrun_rank() is None else "torchrun"
        return cls(
            model, load_options, default_activations, size, 0, timeout, cfg.block_size, cfg.kv_cache_dtype, launcher
        )

    def device(self, rank: int) -> torch.device:
        """Where `rank` runs the model: the engine's device; on CUDA one GPU per rank (torchrun's LOCAL_RANK)."""
        device = torch.device(self.load_options.get("device") or "cpu")
        if device.type != "cuda":
            return device
        local = int(os.environ.get("LOCAL_RANK", rank)) if self.launcher == "torchrun" else rank
        return torch.device("cuda", local)

    def group(self, rank: int) -> TensorParallelGroup:
        """This rank's group, before `connect` (rank 0 on loopback picks the store's port)."""
        if self.launcher == "spawn":
            return TensorParallelGroup.on_loopback(rank, self.size, self.port, self.timeout_s)
        group = TensorParallelGroup.from_torchrun(self.timeout_s)
        if group.rank != rank or group.size != self.size:
            raise TensorParallelError(
                f"torchrun started rank {group.rank} of {group.size} processes (WORLD_SIZE), but "
                f"--tensor-parallel-size is {self.size}: start as many processes as ranks"
            )
        return group


def refuse_unsupported(model, cfg, steering, device: str) -> None:
    """Clear errors for what tensor parallelism does not run yet (`cfg`: the EngineConfig; before anything loads)."""
    refused = []
    if isinstance(model, Pretrained):
        refused.append("a loaded Pretrained (pass the model's name or path: every rank loads it)")
    kind = torch.device(device).type
    if kind not in ("cpu", "cuda"):
        refused.append(f"device {device!r} (CPU with gloo or CUDA with NCCL)")
    if kind == "cuda" and torchrun_rank() is None and torch.cuda.device_count() < cfg.tensor_parallel_size:
        refused.append(
            f"{cfg.tensor_parallel_size} ranks on {torch.cuda.device_count()} visible CUDA device(s) (one GPU per rank)"
        )
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


def _load(spec: WorkerSpec, rank: int) -> Pretrained:
    pretrained = load_pretrained(spec.model, **{**spec.load_options, "device": str(spec.device(rank))})
    if spec.default_activations:
        apply_default_activations(pretrained.model)
    return pretrained


def _join(group: TensorParallelGroup, device: torch.device) -> None:
    """Wait (up to STARTUP_TIMEOUT_S) for every rank's process to start, then form the groups."""
    group.store.set(f"started/{group.rank}", "1")
    try:
        group.store.wait([f"started/{r}" for r in range(group.size)], datetime.timedelta(seconds=STARTUP_TIMEOUT_S))
    except Exception as error:
        raise TensorParallelError(f"tensor-parallel ranks did not all start within {STARTUP_TIMEOUT_S:g} s") from error
    group.connect(device)


def _moved(inputs: StepInputs, device: torch.device) -> StepInputs:
    """The step's tensors on `device` (CUDA tensors travel to the workers through the CPU)."""
    if all(t.device == device for t in vars(inputs).values() if isinstance(t, torch.Tensor)):
        return inputs
    moved = {k: v.to(device) for k, v in vars(inputs).items() if isinstance(v, torch.Tensor)}
    return dataclasses.replace(inputs, **moved)


def worker_main(rank: int, spec: WorkerSpec) -> None:
    """A worker rank: load, check, shard, then run rank 0's commands until `None` (or a failure).
    Only the command loop runs in inference mode: weights made there would be inference tensors, which
    the int8 matmul's repack cache cannot version (as on rank 0, the shard is made outside it)."""
    device = spec.device(rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    group = spec.group(rank)
    _join(group, device)
    group.start_heartbeat()
    try:
        model = _load(spec, rank).model
        group.all_gather_object(weights_fingerprint(model), startup=True)
        shard = shard_model(model, group)
        del model
        group.all_gather_object(weight_bytes(shard), startup=True)
        caches = _allocate_caches(shard, group.receive_command(), spec.block_size, spec.kv_cache_dtype)
        _run_commands(group, shard, caches, device)
    finally:
        group.stop_heartbeat()


@torch.inference_mode()
def _run_commands(group: TensorParallelGroup, shard, caches: list, device: torch.device) -> None:
    hidden = None
    while (command := group.receive_command()) is not None:
        kind, payload = command
        if kind == "forward":
            hidden = ops.paged_forward(shard, caches, _moved(payload, device))
        else:  # "logits": the same rows rank 0 takes
            shard.compute_logits(hidden[torch.tensor(payload, dtype=torch.int64, device=device)])


def serve_as_worker(model: str, load_options: dict[str, Any], default_activations: bool, cfg) -> int:
    """`llmkit serve` on a torchrun rank other than 0: the worker loop until rank 0 stops it; the exit code."""
    refuse_unsupported(model, cfg, None, load_options.get("device") or "cpu")
    spec = WorkerSpec.for_engine(model, load_options, default_activations, cfg)
    rank = torchrun_rank()
    try:
        worker_main(rank, spec)
    except TensorParallelError as error:
        logger.error("llmkit serve: tensor-parallel rank %d stopped: %s", rank, error)
        return 1
    return 0


class TensorParallelRunner(ModelRunner):
    """Rank 0's runner: each forward and logits call is sent to the workers first, then made here."""

    def __init__(self, *args, group: TensorParallelGroup, **kwargs):
        super().__init__(*args, **kwargs)
        self.group = group

    def forward(self, inputs: StepInputs) -> torch.Tensor:
        self.group.send_command(("forward", _moved(inputs, torch.device("cpu"))))
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
        self.group = spec.group(0)
        self.serving = False  # workers listen for commands once their caches exist
        self.spec = dataclasses.replace(spec, port=self.group.port)
        self._beats: dict[int, tuple[int, float]] = {}  # torchrun: each worker's heartbeat and when it last moved
        context = mp.get_context("spawn")
        self.processes = [  # under torchrun the workers are torchrun's, not ours
            context.Process(target=worker_main, args=(rank, self.spec), name=f"llmkit-tp-rank{rank}", daemon=True)
            for rank in range(1, spec.size)
            if spec.launcher == "spawn"
        ]
        try:
            for process in self.processes:
                process.start()
            _join(self.group, pretrained.model.device)
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

    def describe_launch(self) -> str:
        """How the ranks were started and talk, for the startup line."""
        backend = f"{self.group.backend} for the model's collectives, gloo for commands"
        if self.spec.launcher == "torchrun":
            return f"{backend}; every rank started by torchrun, meeting at {self.group.host}:{self.group.port}"
        return f"{backend}; one machine, ranks 1..{self.group.size - 1} in worker processes"

    def ended(self) -> list[str]:
        """Worker ranks that have ended, one line each: a spawned worker's exit code, or (under torchrun)
        a worker whose heartbeat stopped for the collective timeout. Empty while all are alive."""
        if self.spec.launcher == "spawn":
            return [
                f"rank {rank} exited with code {p.exitcode}"
                for rank, p in enumerate(self.processes, 1)
                if p.pid is not None and not p.is_alive()
            ]
        try:
            counts = self.group.heartbeats()
        except Exception as error:  # the store lives in torchrun's agent: it is gone
            return [f"torchrun's store stopped answering ({error})"]
        now, ended = time.monotonic(), []
        for rank, count in counts.items():
            last, since = self._beats.get(rank, (None, now))
            if count != last:
                self._beats[rank] = (count, now)
            elif now - since > max(self.group.timeout_s, 3 * HEARTBEAT_S):
                ended.append(f"rank {rank} sent no heartbeat for {now - since:.1f} s")
        return ended

    def explain(self, error: BaseException) -> BaseException:
        """`error`, with the workers' exit codes when some have ended (a killed rank says so)."""
        deadline = time.monotonic() + 1.0  # a rank that just died may not be reaped yet
        for process in self.processes:
            if process.pid is not None:
                process.join(timeout=max(0.0, deadline - time.monotonic()))
        ended = self.ended() if self.spec.launcher == "spawn" else []
        if not ended or not isinstance(error, TensorParallelError):
            return error
        return TensorParallelError(f"{error} ({'; '.join(ended)})")

    def stop(self, graceful: bool = True) -> None:
        """Stop the workers: a stop command when they are listening (`graceful`), then end what is left
        (SIGTERM, then SIGKILL for a rank that is stopped or stuck)."""
        if graceful and self.serving and not self.ended():
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
