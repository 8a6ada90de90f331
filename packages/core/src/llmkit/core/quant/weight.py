"""A weight matrix kept in its stored (GGUF block) format: the bytes plus what they mean."""

from __future__ import annotations

import dataclasses

import torch

from ..errors import InvalidParameterError
from . import reference
from .formats import WeightFormat


@dataclasses.dataclass(frozen=True)
class QuantizedWeight:
    """rows x cols values stored as `format` blocks; row r is `data[r]` (uint8 [rows, row_bytes]).

    `data` may be a view of a memory-mapped file: nothing here copies it unless asked.
    """

    data: torch.Tensor
    format: WeightFormat
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if not isinstance(self.format, WeightFormat):
            raise InvalidParameterError(f"QuantizedWeight.format must be a WeightFormat, got {self.format!r}")
        reference.check_data(self.data, self.format, self.cols)
        if self.data.shape[0] != self.rows:
            raise InvalidParameterError(
                f"QuantizedWeight says {self.rows} rows but its {self.format.name} data holds {self.data.shape[0]}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def nbytes(self) -> int:
        return self.data.numel()

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The values as a dense [rows, cols] tensor of `dtype` (computed in float32)."""
        return reference.dequantize(self.data, self.format, self.cols).to(dtype)

    def rows_subset(self, index: torch.Tensor) -> QuantizedWeight:
        """A new weight holding rows `index` in that order (copied), e.g. to permute Q/K rows at load."""
        if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype not in (torch.int32, torch.int64):
            raise InvalidParameterError("rows_subset takes a 1-D int32/int64 tensor of row indices")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.rows):
            raise InvalidParameterError(f"rows_subset: row indices must lie in [0, {self.rows})")
        data = self.data.index_select(0, index.to(device=self.data.device, dtype=torch.long))
        return QuantizedWeight(data, self.format, int(index.numel()), self.cols)

    def to(self, device: torch.device | str) -> QuantizedWeight:
        """The same weight on `device` (self when it is already there)."""
        data = self.data.to(device)
        return self if data is self.data else QuantizedWeight(data, self.format, self.rows, self.cols)

    def columns_slice(self, start: int, stop: int) -> QuantizedWeight:
        """Columns [start, stop) of every row (copied); both ends must lie on block boundaries, since a
        block's values share its scale, e.g. to split a row-parallel weight between tensor-parallel ranks."""
        elems = self.format.block_elems
        if not 0 <= start < stop <= self.cols or start % elems or stop % elems:
            raise InvalidParameterError(
                f"columns_slice({start}, {stop}): a {self.format.name} weight of {self.cols} columns splits only "
                f"at multiples of its {elems}-element blocks"
            )
        first, last = start // elems * self.format.block_bytes, stop // elems * self.format.block_bytes
        return QuantizedWeight(self.data[:, first:last].contiguous(), self.format, self.rows, stop - start)
