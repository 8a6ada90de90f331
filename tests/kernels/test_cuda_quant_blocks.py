"""The CUDA quantized matmul's block decoders (csrc/cuda/quant_blocks.cuh), compiled by nvcc as host code,
equal gguf-py's dequantize bit for bit on random blocks of every weight format. Runs without a GPU."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

from llmkit.core.quant.formats import FORMATS

ROOT = Path(__file__).resolve().parents[2]
HOST_PROGRAM = Path(__file__).with_name("quant_blocks_host.cu")
ROWS = 6
# Formats gguf-py can quantize get real quantized rows; for the K-quants (dequantize only in gguf-py)
# random bytes with random half scales stand in. Plain formats use a column count that is not a multiple of 8.
QUANTIZABLE = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "bf16"}
K_QUANT_HALF_OFFSETS = {"q4_k": (0, 2), "q5_k": (0, 2), "q6_k": (208,)}


@pytest.fixture(scope="module")
def host_decoder(tmp_path_factory) -> Path:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not on PATH: the CUDA block decoders are compiled by nvcc (as host code) for this check")
    binary = tmp_path_factory.mktemp("quant_blocks") / "quant_blocks_host"
    # -ffp-contract=off: no fused multiply-adds, so the float operations round exactly as numpy's do.
    command = [nvcc, "-std=c++17", "-O2", "-Xcompiler", "-ffp-contract=off", f"-I{ROOT / 'csrc'}", str(HOST_PROGRAM)]
    subprocess.run(
        [*command, "-o", str(binary)], check=True, capture_output=True, text=True, timeout=120, env=plain_env()
    )
    return binary


def plain_env() -> dict[str, str]:
    """This environment without the sanitizer session's LD_PRELOAD of libasan, which crashes nvcc's own
    tools and means nothing to the uninstrumented host program."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS")}


def random_halves(rng: np.random.Generator, count: int) -> np.ndarray:
    """Finite float16 values of both signs, some of them subnormal."""
    values = rng.uniform(-2.0, 2.0, count) * np.where(rng.random(count) < 0.2, 1e-5, 1.0)
    return values.astype(np.float16)


def stored_rows(name: str, cols: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 [ROWS, row_bytes]: random rows stored in format `name`."""
    ggml_type = FORMATS[name].ggml_type
    values = (rng.standard_normal((ROWS, cols)) * rng.uniform(0.1, 8.0, (ROWS, 1))).astype(np.float32)
    if name in QUANTIZABLE:
        return quantize(values, ggml_type)
    if name == "f32":
        return values.view(np.uint8)
    if name == "f16":
        return random_halves(rng, ROWS * cols).reshape(ROWS, cols).view(np.uint8)
    block_elems, block_bytes = GGML_QUANT_SIZES[ggml_type]
    blocks = rng.integers(0, 256, (ROWS * cols // block_elems, block_bytes), dtype=np.uint8)
    for offset in K_QUANT_HALF_OFFSETS[name]:
        blocks[:, offset : offset + 2] = random_halves(rng, len(blocks)).view(np.uint8).reshape(-1, 2)
    return blocks.reshape(ROWS, -1)


@pytest.mark.parametrize("name", list(FORMATS))
def test_block_decoders_equal_gguf_dequantize(host_decoder, name):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    fmt = FORMATS[name]
    cols = 2 * 256 if fmt.block_elems > 1 else 8 * 5 + 3
    rows = stored_rows(name, cols, rng)
    assert rows.shape == (ROWS, cols // fmt.block_elems * fmt.block_bytes)
    result = subprocess.run(
        [str(host_decoder), str(fmt.kernel_code), str(cols)],
        input=rows.tobytes(),
        capture_output=True,
        check=True,
        timeout=30,
        env=plain_env(),
    )
    decoded = np.frombuffer(result.stdout, dtype=np.float32).reshape(ROWS, cols)
    expected = dequantize(rows, fmt.ggml_type).reshape(ROWS, cols)
    assert np.any(expected != 0)
    mismatched = np.argwhere(decoded.view(np.uint32) != expected.view(np.uint32))
    assert len(mismatched) == 0, (
        f"{name} (seed {seed}): {len(mismatched)} elements differ, first at (row, col) {tuple(mismatched[0])}: "
        f"{decoded[tuple(mismatched[0])]} != {expected[tuple(mismatched[0])]}"
    )


def test_format_codes_match_kernel_enum():
    """The host program switches on llmkit::WeightFormat codes; FORMATS must list them in the enum's order."""
    header = (ROOT / "csrc" / "common" / "kernel_args.h").read_text()
    enum_body = header.split("enum class WeightFormat : int32_t {", 1)[1].split("}", 1)[0]
    names = [item.strip()[1:].lower() for item in enum_body.split(",")]
    assert names == [fmt.name for fmt in sorted(FORMATS.values(), key=lambda f: f.kernel_code)]
