"""Weight storage formats: GGUF's block layouts, as the quantized matmuls read them.

A row of `cols` elements is `cols / block_elems` blocks of `block_bytes` bytes each, stored back
to back. The order of `FORMATS` is the order of `llmkit::WeightFormat` in csrc/common/kernel_args.h
(`kernel_code` is the enum's value).
"""

from __future__ import annotations

import dataclasses

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from ..errors import InvalidParameterError, ModelFormatError


@dataclasses.dataclass(frozen=True)
class WeightFormat:
    name: str
    block_elems: int
    block_bytes: int
    ggml_type: GGMLQuantizationType
    kernel_code: int


_ORDER = (
    GGMLQuantizationType.F32,
    GGMLQuantizationType.F16,
    GGMLQuantizationType.BF16,
    GGMLQuantizationType.Q8_0,
    GGMLQuantizationType.Q4_0,
    GGMLQuantizationType.Q4_1,
    GGMLQuantizationType.Q5_0,
    GGMLQuantizationType.Q5_1,
    GGMLQuantizationType.Q4_K,
    GGMLQuantizationType.Q5_K,
    GGMLQuantizationType.Q6_K,
)

FORMATS: dict[str, WeightFormat] = {
    ggml_type.name.lower(): WeightFormat(ggml_type.name.lower(), *GGML_QUANT_SIZES[ggml_type], ggml_type, code)
    for code, ggml_type in enumerate(_ORDER)
}

_BY_GGML_TYPE = {fmt.ggml_type: fmt for fmt in FORMATS.values()}


def covered() -> str:
    return ", ".join(FORMATS)


def weight_format(name: str) -> WeightFormat:
    """The format called `name` (case-insensitive: "q4_k", "Q8_0", "bf16", ...)."""
    fmt = FORMATS.get(str(name).strip().lower())
    if fmt is None:
        raise InvalidParameterError(f"unknown weight format {name!r}; covered formats: {covered()}")
    return fmt


def format_of_ggml(ggml_type: GGMLQuantizationType | int) -> WeightFormat:
    """The format of a GGUF tensor type; a type llmkit's kernels do not cover is a ModelFormatError."""
    fmt = _BY_GGML_TYPE.get(ggml_type)
    if fmt is None:
        try:
            type_name = GGMLQuantizationType(ggml_type).name
        except ValueError:
            type_name = f"unknown type id {int(ggml_type)}"
        raise ModelFormatError(f"GGUF tensor type {type_name} is not covered; covered types: {covered()}")
    return fmt


def row_bytes(fmt: WeightFormat, cols: int) -> int:
    """Bytes of one stored row of `cols` elements."""
    if cols <= 0 or cols % fmt.block_elems:
        raise InvalidParameterError(
            f"a {fmt.name} row holds whole blocks of {fmt.block_elems} elements; {cols} columns is not a positive "
            f"multiple of {fmt.block_elems}"
        )
    return cols // fmt.block_elems * fmt.block_bytes
