"""llmkit-kernels registers through the `llmkit` entry point and the dispatcher prefers it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

import llmkit.kernels
from llmkit.core import ops
from llmkit.kernels import _C, plugin

OPS = sorted(llmkit.kernels.NATIVE_OPS)


def test_the_native_kernels_are_what_core_dispatches_to_on_cpu():
    for op in OPS:
        assert ops.implementation(op, "cpu") is llmkit.kernels.NATIVE_OPS[op]
        (kernel,) = [k for k in ops.kernels()[(op, "cpu")] if k.implementation is llmkit.kernels.NATIVE_OPS[op]]
        assert "llmkit-kernels" in kernel.owner and kernel.priority == plugin.NATIVE_PRIORITY


def test_llmkit_kernels_reference_forces_the_references(monkeypatch):
    monkeypatch.setenv("LLMKIT_KERNELS", "reference")
    for op in OPS:
        assert ops.implementation(op, "cpu") is ops.reference(op)


def test_cuda_entries_exist_only_with_a_gpu():
    registered = {device for (_, device) in ops.kernels()}
    assert ("cuda" in registered) == (_C.cuda_built() and _C.cuda_device_count() > 0)
    assert llmkit.kernels.cuda_available() == ("cuda" in registered)


def test_dispatch_through_core_gives_the_reference_result():
    g = torch.Generator().manual_seed(2)
    cache = ops.allocate(4, 1, 16, 64, "int8")
    key, value = torch.randn(40, 1, 64, generator=g), torch.randn(40, 1, 64, generator=g)
    slots = torch.tensor([i for i in range(40)])
    ops.reshape_and_cache(key, value, cache, slots)
    tables, lens = torch.tensor([[0, 1, 2]], dtype=torch.int32), torch.tensor([40])
    query = torch.randn(1, 2, 64, generator=g)
    native, reference = torch.empty_like(query), torch.empty_like(query)
    ops.paged_attention_decode(native, query, cache, tables, lens, 0.125)
    ops.reference("paged_attention_decode")(reference, query, cache, tables, lens, 0.125)
    assert float((native - reference).abs().max()) <= 1e-5 * float(reference.abs().max())


def test_the_module_links_neither_torch_nor_a_cuda_runtime_library():
    ldd = subprocess.run(["ldd", _C.__file__], capture_output=True, text=True, check=True).stdout
    # Library names only: the load addresses ldd prints are random hex and may contain "c10".
    linked = [Path(line.split()[0]).name for line in ldd.splitlines() if line.strip()]
    assert linked, ldd
    forbidden = [name for name in linked if name.startswith(("libtorch", "libc10", "libcudart"))]
    assert not forbidden, ldd
    assert _C.cpu_isa() in _C.supported_cpu_isas()
