"""The int8-activation matmul on repacked weights (csrc/cpu/int8_repack.h: rows interleaved in groups of 8),
on every ISA build this CPU runs, against core's int8 reference (x rounded per 32 columns, weight
dequantized) and against the GGUF-layout int8 kernel, on fresh random inputs; and the release of a
memory-mapped weight's pages after repacking."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import torch
from kernel_helpers import cpu_isa, relative_error
from resident_memory import resident_kib

from llmkit.core import ops
from llmkit.core.quant import QuantizedWeight, quantize
from llmkit.kernels import _C
from llmkit.kernels import ops as native

ISAS = _C.supported_cpu_isas()
FORMATS = ("q8_0", "q4_0", "q4_1")


def fresh_generator() -> torch.Generator:
    return torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_packed_matmul_equals_the_int8_reference(isa, fmt):
    """Rows in full groups of 8 and in the rows % 8 tail, n = 1..17 (4-token tiles and their remainders),
    with and without a bias: equal to the reference and to the GGUF-layout kernel up to float order."""
    generator = fresh_generator()
    for rows in (8, 29, 64, 101):
        cols = 32 * int(torch.randint(1, 24, (1,), generator=generator))
        weight = quantize(torch.randn(rows, cols, generator=generator), fmt)
        packed = _C.PackedInt8Weight(weight.data, fmt, cols)
        assert (packed.rows, packed.cols, packed.nbytes) == (rows, cols, weight.data.numel())
        with cpu_isa(isa):
            for n in range(1, 18):
                x = torch.randn(n, cols, generator=generator) * (0.1 + 3 * torch.rand(n, 1, generator=generator))
                bias = torch.randn(rows, generator=generator) if n % 2 else None
                got = torch.empty(n, rows)
                packed.matmul(got, x, bias, 2)
                expected = ops.reference("quantized_matmul")(x, weight, bias, "int8")
                assert relative_error(got, expected) < 1e-5, (isa, fmt, rows, cols, n)
                gguf_layout = torch.empty(n, rows)
                _C.quant_matmul(gguf_layout, x, weight.data, fmt, cols, bias, 1, True)
                # Same integers, other float summation order: 1.2e-6 seen on the -O1 sanitizer build.
                assert relative_error(got, gguf_layout) < 1e-5, (isa, fmt, rows, cols, n)


@pytest.mark.parametrize("fmt", FORMATS)
def test_quantized_matmul_reuses_one_packed_copy_per_weight(fmt):
    generator = fresh_generator()
    weight = quantize(torch.randn(45, 256, generator=generator), fmt)
    x = torch.randn(3, 256, generator=generator)
    first = native.quantized_matmul(x, weight, None, "int8")
    packed = native._packed_for_int8(weight)
    assert packed is not None and native._packed_for_int8(weight) is packed
    assert torch.equal(native.quantized_matmul(x, weight, None, "int8"), first)
    # Writing the stored tensor repacks it on the next call.
    other = quantize(torch.randn(45, 256, generator=generator), fmt)
    weight.data.copy_(other.data)
    assert native._packed_for_int8(weight) is not packed
    expected = ops.reference("quantized_matmul")(x, other, None, "int8")
    assert relative_error(native.quantized_matmul(x, weight, None, "int8"), expected) < 1e-5
    assert native._packed_for_int8(quantize(torch.randn(8, 256, generator=generator), "q4_k")) is None


def test_bad_packed_arguments_name_what_is_wrong():
    weight = quantize(torch.randn(16, 64), "q4_0")
    with pytest.raises(ValueError, match="q8_0, q4_0 and q4_1"):
        _C.PackedInt8Weight(quantize(torch.randn(16, 256), "q4_k").data, "q4_k", 256)
    packed = _C.PackedInt8Weight(weight.data, "q4_0", 64)
    with pytest.raises(ValueError, match="x"):
        packed.matmul(torch.empty(2, 16), torch.randn(2, 32))
    with pytest.raises(ValueError, match="out"):
        packed.matmul(torch.empty(2, 15), torch.randn(2, 64))
    with pytest.raises(ValueError, match="bias"):
        packed.matmul(torch.empty(2, 16), torch.randn(2, 64), torch.randn(15))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux-only")
@pytest.mark.parametrize("fmt", FORMATS)
def test_release_drops_a_mapped_weights_pages_and_reads_fault_them_back(tmp_path, fmt):
    """A weight memory-mapped read-only from a file (as GGUF tensors are): after repacking with
    release_stored its pages leave the process (Rss falls), and reading the tensor again gives the
    file's bytes; the packed matmul is unchanged."""
    generator = fresh_generator()
    source = quantize(torch.randn(203, 2048, generator=generator), fmt)
    path = tmp_path / "weight.bin"
    path.write_bytes(source.data.numpy().tobytes())
    mapped = np.memmap(path, dtype=np.uint8, mode="r", shape=tuple(source.data.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns that the array is not writable
        data = torch.from_numpy(mapped)
    weight = QuantizedWeight(data, source.format, source.rows, source.cols)
    x = torch.randn(5, 2048, generator=generator)
    expected = ops.reference("quantized_matmul")(x, weight, None, "int8")  # touches every page
    before = resident_kib(data.data_ptr())
    packed = _C.PackedInt8Weight(weight.data, fmt, weight.cols, release_stored=True)
    assert packed.released
    assert resident_kib(data.data_ptr()) < before - data.numel() // 1024 // 2
    got = torch.empty(5, 203)
    packed.matmul(got, x)
    assert relative_error(got, expected) < 1e-5
    assert torch.equal(data, source.data)  # faulted back from the file
    assert torch.equal(ops.reference("quantized_matmul")(x, weight, None, "int8"), expected)


def test_release_leaves_anonymous_memory_alone():
    """A weight in ordinary (anonymous) memory is never released: dropping it would zero it."""
    weight = quantize(torch.randn(64, 4096), "q4_1")
    copy = weight.data.clone()
    packed = _C.PackedInt8Weight(weight.data, "q4_1", 4096, release_stored=True)
    assert not packed.released
    assert torch.equal(weight.data, copy)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="page release is Linux-only")
def test_release_also_drops_the_neighbours_pages_that_reads_fault_in(tmp_path):
    """A read fault maps the file's pages around it too (64 KiB), so packing a tensor pulled in the edges of
    the tensors beside it in the file; the release drops 64 KiB on each side as well (the file's bytes are
    unchanged when read again)."""
    generator = fresh_generator()
    weight = quantize(torch.randn(241, 1024, generator=generator), "q8_0")  # 262,208 bytes
    side = 1 << 18  # 256 KiB of other bytes before and after, as neighbouring tensors
    before, after = os.urandom(side), os.urandom(side)
    path = tmp_path / "three.bin"
    path.write_bytes(before + weight.data.numpy().tobytes() + after)
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        everything = torch.from_numpy(mapped)
    data = everything[side : side + weight.data.numel()].view(weight.rows, -1)
    assert int(everything.sum()) > 0  # every page resident
    total = resident_kib(everything.data_ptr())
    packed = _C.PackedInt8Weight(data, "q8_0", 1024, release_stored=True)
    assert packed.released
    # The weight's 256 KiB and 64 KiB on each side are gone (the old release dropped only the weight's pages).
    assert resident_kib(everything.data_ptr()) <= total - 256 - 128 + 8
    assert bytes(mapped[:side]) == before and bytes(mapped[-side:]) == after
    assert torch.equal(data, weight.data)
