"""On a machine with a CUDA GPU: build llmkit-kernels if needed, check every CUDA op against its reference,
and time the CUDA kernels against torch (SDPA / FlashAttention, masked_fill_, dense matmul), one row per check.
With more than one GPU, a tensor-parallel section (NCCL): throughput at TP 1 vs N and rank 0's all-reduce time
per decode step (`benchmarks/tensor_parallel.py`), and whether TP N's greedy ids equal TP 1's.

Run from the repository root: python benchmarks/gpu_check.py [--repeats 50] [--tp-sizes 1 3] [--skip-tensor-parallel]
  [--output PATH] [--device cpu]
Each row is printed (and appended to --output, default $OUT/gpu_check.txt when OUT is set) as soon as it is
checked; an op that raises becomes a failed row with its exception (the traceback goes to --output) and the
run goes on, unless the CUDA context itself is broken. `--device cpu` checks the CPU kernels the same way
(no build, no timings): a dry run of the script on a machine without a GPU.
Without a GPU (and without --device cpu) it says so and exits 0. Exits 1 when a check fails.
llmkit-core and llmkit-serve are read from this checkout; gguf must be importable (docs/kernels.md says how
to carry it to a machine without it).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import math
import os
import shutil
import statistics
import subprocess
import sys
import traceback
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
# llmkit-core and llmkit-serve from this checkout (a GPU machine has neither installed). Never
# packages/kernels/src: its llmkit/kernels (no _C) would shadow the built module.
for _source in (ROOT / "packages" / "serve" / "src", ROOT / "packages" / "core" / "src"):
    if str(_source) not in sys.path:
        sys.path.insert(0, str(_source))

GGUF_MISSING = """gpu_check: the Python package gguf (a dependency of llmkit-core) is not importable here.
Carry its wheel (pure Python; it imports numpy and yaml, which such machines have). In the repository root,
on a machine with a package index:
    python3 -m pip download --no-deps gguf==0.19.0 -d .whl        (and add /.whl/ to .git/info/exclude)
then on this machine, with .whl carried:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
(see "Checking the CUDA kernels on a GPU" in docs/kernels.md)."""

# Set when this script re-executed itself after building, so a build that still lacks CUDA stops it.
REBUILT_ENV = "LLMKIT_GPU_CHECK_REBUILT"


def cuda_archs() -> str:
    """The CUDA architecture of GPU 0 in CMake syntax: sm_90 (H100/H200) as 90a, which the kernels target."""
    major, minor = torch.cuda.get_device_capability(0)
    return "90a-real" if (major, minor) == (9, 0) else f"{major}{minor}-real"


def import_kernels():
    """llmkit.kernels, or None when it is not installed (any other missing module is an error)."""
    try:
        return importlib.import_module("llmkit.kernels")
    except ModuleNotFoundError as error:
        if error.name in ("llmkit.kernels", "llmkit.kernels._C"):
            return None
        raise


def ensure_built():
    """llmkit.kernels with CUDA compiled in and a GPU visible; builds and installs the repository's root
    project (pip, for this GPU's architecture only) when it is missing or was built without CUDA."""
    kernels = import_kernels()
    if kernels is not None and kernels._C.cuda_built():
        return checked_cuda(kernels)
    if kernels is not None and os.environ.get(REBUILT_ENV):
        sys.exit(f"gpu_check: llmkit.kernels ({kernels._C.__file__}) still has no CUDA after the build above")
    print(
        "llmkit.kernels is " + ("built without CUDA" if kernels is not None else "not installed") + "; building it",
        flush=True,
    )
    if shutil.which("nvcc") is None:
        sys.exit("gpu_check: nvcc is not on PATH: CMake would build llmkit.kernels without its CUDA kernels")
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-v",  # CMake's output: the line "llmkit: CUDA kernels for architectures ..." says CUDA was found
        "--no-build-isolation",
        "--no-deps",
        f"-Ccmake.define.LLMKIT_CUDA_ARCHS={cuda_archs()}",
        str(ROOT),
    ]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    if kernels is not None or "llmkit.kernels._C" in sys.modules:
        # The old extension module stays loaded in this process: start again to import the new one.
        print("re-running gpu_check to load the new build", flush=True)
        os.environ[REBUILT_ENV] = "1"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    importlib.invalidate_caches()
    kernels = import_kernels()
    if kernels is None:
        sys.exit("gpu_check: llmkit.kernels is still not importable after the build above")
    return checked_cuda(kernels)


