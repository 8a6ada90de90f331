"""Native CPU kernels against torch on this machine: paged decode and prefill attention, token bitmask, KV quantization.

Run: python benchmarks/kernels.py [--repeats 15] [--threads N] [--clock wall|cpu] [--only prefill ...]
(needs llmkit-kernels installed: pip install .)
Prints medians over repeats and the ratios; bandwidths count the bytes each op must move. `--clock cpu` times the
process's CPU time instead of the wall clock: on a box shared with other work, a one-thread run then counts only its
own cycles (bandwidth figures stay wall-clock ones in spirit only; use it for compute-bound rows such as prefill).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
import torch.nn.functional as F

from llmkit.core.ops import allocate, kv_quant, paged_attention, token_bitmask
from llmkit.kernels import _C, ops

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def median_seconds(function, repeats: int) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append(clock() - start)
    return statistics.median(times)


def copy_bandwidth(repeats: int) -> float:
    """GB/s of a large tensor copy (bytes read plus bytes written): the machine's practical memory speed."""
    source = torch.randn(64 * 1024 * 1024)  # 256 MiB, beyond any cache
    target = torch.empty_like(source)
    return 2 * source.numel() * 4 / median_seconds(lambda: target.copy_(source), repeats) / 1e9


def decode_rows(repeats: int, copy_gbs: float) -> list[tuple[str, float, float]]:
    batch, context, head_dim, heads, kv_heads, block_size = 32, 1024, 64, 9, 3, 16
    blocks = batch * context // block_size
    cache = allocate(blocks, kv_heads, block_size, head_dim)
    cache.key.normal_()
    cache.value.normal_()
    tables = torch.randperm(blocks).int().view(batch, context // block_size)  # scattered, as a block pool leaves them
    seq_lens = torch.full((batch,), context, dtype=torch.int32)
    query, out = torch.randn(batch, heads, head_dim), torch.empty(batch, heads, head_dim)
    scale = head_dim**-0.5

    def contiguous(storage):
        return storage[tables.long()].permute(0, 2, 1, 3, 4).reshape(batch, kv_heads, context, head_dim).contiguous()

    key, value = contiguous(cache.key), contiguous(cache.value)
    kv_bytes = 2 * key.numel() * 4
    timings = {
        "llmkit native (paged)": median_seconds(
            lambda: ops.paged_attention_decode(out, query, cache, tables, seq_lens, scale), repeats
        ),
        "torch SDPA (contiguous K/V)": median_seconds(
            lambda: F.scaled_dot_product_attention(query[:, :, None], key, value, scale=scale, enable_gqa=True),
            repeats,
        ),
        "llmkit reference (paged)": median_seconds(
            lambda: paged_attention.paged_attention_decode(out, query, cache, tables, seq_lens, scale),
            max(3, repeats // 3),
        ),
    }
    print(
        f"\npaged decode attention: batch {batch}, context {context}, head_dim {head_dim}, {heads} query / "
        f"{kv_heads} kv heads, float32, block {block_size}; K+V = {kv_bytes / 1e6:.1f} MB"
    )
    print(f"{'implementation':<30}{'ms':>9}{'GB/s':>9}{'vs copy':>9}{'native speedup':>16}")
    native = timings["llmkit native (paged)"]
    for name, seconds in timings.items():
        rate = kv_bytes / seconds / 1e9
        print(f"{name:<30}{seconds * 1e3:>9.2f}{rate:>9.1f}{rate / copy_gbs:>8.2f}x{seconds / native:>15.2f}x")
    return [(name, seconds, kv_bytes / seconds / 1e9) for name, seconds in timings.items()]


def prefill_rows(repeats: int) -> None:
    """Causal attention of a 512-token prompt over its own paged K/V (9 query / 3 KV heads, head_dim 64, the
    default model's shapes) against torch SDPA on the same K/V laid out contiguously."""
    tokens, head_dim, heads, kv_heads, block_size = 512, 64, 9, 3, 16
    blocks = tokens // block_size
    cache = allocate(blocks, kv_heads, block_size, head_dim)
    cache.key.normal_()
    cache.value.normal_()
    tables = torch.randperm(blocks).int().view(1, blocks)
    seq_lens = torch.tensor([tokens], dtype=torch.int32)
    starts = torch.tensor([0, tokens], dtype=torch.int32)
    query, out = torch.randn(tokens, heads, head_dim), torch.empty(tokens, heads, head_dim)
    scale = head_dim**-0.5
    key = cache.key[tables[0].long()].permute(1, 0, 2, 3).reshape(kv_heads, tokens, head_dim)[None]
    value = cache.value[tables[0].long()].permute(1, 0, 2, 3).reshape(kv_heads, tokens, head_dim)[None]
    q = query.transpose(0, 1)[None]
    timings = {
        "llmkit native (paged)": median_seconds(
            lambda: ops.paged_attention_prefill(out, query, cache, tables, seq_lens, starts, scale), repeats
        ),
        "torch SDPA (contiguous K/V)": median_seconds(
            lambda: F.scaled_dot_product_attention(q, key, value, is_causal=True, scale=scale, enable_gqa=True),
            repeats,
        ),
    }
    flops = 4 * heads * head_dim * tokens * (tokens + 1) / 2
    print(f"\npaged prefill attention: {tokens} tokens, {heads} query / {kv_heads} kv heads, head_dim {head_dim}")
    print(f"{'implementation':<30}{'ms':>9}{'GFLOP/s':>10}{'native speedup':>16}")
    native = timings["llmkit native (paged)"]
    for name, seconds in timings.items():
        print(f"{name:<30}{seconds * 1e3:>9.2f}{flops / seconds / 1e9:>10.1f}{seconds / native:>15.2f}x")


def bitmask_rows(repeats: int) -> None:
    vocab = 49_152
    print(f"\ntoken bitmask on a {vocab:,} vocabulary (float32 logits, 30% of tokens allowed)")
    print(f"{'batch':<8}{'native us':>11}{'masked_fill_ us':>17}{'reference us':>14}{'native speedup':>16}")
    for batch in (1, 32):
        logits = torch.randn(batch, vocab)
        allowed = torch.rand(batch, vocab) < 0.3
        words = (allowed.view(batch, -1, 32).long() << torch.arange(32)).sum(-1)
        bitmask = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
        disallowed = ~allowed
        native = median_seconds(partial(ops.apply_token_bitmask_, logits, bitmask), repeats * 10)
        fill = median_seconds(partial(logits.masked_fill_, disallowed, float("-inf")), repeats * 10)
        reference = median_seconds(partial(token_bitmask.apply_token_bitmask_, logits, bitmask), repeats * 10)
        print(f"{batch:<8}{native * 1e6:>11.1f}{fill * 1e6:>17.1f}{reference * 1e6:>14.1f}{fill / native:>15.2f}x")


def quantize_rows(repeats: int) -> None:
    x = torch.randn(2048, 3, 16, 64)  # 25 MB of float32 blocks
    print(f"\nKV quantization of {x.numel() * 4 / 1e6:.0f} MB of float32 blocks (GB/s counts input plus output bytes)")
    print(f"{'format':<10}{'op':<12}{'native GB/s':>13}{'reference GB/s':>16}{'native speedup':>16}")
    for kv_dtype in ("fp8_e4m3", "int8", "int4"):
        q, scales = ops.quantize_kv(x, kv_dtype)
        stored = q.numel() * q.element_size() + scales.numel() * scales.element_size()
        moved = x.numel() * 4 + stored
        pairs = {
            "quantize": (partial(ops.quantize_kv, x, kv_dtype), partial(kv_quant.quantize_kv, x, kv_dtype)),
            "dequantize": (
                partial(ops.dequantize_kv, q, scales, kv_dtype),
                partial(kv_quant.dequantize_kv, q, scales, kv_dtype),
            ),
        }
        for op, (native_fn, reference_fn) in pairs.items():
            native = median_seconds(native_fn, repeats)
            reference = median_seconds(reference_fn, max(3, repeats // 3))
            print(
                f"{kv_dtype:<10}{op:<12}{moved / native / 1e9:>13.1f}{moved / reference / 1e9:>16.1f}"
                f"{reference / native:>15.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--only", nargs="+", choices=["decode", "prefill", "bitmask", "quantize"])
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    only = set(args.only or ["decode", "prefill", "bitmask", "quantize"])
    print(f"threads {args.threads}; clock {args.clock}; CPU kernels: {_C.cpu_isa()} (supported: {', '.join(_C.supported_cpu_isas())})")  # fmt: skip
    if "decode" in only:
        copy_gbs = copy_bandwidth(args.repeats)
        print(f"memory copy bandwidth (read + write): {copy_gbs:.1f} GB/s")
        decode_rows(args.repeats, copy_gbs)
    if "prefill" in only:
        prefill_rows(args.repeats)
    if "bitmask" in only:
        bitmask_rows(args.repeats)
    if "quantize" in only:
        quantize_rows(args.repeats)


if __name__ == "__main__":
    main()
