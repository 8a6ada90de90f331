"""Where batch functions run: inline, on a local process pool (the default), or on Ray Data.

A stage is a picklable function `batch -> result`; the executor maps it over a stream of batches and
yields results in input order, with a bounded number in flight so memory stays flat.
"""

from __future__ import annotations

import abc
import importlib.util
import multiprocessing
import os
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from llmkit.core.errors import InvalidParameterError

BatchFunction = Callable[[Any], Any]


class Executor(abc.ABC):
    """Maps a batch function over batches, results in order."""

    name: str

    @abc.abstractmethod
    def map(self, function: BatchFunction, batches: Iterable[Any]) -> Iterator[Any]:
        """Yield `function(batch)` for each batch, in input order."""

    def close(self) -> None:  # noqa: B027 - most executors hold nothing to release
        """Release workers (a no-op for executors without any)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs every batch in this process: for small inputs, tests and debugging."""

    name = "inline"

    def map(self, function, batches):
        for batch in batches:
            yield function(batch)


class ProcessPoolBatchExecutor(Executor):
    """A local process pool (spawned workers: no state inherited from torch or threads in the parent)."""

    name = "process-pool"

    def __init__(self, workers: int, in_flight_per_worker: int = 2):
        if workers < 1:
            raise InvalidParameterError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.in_flight = workers * in_flight_per_worker
        self._pool: ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def map(self, function, batches):
        pool = self._ensure_pool()
        pending: deque[Future] = deque()
        for batch in batches:
            pending.append(pool.submit(function, batch))
            if len(pending) >= self.in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class _PickledBatchFunction:
    """Ray Data batch UDF: unpickle each row's batch, run the stage, pickle its result."""

    def __init__(self, function: BatchFunction):
        self.function = function

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        results = [pickle.dumps(self.function(pickle.loads(payload))) for payload in rows["payload"]]
        return {"payload": results}


class RayDataExecutor(Executor):
    """Ray Data over a cluster (or a local Ray instance with address "local"); windows of batches in order."""

    name = "ray"

    def __init__(self, address: str, window: int = 64):
        if importlib.util.find_spec("ray") is None:
            raise InvalidParameterError(f"--ray-address {address} needs ray: pip install 'ray[data]'")
        import ray

        if not ray.is_initialized():
            ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
        self.window = window

    def map(self, function, batches):
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        udf = _PickledBatchFunction(function)
        window: list[bytes] = []

        def run(payloads: list[bytes]) -> Iterator[Any]:
            dataset = ray.data.from_items([{"payload": p} for p in payloads], override_num_blocks=len(payloads))
            for row in dataset.map_batches(udf, batch_size=1).iter_rows():
                yield pickle.loads(row["payload"])

        for batch in batches:
            window.append(pickle.dumps(batch))
            if len(window) >= self.window:
                yield from run(window)
                window = []
        if window:
            yield from run(window)


def default_workers() -> int:
    """Worker processes when none are asked for: the CPUs this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def make_executor(workers: int | None = None, ray_address: str | None = None) -> Executor:
    """Ray Data when an address is given, else a process pool of `workers` (inline when that is 1)."""
    if ray_address:
        return RayDataExecutor(ray_address)
    workers = default_workers() if workers is None else workers
    return InlineExecutor() if workers == 1 else ProcessPoolBatchExecutor(workers)
