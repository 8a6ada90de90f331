"""Threads for native CPU kernels, kept apart from torch's own intra-op threads.

torch's OpenMP workers spin for milliseconds after each parallel region before they sleep. In a
step whose heavy work is native (the fused forward and its thread pool), the torch ops around it
(sampling over the vocabulary, logits processing) open such regions, and the spinning workers then
take the cores the native pool needs: on the 2-core box, batch-1 decode ran at 65 tok/s with them
and 93-121 tok/s without (`benchmarks/step_overhead.py`, int8 activations). `native_step` runs such
a block with torch on one thread and hands the native kernels the thread count torch had.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_state = threading.local()


def native_threads() -> int:
    """Threads for a native CPU kernel: the count `native_step` set on this thread, else torch's."""
    threads = getattr(_state, "threads", None)
    return threads if threads is not None else torch.get_num_threads()


@contextmanager
def native_step(threads: int | None = None) -> Iterator[None]:
    """Within the block, native kernels use `threads` (default: torch's count) and torch's own ops one."""
    outer_torch, outer_native = torch.get_num_threads(), getattr(_state, "threads", None)
    _state.threads = threads if threads is not None else native_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(outer_torch)
        _state.threads = outer_native
