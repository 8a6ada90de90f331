"""quant_matmul's device checks, without a GPU: `out` and `bias` on another device than x are refused
before any kernel reads them (on a GPU, a CPU bias had the CUDA kernel read a host pointer), and int8
activations off the CPU are refused rather than silently run as float32.

The foreign tensors claim a CUDA device but point at real host memory, so code without the checks runs the
CPU kernel to the end and the test sees no error."""

from __future__ import annotations

import pytest
import torch
from foreign_tensors import K_DL_CUDA, ForeignTensor, _DataType

from llmkit.core.quant import quantize
from llmkit.kernels import _C, ops

K_DL_UINT = 1


def claimed_on_cuda(tensor: torch.Tensor) -> ForeignTensor:
    """A DLPack view of the host tensor `tensor` (float32 or uint8) that says it lives on cuda:0."""
    foreign = ForeignTensor(tuple(tensor.shape), K_DL_CUDA)
    foreign._managed.dl_tensor.data = tensor.data_ptr()
    if tensor.dtype == torch.uint8:
        foreign._managed.dl_tensor.dtype = _DataType(K_DL_UINT, 8, 1)
    foreign.host = tensor  # keeps the memory alive
    return foreign


@pytest.fixture
def problem():
    weight = quantize(torch.randn(16, 64), "q8_0")
    return weight, torch.randn(3, 64), torch.empty(3, 16), torch.randn(16)


def test_bias_on_another_device_than_x_is_refused(problem):
    weight, x, out, bias = problem
    with pytest.raises(ValueError, match=r"bias must be on the same device as x \(cpu\), got cuda:0"):
        _C.quant_matmul(out, x, weight.data, "q8_0", 64, claimed_on_cuda(bias), 1, False, 0)


def test_out_on_another_device_than_x_is_refused(problem):
    weight, x, out, bias = problem
    with pytest.raises(ValueError, match=r"out must be on the same device as x \(cpu\), got cuda:0"):
        _C.quant_matmul(claimed_on_cuda(out), x, weight.data, "q8_0", 64, bias, 1, False, 0)


def test_packed_int8_bias_on_another_device_is_refused(problem):
    weight, x, out, bias = problem
    packed = _C.PackedInt8Weight(weight.data, "q8_0", 64)
    with pytest.raises(ValueError, match=r"bias must be on the same device as x \(cpu\), got cuda:0"):
        packed.matmul(out, x, claimed_on_cuda(bias), 1)


def test_int8_activations_off_the_cpu_are_refused_natively(problem):
    weight, x, out, _ = problem
    on_cuda = [claimed_on_cuda(t) for t in (out, x, weight.data)]
    with pytest.raises(ValueError, match=r"int8 activations run on the CPU only; x is on cuda:0"):
        _C.quant_matmul(on_cuda[0], on_cuda[1], on_cuda[2], "q8_0", 64, None, 1, True, 0)


def test_int8_activations_off_the_cpu_are_refused_by_the_op(problem):
    weight, _, _, _ = problem
    x = torch.empty(3, 64, device="meta")  # any device but the CPU; the check comes before the native call
    with pytest.raises(ValueError, match=r"int8 activations run on the CPU only; x is on meta"):
        ops.quantized_matmul(x, weight, None, "int8")
