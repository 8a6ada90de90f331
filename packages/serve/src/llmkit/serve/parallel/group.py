"""`TensorParallelGroup`: the collectives of one tensor-parallel engine.

Three process groups share one TCP store: `compute` (the model's all-reduces and all-gathers, with
the collective timeout, so a rank that dies or hangs fails the step; NCCL when the model is on CUDA,
gloo on CPU), `commands` (rank 0's step inputs to the workers, gloo, with no practical timeout, so
workers may wait idle for the next step) and `startup` (gloo; the weight checks while every rank
loads the model, STARTUP_TIMEOUT_S). The store comes from one of two launchers with the same code
after it: `on_loopback` (rank 0 hosts the store; workers spawned on this machine) or `from_torchrun`
(torchrun's c10d rendezvous: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). A failed collective
raises `TensorParallelError`. Workers also write a heartbeat into the store, so rank 0 notices a
rank on another machine that ended while the engine is idle.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pickle
import threading

import torch
import torch.distributed as dist

from llmkit.core.errors import LlmkitError

_IDLE_WAIT = datetime.timedelta(days=30)  # workers wait this long for rank 0's next step
STARTUP_TIMEOUT_S = 600.0  # spawning, importing and loading the model on every rank
HEARTBEAT_S = 1.0  # how often a worker rank writes its heartbeat
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class TensorParallelError(LlmkitError):
    """A tensor-parallel rank died or stopped answering (a collective failed or timed out)."""


def torchrun_rank() -> int | None:
    """This process's rank when torchrun (or another env:// launcher) started it, else None."""
    present = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not present:
        return None
    if len(present) != len(TORCHRUN_VARIABLES):
        missing = sorted(set(TORCHRUN_VARIABLES) - set(present))
        raise TensorParallelError(
            f"torchrun environment incomplete: {', '.join(present)} set, {', '.join(missing)} not"
        )
    return int(os.environ["RANK"])


def _gloo_device(host: str):
    """The interface gloo binds: GLOO_SOCKET_IFNAME when set, loopback for a loopback host, else the
    address this machine's hostname resolves to (what other machines reach it by)."""
    if os.environ.get("GLOO_SOCKET_IFNAME"):
        return dist.ProcessGroupGloo.create_device(interface=os.environ["GLOO_SOCKET_IFNAME"].split(",")[0])
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return dist.ProcessGroupGloo.create_device(hostname="127.0.0.1")
    return dist.ProcessGroupGloo.create_default_device()


def _gloo(store: dist.Store, prefix: str, rank: int, size: int, timeout: datetime.timedelta, device):
    options = dist.ProcessGroupGloo._Options()
    options._devices = [device]
    options._timeout = timeout
    return dist.ProcessGroupGloo(dist.PrefixStore(prefix, store), rank, size, options)


def _nccl(store: dist.Store, prefix: str, rank: int, size: int, timeout: datetime.timedelta):
    options = dist.ProcessGroupNCCL.Options()
    options._timeout = timeout
    return dist.ProcessGroupNCCL(dist.PrefixStore(prefix, store), rank, size, options)