def checked_cuda(kernels):
    """`kernels` when its CUDA kernels are compiled in and see a GPU; else exits with the reason."""
    if not kernels._C.cuda_built():
        sys.exit(f"gpu_check: llmkit.kernels ({kernels._C.__file__}) was built without CUDA (nvcc not found by CMake)")
    if not kernels.cuda_available():
        sys.exit(f"gpu_check: llmkit.kernels has CUDA but sees {kernels._C.cuda_device_count()} GPUs")
    return kernels


def gpu_ms(function, repeats: int) -> float:
    """Median milliseconds of `function` on the current stream, by CUDA events."""
    function()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times)


@contextlib.contextmanager
def unchecked(kernels):
    """The CUDA ops without their range checks (each check waits for the kernel): for timing loops only."""
    kernels._C.set_cuda_checks(False)
    try:
        yield
    finally:
        kernels._C.set_cuda_checks(True)


def relative_error(actual, expected) -> float:
    expected = expected.float()
    return float((actual.float() - expected).abs().max() / expected.abs().max().clamp_min(1e-30))


class ContextBroken(Exception):
    """torch.cuda.synchronize() raised after a failed check: nothing after it can run on this GPU."""


class Report:
    """The table: each row printed and appended to `output` (when given) as it is checked."""

    HEADER = f"{'op':<26}{'case':<44}{'error':>10}{'tol':>8}{'ok':>4}{'native ms':>11}{'torch ms':>10}  peer"

    def __init__(self, output: Path | None = None):
        self.rows, self.failures = [], 0
        self.output = output
        self._file = None
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(output, "w", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def emit(self, line: str, console: bool = True) -> None:
        if console:
            print(line, flush=True)
        if self._file is not None:
            self._file.write(line + "\n")
            self._file.flush()

    def _row(self, op, case, error, tolerance, ok, native_ms, torch_ms, peer) -> None:
        if not self.rows:
            self.emit(self.HEADER + "\n" + "-" * len(self.HEADER))
        self.failures += not ok
        self.rows.append((op, case, error, tolerance, ok, native_ms, torch_ms, peer))
        timing = f"{native_ms:>11.3f}" if native_ms is not None else " " * 11
        timing += f"{torch_ms:>10.3f}" if torch_ms is not None else " " * 10
        self.emit(
            f"{op:<26}{case:<44}{error:>10.2e}{tolerance:>8.0e}{'yes' if ok else 'NO':>4}{timing}  {peer}".rstrip()
        )

    def check(self, op, case, error, tolerance, native_ms=None, torch_ms=None, peer=""):
        self._row(op, case, error, tolerance, error <= tolerance, native_ms, torch_ms, peer)

    def raised(self, op, case, error: BaseException) -> None:
        """A failed row for a check that raised; its traceback goes to the output file."""
        message = " ".join(f"{type(error).__name__}: {error}".split())
        self._row(op, case, math.nan, 0.0, False, None, None, "RAISED " + message[:300])
        self.emit("".join(traceback.format_exception(error)).rstrip(), console=False)

    @contextlib.contextmanager
    def attempt(self, op: str, case: str):
        """Runs the block; an exception becomes a failed row, then the GPU must still synchronize
        (else ContextBroken: the caller stops)."""
        try:
            yield
        except (ContextBroken, KeyboardInterrupt):
            raise
        except Exception as error:
            self.raised(op, case, error)
            if torch.cuda.is_initialized():
                try:
                    torch.cuda.synchronize()
                except Exception as broken:
                    raise ContextBroken(f"after {op} {case}: {type(broken).__name__}: {broken}") from broken

    def note(self, line: str) -> None:
        self.emit(line)

    def summary(self) -> None:
        failed = [row for row in self.rows if not row[4]]
        if failed:
            self.emit(f"\nfailed ({len(failed)}):")
            for op, case, error, tolerance, _, _, _, peer in failed:
                self.emit(f"  {op} | {case} | error {error:.2e} > {tolerance:.0e} {peer}".rstrip())
        self.emit(f"\n{len(self.rows) - self.failures} passed, {self.failures} failed")
        if self.output is not None:
            self.emit(f"the whole table: {self.output}")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def filled_cache(lens, kv_heads, head_dim, block_size, kv_dtype, dtype, device):
    from llmkit.core.ops import allocate, kv_quant

    g = torch.Generator(device=device).manual_seed(0)
    width = max(math.ceil(n / block_size) for n in lens)
    total = sum(math.ceil(n / block_size) for n in lens) + 2
    cache = allocate(total, kv_heads, block_size, head_dim, kv_dtype, dtype, device)
    order = torch.randperm(total, device=device, generator=g)
    tables = torch.zeros(len(lens), width, dtype=torch.int32, device=device)
    used = 0
    for b, n in enumerate(lens):
        blocks = math.ceil(n / block_size)
        tables[b, :blocks] = order[used : used + blocks].int()
        used += blocks
        positions = torch.arange(n, device=device)
        slots = tables[b].long()[positions // block_size] * block_size + positions % block_size
        key = torch.randn(n, kv_heads, head_dim, device=device, generator=g).to(dtype)
        value = torch.randn(n, kv_heads, head_dim, device=device, generator=g).to(dtype)
        for piece in positions.chunk(3):
            kv_quant.reshape_and_cache(key[piece], value[piece], cache, slots[piece])
    return cache, tables, torch.tensor(lens, dtype=torch.int32, device=device)


def attention_cases():
    """(kv_dtype, dtype, head_dim, gqa group, block size): every cache format at float32/bfloat16, head_dim
    64/128 and GQA 1/4/8 with 16-token blocks, then float16, head_dim 96/256 and 32-token blocks."""
    for kv_dtype in ("auto", "fp8_e4m3", "int8", "int4"):
        for dtype in (torch.float32, torch.bfloat16):
            for head_dim, group in ((64, 1), (128, 4), (128, 8)):
                yield kv_dtype, dtype, head_dim, group, 16
    for kv_dtype in ("auto", "fp8_e4m3", "int8", "int4"):
        yield kv_dtype, torch.float16, 128, 4, 16
        yield kv_dtype, torch.float16, 96, 2, 32
        yield kv_dtype, torch.bfloat16, 256, 4, 16
        yield kv_dtype, torch.float32, 64, 8, 32


def check_attention(kernels, report, repeats, device):
    from llmkit.core.ops import paged_attention

    for kv_dtype, dtype, head_dim, group, block_size in attention_cases():
        name = f"{kv_dtype} {str(dtype)[6:]} d{head_dim} gqa{group}" + (f" bs{block_size}" if block_size != 16 else "")
        with report.attempt("paged_attention", name):
            lens = [1, 17, 300, 1500]
            cache, tables, seq_lens = filled_cache(lens, 2, head_dim, block_size, kv_dtype, dtype, device)
            query = torch.randn(len(lens), 2 * group, head_dim, device=device).to(dtype)
            expected = torch.empty_like(query)
            paged_attention.paged_attention_decode(expected, query, cache, tables, seq_lens, head_dim**-0.5)
            tolerance = 1e-5 if dtype == torch.float32 else 1e-2
            for split in (False, True):
                with report.attempt("paged_attention_decode", f"{name} split={split}"):
                    out = torch.empty_like(query)
                    kernels.paged_attention_decode(out, query, cache, tables, seq_lens, head_dim**-0.5, split=split)
                    report.check(
                        "paged_attention_decode", f"{name} split={split}", relative_error(out, expected), tolerance
                    )
            with report.attempt("paged_attention_prefill", name):
                starts = torch.tensor([0, 1, 9, 9 + 100, 9 + 100 + 7], device=device)
                prefill_query = torch.randn(int(starts[-1]), 2 * group, head_dim, device=device).to(dtype)
                expected = torch.empty_like(prefill_query)
                out = torch.empty_like(prefill_query)
                args = (prefill_query, cache, tables, seq_lens, starts, head_dim**-0.5)
                paged_attention.paged_attention_prefill(expected, *args)
                kernels.paged_attention_prefill(out, *args)
                report.check("paged_attention_prefill", name, relative_error(out, expected), tolerance)


def check_storage(kernels, report, device):
    from llmkit.core.ops import allocate, kv_quant, token_bitmask

    g = torch.Generator(device=device).manual_seed(1)
    for kv_dtype in ("fp8_e4m3", "int8", "int4"):
        with report.attempt("quantize/dequantize_kv", f"{kv_dtype} bit-exact"):
            x = torch.randn(64, 4, 16, 128, device=device, generator=g) * 3
            q, scales = kernels.quantize_kv(x, kv_dtype)
            expected_q, expected_scales = kv_quant.quantize_kv(x, kv_dtype)
            exact = torch.equal(q, expected_q) and torch.equal(scales, expected_scales)
            exact = exact and torch.equal(
                kernels.dequantize_kv(q, scales, kv_dtype), kv_quant.dequantize_kv(q, scales, kv_dtype)
            )
            report.check("quantize/dequantize_kv", f"{kv_dtype} bit-exact", 0.0 if exact else 1.0, 0.0)
    for kv_dtype in ("auto", "fp8_e4m3", "int8", "int4"):
        with report.attempt("reshape_and_cache", f"{kv_dtype} bit-exact"):
            native, reference = (allocate(8, 2, 16, 64, kv_dtype, torch.bfloat16, device) for _ in range(2))
            exact = True
            for step in range(6):  # growing magnitudes, restarts at offset 0, skipped slots
                slots = torch.randperm(8 * 16, device=device, generator=g)[:20]
                slots[0] = -1
                key = torch.randn(20, 2, 64, device=device, generator=g) * (step + 1)
                kv_quant.reshape_and_cache(key, key * 0.5, reference, slots)
                kernels.reshape_and_cache(key, key * 0.5, native, slots)
                for a, b in (
                    (native.key, reference.key),
                    (native.value, reference.value),
                    (native.key_scales, reference.key_scales),
                    (native.value_scales, reference.value_scales),
                ):
                    exact = exact and (a is None or torch.equal(a, b))
            report.check("reshape_and_cache", f"{kv_dtype} bit-exact", 0.0 if exact else 1.0, 0.0)
    for rows, vocab, case in (
        (16, 49_152, "49152 vocab, exact"),
        (70_000, 64, "70000 rows (> 65535 grid rows), exact"),
    ):
        with report.attempt("apply_token_bitmask_", case):
            logits = torch.randn(rows, vocab, device=device)
            bitmask = torch.randint(-(2**31), 2**31 - 1, (rows, vocab // 32), dtype=torch.int32, device=device)
            expected, actual = logits.clone(), logits.clone()
            token_bitmask.apply_token_bitmask_(expected, bitmask)
            kernels.apply_token_bitmask_(actual, bitmask)
            report.check("apply_token_bitmask_", case, 0.0 if torch.equal(actual, expected) else 1.0, 0.0)

    def decode_over(block_tables):
        kernels.paged_attention_decode(
            torch.empty(1, 2, 64, device=device),
            torch.randn(1, 2, 64, device=device),
            allocate(4, 2, 16, 64, device=device),
            block_tables,
            torch.ones(1, dtype=torch.int32, device=device),
            1.0,
        )

    bad = torch.full((1, 1), 10_000, dtype=torch.int32, device=device)
    good = torch.zeros((1, 1), dtype=torch.int32, device=device)
    with report.attempt("errors", "bad block id -> ValueError"):
        try:
            decode_over(bad)
            raised = False
        except ValueError as err:
            raised = "block_tables" in str(err)
        report.check("errors", "bad block id -> ValueError", 0.0 if raised else 1.0, 0.0)
    if device.type == "cuda":
        case = "unchecked bad id, then a good checked call"
        with report.attempt("errors", case):
            with unchecked(kernels):
                decode_over(bad)  # records its error bit; nobody takes it while checks are off
            try:
                decode_over(good)  # must not raise for the earlier call's input
                clean = True
            except ValueError:
                clean = False
            report.check("errors", case, 0.0 if clean else 1.0, 0.0)


def contiguous_kv(storage, tables, context):
    """[batch, kv_heads, context, head_dim]: the paged K or V of each sequence, copied contiguously."""
    blocks = storage[tables.long()].permute(0, 2, 1, 3, 4)
    return blocks.reshape(blocks.shape[0], blocks.shape[1], -1, blocks.shape[-1])[:, :, :context].contiguous()


def time_ops(kernels, report, repeats, device):
    from llmkit.core.ops import kv_quant

    for batch, context, heads, kv_heads, head_dim, dtype in (
        (32, 1024, 9, 3, 64, torch.float32),
        (64, 4096, 32, 8, 128, torch.bfloat16),
        (4, 32768, 32, 8, 128, torch.bfloat16),
    ):
        case = f"decode b{batch} ctx{context} {heads}/{kv_heads}h d{head_dim} {str(dtype)[6:]}"
        with report.attempt("decode timing", case):
            cache, tables, seq_lens = filled_cache([context] * batch, kv_heads, head_dim, 16, "auto", dtype, device)
            query = torch.randn(batch, heads, head_dim, device=device).to(dtype)
            out = torch.empty_like(query)
            scale = head_dim**-0.5

            key = contiguous_kv(cache.key, tables, context)
            value = contiguous_kv(cache.value, tables, context)
            with unchecked(kernels):
                decode = partial(kernels.paged_attention_decode, out, query, cache, tables, seq_lens, scale)
                native = gpu_ms(decode, repeats)
            sdpa = partial(F.scaled_dot_product_attention, query[:, :, None], key, value, scale=scale, enable_gqa=True)
            peer = gpu_ms(sdpa, repeats)
            expected = F.scaled_dot_product_attention(
                query[:, :, None].float(), key.float(), value.float(), scale=scale, enable_gqa=True
            )[:, :, 0]
            report.check(
                "decode timing",
                case,
                relative_error(out, expected),
                1e-5 if dtype == torch.float32 else 1e-2,
                native,
                peer,
                "SDPA contiguous K/V",
            )
    x = torch.randn(4096, 8, 16, 128, device=device)
    for kv_dtype in ("fp8_e4m3", "int8", "int4"):
        with report.attempt("quantize timing", f"{kv_dtype} 268 MB"):
            with unchecked(kernels):
                native = gpu_ms(partial(kernels.quantize_kv, x, kv_dtype), repeats)
            peer = gpu_ms(partial(kv_quant.quantize_kv, x, kv_dtype), repeats)
            report.check("quantize timing", f"{kv_dtype} 268 MB", 0.0, 0.0, native, peer, "torch reference")
    with report.attempt("bitmask timing", "256 x 49152"):
        logits = torch.randn(256, 49_152, device=device)
        bitmask = torch.randint(-(2**31), 2**31 - 1, (256, 1536), dtype=torch.int32, device=device)
        disallowed = torch.rand(256, 49_152, device=device) < 0.5
        with unchecked(kernels):
            native = gpu_ms(lambda: kernels.apply_token_bitmask_(logits, bitmask), repeats)
        peer = gpu_ms(lambda: logits.masked_fill_(disallowed, float("-inf")), repeats)
        report.check("bitmask timing", "256 x 49152", 0.0, 0.0, native, peer, "masked_fill_ (bool mask)")


# Formats llmkit cannot quantize into (gguf-py only dequantizes them): random bytes with random f16 scales
# at these byte offsets of each block.
RANDOM_BYTE_FORMATS = {"q5_k": (0, 2), "q6_k": (208,)}


def stored_weight(name, rows, cols, generator, device):
    """A QuantizedWeight of `name` holding random values (quantized, or random blocks for q5_k/q6_k)."""
    from llmkit.core.quant import FORMATS, QuantizedWeight, quantize

    fmt = FORMATS[name]
    if name not in RANDOM_BYTE_FORMATS:
        values = torch.randn(rows, cols, device=device, generator=generator)
        return quantize(values * (0.1 + torch.rand(rows, 1, device=device, generator=generator)), name)
    blocks = torch.randint(
        0, 256, (rows * cols // fmt.block_elems, fmt.block_bytes), device=device, generator=generator, dtype=torch.uint8
    )
    for offset in RANDOM_BYTE_FORMATS[name]:
        scales = ((torch.rand(len(blocks), device=device, generator=generator) - 0.5) * 0.02).half()
        blocks[:, offset : offset + 2] = scales.view(torch.uint8).reshape(-1, 2)
    return QuantizedWeight(blocks.reshape(rows, -1), fmt, rows, cols)


def check_quantized_matmul(kernels, report, repeats, device):
    """out = x @ dequantize(W).T (+ bias) for every weight format, against float64 torch on the dequantized
    weight; on CUDA, the refusals of a bias on another device and of int8 activations, then its timing next
    to torch's float32 matmul on the already dequantized weight."""
    ops = importlib.import_module("llmkit.kernels.ops")
    quantized_matmul = getattr(ops, "quantized_matmul", None)
    if quantized_matmul is None:
        report.note("quantized matmul: not built (llmkit.kernels.ops.quantized_matmul is missing); skipping its checks")
        return
    from llmkit.core.quant import FORMATS

    g = torch.Generator(device=device).manual_seed(2)
    for name, fmt in FORMATS.items():
        # rows: not a multiple of the GEMV (8) or GEMM (128) row tiles; plain formats: a column tail too
        rows, cols = 1000, 2304 if fmt.block_elems > 1 else 2309
        with report.attempt("quantized_matmul", f"{name} {rows}x{cols}"):
            weight = stored_weight(name, rows, cols, g, device)
            dense = weight.dequantize().double()
            for n in (1, 8, 512):
                case = f"{name} n{n} {rows}x{cols}" + (" +bias" if n == 8 else "")
                with report.attempt("quantized_matmul", case):
                    x = torch.randn(n, cols, device=device, generator=g)
                    bias = torch.randn(rows, device=device, generator=g) if n == 8 else None
                    expected = x.double() @ dense.T + (bias.double() if bias is not None else 0.0)
                    out = quantized_matmul(x, weight, bias)
                    report.check("quantized_matmul", case, relative_error(out, expected), 1e-5)
    if device.type != "cuda":
        return
    weight = stored_weight("q8_0", 64, 256, g, device)
    x = torch.randn(2, 256, device=device, generator=g)
    for case, call, message in (
        ("bias on the CPU -> ValueError", lambda: quantized_matmul(x, weight, torch.zeros(64)), "bias must be on"),
        ("int8 activations -> ValueError", lambda: quantized_matmul(x, weight, None, "int8"), "CPU only"),
    ):
        with report.attempt("errors", case):
            try:
                call()
                refused = False
            except ValueError as err:
                refused = message in str(err)
            report.check("errors", case, 0.0 if refused else 1.0, 0.0)
    rows, cols = 4096, 4096
    for name in FORMATS:
        with report.attempt("quantized_matmul timing", f"{name} {rows}x{cols}"):
            weight = stored_weight(name, rows, cols, g, device)
            dense = weight.dequantize()
            for n in (1, 8, 512):
                with report.attempt("quantized_matmul timing", f"{name} n{n} {rows}x{cols}"):
                    x = torch.randn(n, cols, device=device, generator=g)
                    with unchecked(kernels):
                        native = gpu_ms(partial(quantized_matmul, x, weight), repeats)
                    peer = gpu_ms(lambda x=x, dense=dense: x @ dense.T, repeats)
                    error = relative_error(quantized_matmul(x, weight), x.double() @ dense.double().T)
                    gb_per_s = weight.nbytes / native / 1e6
                    report.check(
                        "quantized_matmul timing",
                        f"{name} n{n} {rows}x{cols} ({gb_per_s:.0f} GB/s of W)",
                        error,
                        1e-5,
                        native,
                        peer,
                        "torch f32 x @ W.T (W dequantized)",
                    )


def tensor_parallel_plan(device_count: int, sizes: list[int] | None, model: str | None) -> tuple[str, list[int]]:
    """(the model, the sizes to run) or raises SkipSection with the reason: TP needs at least two GPUs and a size
    above 1 that divides the model (the default model's 9 heads split over 1 or 3 ranks)."""
    if device_count < 2:  # before the imports: llmkit.serve's dependencies need not be installed to skip
        raise SkipSection(f"{device_count} GPU visible; tensor parallelism needs at least 2 (one per rank)")
    from llmkit.core import load_pretrained
    from llmkit.core.errors import InvalidParameterError
    from llmkit.core.models.store import DEFAULT_MODEL, pull
    from llmkit.serve.parallel import check_shardable

    model = model or str(pull(DEFAULT_MODEL, quiet=True).path)
    loaded = load_pretrained(model).model
    wanted = sizes or range(1, device_count + 1)
    working = []
    for size in wanted:
        try:
            check_shardable(loaded, size)
        except InvalidParameterError:
            continue
        if size <= device_count:
            working.append(size)
    if 1 not in working:
        working.insert(0, 1)
    if len(working) < 2:
        raise SkipSection(f"no size in {list(wanted)} above 1 splits {model} over {device_count} GPUs")
    return model, working


class SkipSection(Exception):
    """A section that cannot run on this machine; the message says why."""


def check_tensor_parallel(report, device_count: int, sizes: list[int] | None, model: str | None) -> None:
    """TP 1 vs N on CUDA (NCCL for the model's collectives): greedy ids equal, throughput, all-reduce time."""
    try:
        model, sizes = tensor_parallel_plan(device_count, sizes, model)
    except SkipSection as reason:
        report.note(f"tensor parallel: skipped: {reason}")
        return
    spec = importlib.util.spec_from_file_location(
        "tensor_parallel_benchmark", ROOT / "benchmarks" / "tensor_parallel.py"
    )
    benchmark = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = benchmark  # its dataclasses look their module up
    spec.loader.exec_module(benchmark)
    prompts, _ = benchmark.golden_prompts(3)
    results = [benchmark.measure(model, size, prompts, device="cuda") for size in sizes]
    for result in results[1:]:
        same = result.greedy_ids == results[0].greedy_ids
        report.check("tensor_parallel", f"TP {result.size} greedy ids = TP 1 (NCCL)", 0.0 if same else 1.0, 0.0)
    benchmark.print_table(results, None, 32)


def default_output() -> Path | None:
    """$OUT/gpu_check.txt when OUT is set (the device machine's folder of files that come back)."""
    out = os.environ.get("OUT")
    return Path(out) / "gpu_check.txt" if out else None


def run_sections(kernels, report: Report, args, device: torch.device) -> None:
    """Every section in turn; a section that raises outside its cases' own checks is one failed row."""
    sections = [
        ("paged attention", partial(check_attention, kernels, report, args.repeats, device)),
        ("storage and errors", partial(check_storage, kernels, report, device)),
    ]
    if device.type == "cuda":
        sections.append(("timing", partial(time_ops, kernels, report, args.repeats, device)))
    sections.append(("quantized matmul", partial(check_quantized_matmul, kernels, report, args.repeats, device)))
    for name, section in sections:
        report.note(f"== {name}")
        with report.attempt(name, "section stopped"):
            section()
    if device.type != "cuda":
        return
    if args.skip_tensor_parallel:
        report.note("tensor parallel: skipped: --skip-tensor-parallel")
        return
    with report.attempt("tensor_parallel", "section stopped"):
        check_tensor_parallel(report, torch.cuda.device_count(), args.tp_sizes, args.tp_model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--tp-sizes", type=int, nargs="+", default=None, help="default: every size that fits")
    parser.add_argument("--tp-model", default=None, help="model for the tensor-parallel section (default model)")
    parser.add_argument("--skip-tensor-parallel", action="store_true")
    parser.add_argument(
        "--output", type=Path, default=default_output(), help="also write the table here (default: $OUT/gpu_check.txt)"
    )
    parser.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="cpu: a dry run of the checks on the CPU kernels as installed (no build, no timings)",
    )
    args = parser.parse_args(argv)
    if importlib.util.find_spec("gguf") is None:
        sys.exit(GGUF_MISSING)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here (torch.cuda.is_available() is False): nothing to check; exiting 0")
        return 0
    if args.device == "cuda":
        kernels = ensure_built()
        device = torch.device("cuda")
        platform = f"GPU: {torch.cuda.get_device_name(device)}; CUDA kernels registered: {kernels.cuda_available()}"
    else:
        kernels = import_kernels()
        if kernels is None:
            sys.exit("gpu_check --device cpu: llmkit.kernels is not installed")
        device = torch.device("cpu")
        platform = f"CPU dry run; CPU kernels: {kernels.cpu_isa()}; CUDA built: {kernels._C.cuda_built()}"
    report = Report(args.output)
    try:
        report.note(f"{platform}; torch {torch.__version__}; llmkit.kernels from {kernels.__file__}")
        run_sections(kernels, report, args, device)
    except ContextBroken as broken:
        report.note(f"STOPPED: the CUDA context is broken {broken}")
        report.failures += 1
    finally:
        report.summary()
        report.close()
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
