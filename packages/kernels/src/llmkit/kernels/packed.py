"""Stored Q8_0/Q4_0/Q4_1 weights repacked for the int8-activation kernel (`_C.PackedInt8Weight`), one copy
per stored tensor, shared by the matmul op (the LM head) and the fused forward (the tied embedding's lookups)."""

from __future__ import annotations

from torch.utils.weak import WeakIdKeyDictionary

from llmkit.core.quant import QuantizedWeight

from . import _C

# Stored Q8_0/Q4_0/Q4_1 weights repacked for the int8-activation kernel (rows interleaved in groups of 8;
# csrc/cpu/int8_repack.h), one per stored tensor: (the tensor's version when packed, the packed weight).
_PACKED_FORMATS = ("q8_0", "q4_0", "q4_1")
_packed_int8: WeakIdKeyDictionary = WeakIdKeyDictionary()


def packed_for_int8(weight: QuantizedWeight):
    """The weight's repacked copy, built on first use and rebuilt if its tensor is written to
    (None for formats without one). Building it releases the stored tensor's pages when they are a
    read-only file mapping (a memory-mapped GGUF), so the copy does not double the weight's memory; a
    later read of the tensor faults them back from the file."""
    if weight.format.name not in _PACKED_FORMATS or weight.data.device.type != "cpu":
        return None
    entry = _packed_int8.get(weight.data)
    if entry is None or entry[0] != weight.data._version:
        packed = _C.PackedInt8Weight(weight.data, weight.format.name, weight.cols, release_stored=True)
        entry = (weight.data._version, packed)
        _packed_int8[weight.data] = entry
    return entry[1]
