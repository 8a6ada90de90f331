"""QuantizedWeight.columns_slice: block-aligned column splits equal dequantize-then-slice."""

import pytest
import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.quant.quantize import quantize


@pytest.mark.parametrize("fmt", ["q8_0", "q4_1", "q4_k", "f16"])
def test_columns_slice_matches_dequantize_then_slice(fmt):
    weight = quantize(torch.randn(6, 512, generator=torch.Generator().manual_seed(0)), fmt)
    step = weight.format.block_elems * (256 // weight.format.block_elems if weight.format.block_elems < 256 else 1)
    dense = weight.dequantize()
    for start in range(0, 512, step):
        part = weight.columns_slice(start, start + step)
        assert part.shape == (6, step)
        assert part.nbytes * (512 // step) == weight.nbytes
        torch.testing.assert_close(part.dequantize(), dense[:, start : start + step], rtol=0, atol=0)


def test_columns_slice_off_a_block_boundary_is_a_clear_error():
    weight = quantize(torch.randn(2, 512), "q4_k")
    with pytest.raises(InvalidParameterError, match="multiples of its 256-element blocks"):
        weight.columns_slice(0, 192)
