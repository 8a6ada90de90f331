"""The torch dequantize of GGUF block formats (the quantized kernels' specification) against gguf-py,
QuantizedWeight's checks, the format table and the quantized_matmul / dequantize_rows references."""

from __future__ import annotations

import secrets

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize

from llmkit.core import InvalidParameterError, ModelFormatError, ops
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.quant import FORMATS, QuantizedWeight, dequantize, format_of_ggml, row_bytes, weight_format

# byte offsets of each block's f16 scale fields: random bytes there could be inf/nan
F16_FIELDS = {"q8_0": (0,), "q4_0": (0,), "q4_1": (0, 2), "q5_0": (0,), "q5_1": (0, 2), "q4_k": (0, 2), "q5_k": (0, 2)}
F16_FIELDS["q6_k"] = (208,)


@pytest.fixture
def rng():
    seed = secrets.randbits(32)
    print(f"random seed {seed}")
    return np.random.default_rng(seed)


def random_blocks(rng, name: str, rows: int, blocks_per_row: int, finite: bool = False) -> np.ndarray:
    """Fresh random stored rows: every code bit random, f16 scale fields finite and of sane size.

    Float formats are random bytes (inf and nan included) unless `finite`."""
    fmt = FORMATS[name]
    if finite and fmt.block_elems == 1:
        values = torch.from_numpy(rng.standard_normal((rows, blocks_per_row)).astype(np.float32))
        return (
            values.to({"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[name])
            .view(torch.uint8)
            .numpy()
        )
    raw = rng.integers(0, 256, size=(rows, blocks_per_row, fmt.block_bytes), dtype=np.uint8)
    for offset in F16_FIELDS.get(name, ()):
        scales = (rng.standard_normal((rows, blocks_per_row)) * 0.02).astype(np.float16)
        raw[..., offset : offset + 2] = scales.view(np.uint8).reshape(rows, blocks_per_row, 2)
    return raw.reshape(rows, -1)


def blocks_per_row(name: str) -> int:
    return 96 if FORMATS[name].block_elems == 1 else 3


@pytest.mark.parametrize("name", list(FORMATS))
def test_dequantize_equals_gguf_exactly(rng, name):
    fmt = FORMATS[name]
    raw = random_blocks(rng, name, rows=5, blocks_per_row=blocks_per_row(name))
    cols = blocks_per_row(name) * fmt.block_elems
    ours = dequantize(torch.from_numpy(raw), fmt, cols)
    assert ours.dtype == torch.float32 and ours.shape == (5, cols)
    expected = gguf_dequantize(raw, fmt.ggml_type).reshape(5, cols)
    np.testing.assert_array_equal(ours.numpy(), expected)


@pytest.mark.parametrize("name", ["f32", "bf16", "q4_1", "q6_k"])
def test_dequantize_reads_a_misaligned_view(rng, name):
    """Data viewed out of a larger buffer at an odd offset (as from a memory-mapped file) reads the same."""
    fmt = FORMATS[name]
    raw = random_blocks(rng, name, rows=3, blocks_per_row=blocks_per_row(name))
    buffer = torch.zeros(raw.size + 1, dtype=torch.uint8)
    buffer[1:] = torch.from_numpy(raw).flatten()
    view = buffer[1:].view(3, -1)
    cols = blocks_per_row(name) * fmt.block_elems
    expected = dequantize(torch.from_numpy(raw), fmt, cols)
    np.testing.assert_array_equal(dequantize(view, fmt, cols).numpy(), expected.numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list(FORMATS))
def test_dequantize_on_cuda_equals_cpu(rng, name):
    fmt = FORMATS[name]
    raw = torch.from_numpy(random_blocks(rng, name, rows=4, blocks_per_row=blocks_per_row(name)))
    cols = blocks_per_row(name) * fmt.block_elems
    on_gpu = dequantize(raw.cuda(), fmt, cols).cpu()
    np.testing.assert_array_equal(on_gpu.numpy(), dequantize(raw, fmt, cols).numpy())


def weight_of(rng, name: str, rows: int = 6) -> QuantizedWeight:
    fmt = FORMATS[name]
    raw = torch.from_numpy(random_blocks(rng, name, rows, blocks_per_row(name), finite=True))
    return QuantizedWeight(raw, fmt, rows, blocks_per_row(name) * fmt.block_elems)


@pytest.mark.parametrize("name", ["q8_0", "q4_k", "q6_k"])
def test_dequantize_rows_returns_exactly_the_requested_rows(rng, name):
    weight = weight_of(rng, name)
    ids = torch.tensor([4, 0, 4, 2])
    assert torch.equal(ops.reference("dequantize_rows")(weight, ids), weight.dequantize()[ids])
    assert torch.equal(ops.dequantize_rows(weight, ids.to(torch.int32)), weight.dequantize()[ids])
    with pytest.raises(InvalidParameterError, match="1-D int32/int64"):
        ops.reference("dequantize_rows")(weight, torch.tensor([[1]]))


@pytest.mark.parametrize("name", ["f16", "q4_0", "q5_1", "q5_k"])
def test_quantized_matmul_reference_is_the_dequantized_product(rng, name):
    weight = weight_of(rng, name)
    x = torch.from_numpy(rng.standard_normal((3, weight.cols)).astype(np.float32))
    bias = torch.from_numpy(rng.standard_normal(weight.rows).astype(np.float32))
    dense = torch.from_numpy(gguf_dequantize(weight.data.numpy(), weight.format.ggml_type).reshape(weight.shape))
    reference = ops.reference("quantized_matmul")
    assert torch.equal(reference(x, weight), x @ dense.T)
    assert torch.equal(reference(x, weight, bias), x @ dense.T + bias)
    with pytest.raises(InvalidParameterError, match=rf"x must be a float \[N, {weight.cols}\]"):
        reference(x[:, 1:], weight)
    with pytest.raises(InvalidParameterError, match=rf"bias must be \[{weight.rows}\]"):
        reference(x, weight, bias[1:])


class FakeQuantizedMatmul:
    def __init__(self):
        self.calls = []

    @hookimpl
    def llmkit_register_kernels(self, register):
        register("quantized_matmul", "cpu", lambda *args: self.calls.append(args) or "fast", priority=10_000)


def test_quantized_matmul_dispatches_to_the_registered_kernel(rng, monkeypatch):
    weight, fake = weight_of(rng, "q8_0"), FakeQuantizedMatmul()
    x = torch.ones(1, weight.cols)
    register_plugin(fake, "fake-quantized-matmul")
    try:
        assert ops.quantized_matmul(x, weight) == "fast" and fake.calls == [(x, weight, None, "float32")]
        monkeypatch.setenv("LLMKIT_KERNELS", "reference")
        assert torch.equal(ops.quantized_matmul(x, weight), x @ weight.dequantize().T)
    finally:
        unregister_plugin("fake-quantized-matmul")


def test_quantized_weight_checks_its_data():
    q4 = weight_format("q4_0")
    good = torch.zeros(2, 36, dtype=torch.uint8)
    assert QuantizedWeight(good, q4, 2, 64).nbytes == 72
    with pytest.raises(InvalidParameterError, match="must be a uint8 tensor of stored bytes, got torch.float32"):
        QuantizedWeight(good.float(), q4, 2, 64)
    with pytest.raises(InvalidParameterError, match=r"must be 2-D \[rows, row_bytes\], got shape \(72,\)"):
        QuantizedWeight(good.flatten(), q4, 2, 64)
    with pytest.raises(InvalidParameterError, match="rows of 32 columns take 18 bytes, but the data has 36"):
        QuantizedWeight(good, q4, 2, 32)
    with pytest.raises(InvalidParameterError, match="says 3 rows but its q4_0 data holds 2"):
        QuantizedWeight(good, q4, 3, 64)
    with pytest.raises(InvalidParameterError, match="whole blocks of 32 elements; 48 columns"):
        QuantizedWeight(good, q4, 2, 48)
    with pytest.raises(InvalidParameterError, match="must be a WeightFormat"):
        QuantizedWeight(good, "q4_0", 2, 64)


def test_rows_subset_and_to(rng):
    weight = weight_of(rng, "q4_k")
    order = torch.tensor([5, 3, 1, 0])
    subset = weight.rows_subset(order)
    assert (subset.rows, subset.cols, subset.format) == (4, weight.cols, weight.format)
    assert torch.equal(subset.dequantize(), weight.dequantize()[order])
    assert torch.equal(weight.dequantize(torch.bfloat16), weight.dequantize().bfloat16())
    assert weight.to("cpu") is weight
    with pytest.raises(InvalidParameterError, match=r"row indices must lie in \[0, 6\)"):
        weight.rows_subset(torch.tensor([6]))


def test_format_table_and_its_errors():
    assert [fmt.kernel_code for fmt in FORMATS.values()] == list(range(11))
    assert list(FORMATS) == ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"]
    assert format_of_ggml(GGMLQuantizationType.Q4_K) is FORMATS["q4_k"]
    assert format_of_ggml(int(GGMLQuantizationType.Q6_K)) is FORMATS["q6_k"]
    assert row_bytes(FORMATS["q6_k"], 512) == 420 and row_bytes(FORMATS["bf16"], 3) == 6
    assert weight_format("Q5_K") is FORMATS["q5_k"]
    covered = "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k"
    with pytest.raises(ModelFormatError, match=f"GGUF tensor type IQ2_XXS is not covered; covered types: {covered}"):
        format_of_ggml(GGMLQuantizationType.IQ2_XXS)
    with pytest.raises(ModelFormatError, match="unknown type id 999"):
        format_of_ggml(999)
    with pytest.raises(InvalidParameterError, match=f"unknown weight format 'q3_k'; covered formats: {covered}"):
        weight_format("q3_k")
    with pytest.raises(InvalidParameterError, match="q4_k row holds whole blocks of 256 elements; 100 columns"):
        row_bytes(FORMATS["q4_k"], 100)
