"""`TensorParallelGroup`: the collectives of one tensor-parallel engine over a gloo process group.

Three gloo groups share one TCP store on loopback: `compute` (the model's all-reduces and all-gathers,
with the collective timeout, so a rank that dies or hangs fails the step), `commands` (rank 0's step
inputs to the workers, with no practical timeout, so workers may wait idle for the next step) and
`startup` (the weight checks while every rank loads the model, STARTUP_TIMEOUT_S).
Gloo only for now: NCCL on CUDA is the next step and is untested. A failed collective raises
`TensorParallelError`.
"""

from __future__ import annotations

import datetime
import pickle

import torch
import torch.distributed as dist

from llmkit.core.errors import LlmkitError

_IDLE_WAIT = datetime.timedelta(days=30)  # workers wait this long for rank 0's next step
STARTUP_TIMEOUT_S = 600.0  # spawning, importing and loading the model on every rank


class TensorParallelError(LlmkitError):
    """A tensor-parallel rank died or stopped answering (a collective failed or timed out)."""


def _gloo(store: dist.Store, prefix: str, rank: int, size: int, timeout: datetime.timedelta):
    options = dist.ProcessGroupGloo._Options()
    options._devices = [dist.ProcessGroupGloo.create_device(hostname="127.0.0.1")]
    options._timeout = timeout
    return dist.ProcessGroupGloo(dist.PrefixStore(prefix, store), rank, size, options)


class TensorParallelGroup:
    """Rank `rank` of `size`; rank 0 hosts the store (`port` 0 picks a free one, then `self.port`)."""

    def __init__(self, rank: int, size: int, port: int, timeout_s: float):
        self.rank, self.size, self.timeout_s = rank, size, timeout_s
        timeout = datetime.timedelta(seconds=timeout_s)
        try:
            self.store = dist.TCPStore(
                "127.0.0.1", port, size, rank == 0, timeout=timeout, wait_for_workers=False, use_libuv=False
            )
            self.port = self.store.port
        except Exception as error:
            raise TensorParallelError(f"tensor-parallel rank {rank} could not reach the store: {error}") from error
        self.compute = self.commands = self.startup = None

    def connect(self) -> None:
        """Form the groups (every rank calls this; it returns when all ranks have joined, or times out)."""
        timeout = datetime.timedelta(seconds=self.timeout_s)
        try:
            self.compute = _gloo(self.store, "compute", self.rank, self.size, timeout)
            self.commands = _gloo(self.store, "commands", self.rank, self.size, _IDLE_WAIT)
            self.startup = _gloo(
                self.store, "startup", self.rank, self.size, datetime.timedelta(seconds=STARTUP_TIMEOUT_S)
            )
        except Exception as error:
            raise TensorParallelError(
                f"tensor-parallel rank {self.rank} could not join the group of {self.size} "
                f"within {self.timeout_s:g} s: {error}"
            ) from error

    def _wait(self, work, what: str) -> None:
        try:
            work.wait()
        except Exception as error:
            raise TensorParallelError(
                f"tensor-parallel {what} failed on rank {self.rank} of {self.size} (a rank died or did not answer "
                f"within {self.timeout_s:g} s): {error}"
            ) from error

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over the ranks, in place."""
        self._wait(self.compute.allreduce([tensor]), "all-reduce")
        return tensor

    def all_gather(self, tensor: torch.Tensor, startup: bool = False) -> list[torch.Tensor]:
        """Every rank's `tensor` (same shape on all ranks), in rank order."""
        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        group = self.startup if startup else self.compute
        self._wait(group.allgather([parts], [tensor.contiguous()]), "all-gather")
        return parts

    def all_gather_object(self, value, startup: bool = False) -> list:
        """Every rank's picklable `value`, in rank order (`startup`: on the startup group's timeout)."""
        payload = torch.frombuffer(bytearray(pickle.dumps(value)), dtype=torch.uint8)
        sizes = self.all_gather(torch.tensor([payload.numel()], dtype=torch.int64), startup)
        longest = int(max(s.item() for s in sizes))
        padded = torch.zeros(longest, dtype=torch.uint8)
        padded[: payload.numel()] = payload
        parts = self.all_gather(padded, startup)
        return [pickle.loads(p[: int(s.item())].numpy().tobytes()) for p, s in zip(parts, sizes, strict=True)]

    def send_command(self, command) -> None:
        """Rank 0: broadcast a picklable command (a step's inputs, or None to stop) to the workers."""
        payload = torch.frombuffer(bytearray(pickle.dumps(command)), dtype=torch.uint8)
        options = dist.BroadcastOptions()  # rank 0 waits the collective timeout, not the workers' idle wait
        options.rootRank, options.timeout = 0, datetime.timedelta(seconds=self.timeout_s)
        size = torch.tensor([payload.numel()], dtype=torch.int64)
        self._wait(self.commands.broadcast([size], options), "command send")
        self._wait(self.commands.broadcast([payload], options), "command send")

    def receive_command(self):
        """Workers: the next command from rank 0 (waits while the engine is idle)."""
        size = torch.zeros(1, dtype=torch.int64)
        self._wait(self.commands.broadcast(size, 0), "command receive")
        payload = torch.empty(int(size.item()), dtype=torch.uint8)
        self._wait(self.commands.broadcast(payload, 0), "command receive")
        return pickle.loads(payload.numpy().tobytes())
