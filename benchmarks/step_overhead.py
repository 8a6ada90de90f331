"""Where a batch-1 decode step's time goes: the native forward, the LM head, and everything else
(Python, scheduling, sampling, dispatch) -- the issue's "keep Python/dispatch overhead under 15% of a
batch-1 step" -- plus the step's floor with the layers' matmuls skipped.

    python benchmarks/step_overhead.py [--threads 2] [--tokens 128] [--repeats 3]

Same Engine and default model as the README's main command (weights as stored, int8 activations).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from llmkit.core import SamplingParams
from llmkit.kernels import fused_forward
from llmkit.serve import Engine


class Timer:
    """Wraps a function and sums the wall time spent in it."""

    def __init__(self, owner, name):
        self.owner, self.name, self.inner, self.total = owner, name, getattr(owner, name), 0.0
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = Engine()
    params = SamplingParams(temperature=0, max_tokens=args.tokens, ignore_eos=True)
    engine.generate(["warm up"], SamplingParams(temperature=0, max_tokens=8), progress=False)
    reason = fused_forward.native_forward_reason(engine.pretrained.model, engine.runner.caches)
    Console().print(f"forward: {'native fused' if reason is None else 'reference: ' + reason}")
    forward = Timer(engine.runner, "forward")  # ModelRunner.forward: ops.paged_forward, i.e. one _C call
    head = Timer(engine.runner.model, "compute_logits")
    rows = []
    for _ in range(args.repeats):
        forward.total = head.total = 0.0
        start = time.perf_counter()
        engine.generate(["The history of computing is"], params, progress=False)
        wall = time.perf_counter() - start
        rows.append((wall / args.tokens, forward.total / args.tokens, head.total / args.tokens))
    step, native, lm_head = (statistics.median(r[i] for r in rows) for i in range(3))
    other = step - native - lm_head
    table = Table(
        title=f"batch-1 decode step, {args.threads} threads, medians of {args.repeats} x {args.tokens} tokens"
    )
    for column in ("part", "ms / step", "share"):
        table.add_column(column)
    for name, value in (
        ("forward (ops.paged_forward)", native),
        ("LM head (native matmul)", lm_head),
        ("everything else (Python, scheduler, sampler)", other),
        ("step", step),
    ):
        table.add_row(name, f"{value * 1e3:.2f}", f"{value / step:.0%}")
    Console().print(table)
    Console().print(f"decode: {1 / step:.1f} tok/s; overhead outside native code: {other / step:.1%} of a step")


if __name__ == "__main__":
    main()