class TensorParallelGroup:
    """Rank `rank` of `size` over `store`; `host` is the address the ranks meet at (picks gloo's interface)."""

    def __init__(self, rank: int, size: int, store: dist.Store, timeout_s: float, host: str, launcher: str):
        self.rank, self.size, self.timeout_s = rank, size, timeout_s
        self.store, self.host, self.launcher = store, host, launcher
        self.compute = self.commands = self.startup = None
        self.backend = "gloo"
        self._heartbeat: tuple[threading.Event, threading.Thread] | None = None

    @classmethod
    def on_loopback(cls, rank: int, size: int, port: int, timeout_s: float) -> TensorParallelGroup:
        """Ranks on this machine; rank 0 hosts the store (`port` 0 picks a free one, then `self.port`)."""
        try:
            store = dist.TCPStore(
                "127.0.0.1",
                port,
                size,
                rank == 0,
                timeout=datetime.timedelta(seconds=timeout_s),
                wait_for_workers=False,
                use_libuv=False,
            )
        except Exception as error:
            raise TensorParallelError(f"tensor-parallel rank {rank} could not reach the store: {error}") from error
        group = cls(rank, size, store, timeout_s, "127.0.0.1", "spawn")
        group.port = store.port
        return group

    @classmethod
    def from_torchrun(cls, timeout_s: float) -> TensorParallelGroup:
        """This process's rank in the group torchrun's rendezvous formed (its store, under a prefix)."""
        rank = torchrun_rank()
        if rank is None:
            raise TensorParallelError(f"not started by torchrun: {', '.join(TORCHRUN_VARIABLES)} are not set")
        host, size = os.environ["MASTER_ADDR"], int(os.environ["WORLD_SIZE"])
        try:
            store, _, _ = next(
                dist.rendezvous("env://", rank, size, timeout=datetime.timedelta(seconds=STARTUP_TIMEOUT_S))
            )
        except Exception as error:
            raise TensorParallelError(
                f"tensor-parallel rank {rank} could not reach torchrun's store at "
                f"{host}:{os.environ['MASTER_PORT']}: {error}"
            ) from error
        store.set_timeout(datetime.timedelta(seconds=timeout_s))
        group = cls(rank, size, dist.PrefixStore("llmkit-tp", store), timeout_s, host, "torchrun")
        group.port = int(os.environ["MASTER_PORT"])
        return group

    def connect(self, device: torch.device | None = None) -> None:
        """Form the groups (every rank calls this; it returns when all ranks have joined, or times out).
        `device`: where the model runs; on CUDA the compute group is NCCL."""
        timeout = datetime.timedelta(seconds=self.timeout_s)
        gloo = _gloo_device(self.host)
        try:
            if device is not None and device.type == "cuda":
                self.compute, self.backend = _nccl(self.store, "compute", self.rank, self.size, timeout), "nccl"
            else:
                self.compute = _gloo(self.store, "compute", self.rank, self.size, timeout, gloo)
            self.commands = _gloo(self.store, "commands", self.rank, self.size, _IDLE_WAIT, gloo)
            self.startup = _gloo(
                self.store, "startup", self.rank, self.size, datetime.timedelta(seconds=STARTUP_TIMEOUT_S), gloo
            )
        except Exception as error:
            raise TensorParallelError(
                f"tensor-parallel rank {self.rank} could not join the group of {self.size} "
                f"within {self.timeout_s:g} s: {error}"
            ) from error

    def start_heartbeat(self) -> None:
        """Workers: add 1 to `heartbeat/<rank>` every HEARTBEAT_S on a thread, until `stop_heartbeat`."""
        stopped = threading.Event()

        def beat() -> None:
            while not stopped.wait(HEARTBEAT_S):
                try:
                    self.store.add(f"heartbeat/{self.rank}", 1)
                except Exception:  # rank 0 and its store are gone: the command loop fails on its own
                    return

        self.store.add(f"heartbeat/{self.rank}", 1)
        thread = threading.Thread(target=beat, name=f"llmkit-tp-heartbeat{self.rank}", daemon=True)
        thread.start()
        self._heartbeat = (stopped, thread)

    def stop_heartbeat(self) -> None:
        """End the heartbeat thread before the process exits (a daemon thread caught inside the store's
        C++ call at interpreter exit aborts the process)."""
        if self._heartbeat is not None:
            stopped, thread = self._heartbeat
            stopped.set()
            thread.join(timeout=self.timeout_s)
            self._heartbeat = None

    def heartbeats(self) -> dict[int, int]:
        """Rank 0: each worker's heartbeat count (a count that stops growing is a rank that ended)."""
        return {rank: self.store.add(f"heartbeat/{rank}", 0) for rank in range(1, self.size)}

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
