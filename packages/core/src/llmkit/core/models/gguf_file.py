"""A GGUF file's metadata and tensor table, read with one pass over the header.

gguf-py's `GGUFReader` keeps a numpy view per metadata item: for a 49k-token vocabulary and its
merges that is ~100k arrays, ~150 MB of RSS while a model loads (measured on SmolLM2-135M). This
reader returns plain Python values and one memory map for the tensor data; gguf-py still supplies
the format's constants and the block dequantizers.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType
from gguf.quants import quant_shape_to_byte_shape

DEFAULT_ALIGNMENT = 32
_SCALARS = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_NUMPY_ITEMS = {
    GGMLQuantizationType.F32: np.float32,
    GGMLQuantizationType.F16: np.float16,
    GGMLQuantizationType.F64: np.float64,
    GGMLQuantizationType.I8: np.int8,
    GGMLQuantizationType.I16: np.int16,
    GGMLQuantizationType.I32: np.int32,
    GGMLQuantizationType.I64: np.int64,
}


class GGUFFormatError(ValueError):
    """The bytes are not a GGUF file this reader understands."""


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor as gguf-py describes it: `shape` in GGUF order (fastest dimension first), `data` a
    read-only view of the file (typed for float/int tensors, bytes per row for block formats)."""

    name: str
    tensor_type: GGMLQuantizationType
    shape: tuple[int, ...]
    data: np.ndarray


class _Cursor:
    def __init__(self, buffer: memoryview):
        self.buffer = buffer
        self.offset = 0

    def unpack(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from(fmt, self.buffer, self.offset)
        except struct.error:
            raise GGUFFormatError(f"file ends inside the header (at byte {self.offset})") from None
        self.offset += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        end = self.offset + length
        if end > len(self.buffer):
            raise GGUFFormatError(f"a string of {length} bytes at byte {self.offset} runs past the end of the file")
        raw = self.buffer[self.offset : end]
        self.offset = end
        try:
            return str(raw, "utf-8")
        except UnicodeDecodeError as err:
            raise GGUFFormatError(f"a string at byte {end - length} is not UTF-8 ({err.reason})") from None

    def value(self, kind: int) -> Any:
        if kind == GGUFValueType.STRING:
            return self.string()
        if kind == GGUFValueType.ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if item_kind == GGUFValueType.STRING:
                return [self.string() for _ in range(count)]
            if item_kind in _SCALARS:
                fmt = _SCALARS[GGUFValueType(item_kind)]
                size = struct.calcsize(fmt)
                if self.offset + size * count > len(self.buffer):
                    raise GGUFFormatError(f"an array of {count} items at byte {self.offset} runs past the end")
                items = np.frombuffer(self.buffer, dtype=np.dtype(fmt), count=count, offset=self.offset)
                self.offset += size * count
                return items.tolist()
            return [self.value(item_kind) for _ in range(count)]  # nested arrays
        if kind not in _SCALARS:
            raise GGUFFormatError(f"unknown metadata value type {kind} at byte {self.offset}")
        return self.unpack(_SCALARS[GGUFValueType(kind)])


class GGUFFile:
    """`fields`: metadata key -> Python value (arrays as lists); `tensors`: the tensor table in file order."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        cursor = _Cursor(memoryview(self._map))
        if bytes(cursor.buffer[:4]) != b"GGUF":
            raise GGUFFormatError("the file does not start with the GGUF magic")
        cursor.offset = 4
        version = cursor.unpack("<I")
        if version not in (2, 3):
            raise GGUFFormatError(
                f"GGUF version {version} (this reader reads versions 2 and 3, little-endian; "
                "a big-endian file shows a byte-swapped version)"
            )
        tensor_count, field_count = cursor.unpack("<Q"), cursor.unpack("<Q")
        self.fields: dict[str, Any] = {}
        for _ in range(field_count):
            key = cursor.string()
            self.fields[key] = cursor.value(cursor.unpack("<I"))
        table = [self._tensor_entry(cursor) for _ in range(tensor_count)]
        alignment = int(self.fields.get("general.alignment", DEFAULT_ALIGNMENT))
        if alignment <= 0 or alignment & (alignment - 1):
            raise GGUFFormatError(f"general.alignment {alignment} is not a power of two")
        data_start = -(-cursor.offset // alignment) * alignment
        self.tensors = [self._tensor(name, kind, dims, data_start + offset) for name, kind, dims, offset in table]
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise GGUFFormatError("the tensor table names a tensor twice")

    def drop_resident_pages(self) -> None:
        """Unmap this process's resident pages of the file (the header just parsed, tensors copied at load):
        the map is read-only and file-backed, so the kernel keeps them in its page cache and a later read
        faults them back unchanged. Only resident memory changes; on a system without `madvise` nothing does."""
        mapping = getattr(self._map, "_mmap", None)  # np.memmap's mmap.mmap of the whole file
        if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            mapping.madvise(mmap.MADV_DONTNEED)

    @staticmethod
    def _tensor_entry(cursor: _Cursor) -> tuple[str, int, tuple[int, ...], int]:
        name = cursor.string()
        dims = tuple(cursor.unpack("<Q") for _ in range(cursor.unpack("<I")))
        return name, cursor.unpack("<I"), dims, cursor.unpack("<Q")

    def _tensor(self, name: str, kind: int, dims: tuple[int, ...], start: int) -> GGUFTensor:
        try:
            tensor_type = GGMLQuantizationType(kind)
        except ValueError:
            raise GGUFFormatError(f"tensor {name!r} has unknown type id {kind}") from None
        block_size, type_size = GGML_QUANT_SIZES[tensor_type]
        elements = int(np.prod(dims, dtype=np.int64))
        if elements % block_size:
            raise GGUFFormatError(f"tensor {name!r}: {elements} elements are not whole {tensor_type.name} blocks")
        size = elements // block_size * type_size
        if start + size > len(self._map):
            raise GGUFFormatError(f"tensor {name!r} runs past the end of the file")
        shape = tuple(reversed(dims))
        raw = self._map[start : start + size]
        if tensor_type in _NUMPY_ITEMS:
            data = raw.view(_NUMPY_ITEMS[tensor_type]).reshape(shape)
        else:
            data = raw.reshape(quant_shape_to_byte_shape(shape, tensor_type))
        return GGUFTensor(name, tensor_type, dims, data)
