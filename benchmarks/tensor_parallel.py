"""Tensor parallelism: prefill and decode throughput at each tensor-parallel size, rank 0's all-reduce
time per decode step, and whether greedy ids equal one rank's on the golden prompts (and the golden ids).

    python benchmarks/tensor_parallel.py [--sizes 1 3] [--activations int8] [--device cpu]

Every size runs the same Engine (weights as stored); size 1 runs the native fused forward, sizes above
1 the layer-by-layer forward (native matmul and attention ops, all-reduces between). Set
OMP_NUM_THREADS to the threads each rank may use (ranks share the machine's cores).
`benchmarks/gpu_check.py` calls `measure` on CUDA (NCCL) when the machine has more than one GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from pathlib import Path

from llmkit.core import SamplingParams, ops
from llmkit.core.models.store import DEFAULT_MODEL, pull
from llmkit.serve import Engine

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden" / "smollm2-135m-instruct.json"


@dataclasses.dataclass
class Measurement:
    size: int
    forward: str
    prefill_tok_s: float
    decode_tok_s: float
    batch: int
    all_reduce_ms_per_step: float | None  # rank 0, decode steps (includes waiting for the slowest rank)
    native_matmuls_per_step: float  # rank 0's calls of the dispatched quantized_matmul per decode step
    weight_mib_per_rank: list[float]
    greedy_ids: list[list[int]]


class _Counter:
    """Wraps `owner.name`, counting calls and summing their wall time."""

    def __init__(self, owner, name: str):
        self.owner, self.name, self.inner = owner, name, getattr(owner, name)
        self.calls, self.seconds = 0, 0.0
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.calls += 1
            self.seconds += time.perf_counter() - start

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0

    def restore(self) -> None:
        setattr(self.owner, self.name, self.inner)


class _NativeMatmuls:
    """Counts this process's `quantized_matmul` dispatches that resolve to a registered (native) kernel."""

    def __init__(self):
        self.inner, self.reference, self.calls = ops.implementation, ops.reference("quantized_matmul"), 0
        ops.implementation = self

    def __call__(self, op: str, device: str):
        chosen = self.inner(op, device)
        if op == "quantized_matmul" and chosen is not self.reference:
            self.calls += 1
        return chosen

    def restore(self) -> None:
        ops.implementation = self.inner


def first_differences(ids: list[list[int]], base: list[list[int]]) -> str:
    """ "equal", or where each differing prompt's greedy ids first leave `base`'s ("p1@17": prompt 1, token 17)."""
    differing = []
    for prompt, (a, b) in enumerate(zip(ids, base, strict=True)):
        if a != b:
            token = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            differing.append(f"p{prompt}@{token}")
    return ", ".join(differing) or "equal"


def _generate(engine: Engine, prompts, max_tokens: int) -> tuple[float, list[list[int]]]:
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    start = time.perf_counter()
    outputs = engine.generate(prompts, params, progress=False)
    return time.perf_counter() - start, [o.completions[0].token_ids for o in outputs]


def measure(
    model: str,
    size: int,
    golden_prompts: list[list[int]],
    *,
    device: str = "cpu",
    activations: str | None = None,
    prefill_tokens: int = 256,
    decode_tokens: int = 32,
    batch: int = 4,
    golden_tokens: int = 32,
    timeout_s: float = 120.0,
    layer_by_layer: bool = False,
) -> Measurement:
    """One engine at `size` ranks: golden greedy ids, then prefill and decode throughput. `layer_by_layer`
    (size 1): the forward TP runs, without the collectives (a no-op hook turns the fused forward off)."""
    engine = Engine(
        model,
        activations=activations,
        device=device,
        tensor_parallel_size=size,
        tensor_parallel_timeout=timeout_s,
        enable_prefix_caching=False,  # repeated prompts are computed again, not read from the cache
        kv_cache_memory="64MiB",
    )
    if layer_by_layer:  # before the first step: the fused forward checks for hooks when it is built
        engine.pretrained.model.register_forward_hook(lambda *_: None)
    matmuls = _NativeMatmuls()
    all_reduce = None if engine.tensor_parallel is None else _Counter(engine.tensor_parallel.group, "all_reduce")
    try:
        _, greedy = _generate(engine, golden_prompts, golden_tokens)
        vocab = engine.vocab_size
        rng = random.Random(0)
        long_prompt = [rng.randrange(100, vocab) for _ in range(prefill_tokens)]
        prefill_s = min(_generate(engine, [long_prompt], 1)[0] for _ in range(2))
        short = [[rng.randrange(100, vocab) for _ in range(16)] for _ in range(batch)]
        first_s, _ = _generate(engine, short, 1)
        matmuls.calls = 0
        if all_reduce is not None:
            all_reduce.reset()
        whole_s, _ = _generate(engine, short, decode_tokens + 1)
        steps = decode_tokens  # decode steps after the prefill step of `first_s`
        decode_s = max(whole_s - first_s, 1e-9)
        tp = engine.tensor_parallel
        return Measurement(
            size=size,
            forward="layer-by-layer" if layer_by_layer or tp else "fused native",
            prefill_tok_s=prefill_tokens / prefill_s,
            decode_tok_s=batch * decode_tokens / decode_s,
            batch=batch,
            all_reduce_ms_per_step=None if all_reduce is None else 1000 * all_reduce.seconds / (steps + 1),
            native_matmuls_per_step=matmuls.calls / (steps + 1),
            weight_mib_per_rank=[b / 2**20 for b in tp.weight_bytes] if tp else [],
            greedy_ids=greedy,
        )
    finally:
        matmuls.restore()
        if all_reduce is not None:
            all_reduce.restore()
        engine.close()


