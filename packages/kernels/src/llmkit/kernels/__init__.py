"""llmkit-kernels: native (C++ and CUDA) implementations of llmkit.core.ops, registered through pluggy.

Callers keep using `llmkit.core.ops`; this package only makes those ops faster. The functions here
take the same arguments as the references and may also be called directly.
"""

from . import _C
from .ops import (
    NATIVE_OPS,
    apply_token_bitmask_,
    dequantize_kv,
    paged_attention_decode,
    paged_attention_prefill,
    quantize_kv,
    reshape_and_cache,
)


def cpu_isa() -> str:
    """The instruction-set build the CPU kernels use ("avx512", "avx2" or "baseline")."""
    return _C.cpu_isa()


def cuda_available() -> bool:
    """Whether the CUDA kernels were compiled in and a GPU is visible now."""
    return _C.cuda_built() and _C.cuda_device_count() > 0


__all__ = [
    "NATIVE_OPS",
    "apply_token_bitmask_",
    "cpu_isa",
    "cuda_available",
    "dequantize_kv",
    "paged_attention_decode",
    "paged_attention_prefill",
    "quantize_kv",
    "reshape_and_cache",
]