def golden_prompts(count: int) -> tuple[list[list[int]], list[list[int]]]:
    """The golden cases' prompt ids and their golden output ids (float32 activations)."""
    cases = json.loads(GOLDEN.read_text())["cases"][:count]
    return [c["ids_in"] for c in cases], [c["ids_out"] for c in cases]


def print_table(results: list[Measurement], golden_out: list[list[int]] | None, golden_tokens: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tensor parallelism (rank 0's view)")
    layered = next((r for r in results if r.size == 1 and r.forward == "layer-by-layer"), None)
    columns = ["TP", "forward", "prefill tok/s", "decode tok/s", "all-reduce ms/step", "native matmuls/step"]
    columns += ["weights MiB/rank", "greedy vs TP 1"] + (["vs TP 1 layer-by-layer"] if layered else []) + ["vs golden"]
    for column in columns:
        table.add_column(column)
    for r in results:
        golden = "-" if golden_out is None else first_differences(r.greedy_ids, [g[:golden_tokens] for g in golden_out])
        row = [
            str(r.size),
            r.forward,
            f"{r.prefill_tok_s:.1f}",
            f"{r.decode_tok_s:.1f} (batch {r.batch})",
            "-" if r.all_reduce_ms_per_step is None else f"{r.all_reduce_ms_per_step:.2f}",
            f"{r.native_matmuls_per_step:.0f}",
            ", ".join(f"{m:.1f}" for m in r.weight_mib_per_rank) or "-",
            first_differences(r.greedy_ids, results[0].greedy_ids),
        ]
        table.add_row(*row, *([first_differences(r.greedy_ids, layered.greedy_ids)] if layered else []), golden)
    Console(width=200).print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name or path (default: the default model)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--activations", default=None, help="float32 or int8 (default: the engine's, int8)")
    parser.add_argument("--prefill-tokens", type=int, default=256)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--golden", type=int, default=3, help="golden prompts to compare (0: none)")
    parser.add_argument("--golden-tokens", type=int, default=32)
    parser.add_argument(
        "--layer-by-layer",
        action="store_true",
        help="add a size-1 row on the layer-by-layer forward (TP's, no collectives)",
    )
    args = parser.parse_args()
    model = args.model or str(pull(DEFAULT_MODEL, quiet=True).path)
    prompts, golden_out = golden_prompts(args.golden) if args.golden else ([[1, 2, 3]], None)
    if args.model is not None or args.activations != "float32":
        golden_out = None  # the golden ids are the default model's with float32 activations
    results = [
        measure(
            model,
            size,
            prompts,
            device=args.device,
            activations=args.activations,
            prefill_tokens=args.prefill_tokens,
            decode_tokens=args.decode_tokens,
            batch=args.batch,
            golden_tokens=args.golden_tokens,
        )
        for size in args.sizes
    ]
    if args.layer_by_layer:
        results.insert(
            1,
            measure(
                model,
                1,
                prompts,
                device=args.device,
                activations=args.activations,
                prefill_tokens=args.prefill_tokens,
                decode_tokens=args.decode_tokens,
                batch=args.batch,
                golden_tokens=args.golden_tokens,
                layer_by_layer=True,
            ),
        )
    print_table(results, golden_out, args.golden_tokens)
    # Exit 1 when a TP N row's greedy ids leave those of the same forward on one rank.
    base = next((r for r in results if r.size == 1 and r.forward == "layer-by-layer"), results[0])
    return 0 if all(r.greedy_ids == base.greedy_ids for r in results if r.size > 1) else 1


if __name__ == "__main__":
    raise SystemExit(main())
