"""KV quantization and cache writes: native storage and scales bit for bit equal to the reference."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from kernel_helpers import MODEL_DTYPES, cpu_isa, random_values

from llmkit.core.ops import KV_DTYPES, allocate, kv_quant
from llmkit.kernels import _C, ops

QUANTIZED = ("fp8_e4m3", "int8", "int4")


def assert_same_cache(native, reference):
    assert torch.equal(native.key, reference.key)
    assert torch.equal(native.value, reference.value)
    if reference.key_scales is not None:
        assert torch.equal(native.key_scales, reference.key_scales)
        assert torch.equal(native.value_scales, reference.value_scales)


@given(
    kv_dtype=st.sampled_from(QUANTIZED),
    dtype=st.sampled_from(MODEL_DTYPES),
    shape=st.tuples(st.integers(1, 4), st.integers(1, 3), st.sampled_from([1, 16, 32]), st.sampled_from([32, 64, 128])),
    seed=st.integers(0, 2**31 - 1),
)
def test_quantize_and_dequantize_are_bit_exact(kv_dtype, dtype, shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = random_values(g, *shape, dtype=dtype)
    x[0, 0] = 0.0  # an all-zero block (scale 0) must quantize to zeros on both sides
    expected_q, expected_scales = kv_quant.quantize_kv(x, kv_dtype)
    expected_back = kv_quant.dequantize_kv(expected_q, expected_scales, kv_dtype)
    for isa in _C.supported_cpu_isas():
        with cpu_isa(isa):
            q, scales = ops.quantize_kv(x, kv_dtype)
            back = ops.dequantize_kv(q, scales, kv_dtype)
        assert q.dtype == expected_q.dtype and scales.dtype == expected_scales.dtype
        assert torch.equal(q, expected_q) and torch.equal(scales, expected_scales), isa
        assert torch.equal(back, expected_back), isa


def test_fp8_conversion_matches_torch_on_every_rounding_boundary():
    """Every e4m3 value, the midpoints between neighbours and one float ulp either side, both signs."""
    codes = torch.arange(0, 0x7F, dtype=torch.uint8)
    values = codes.view(torch.float8_e4m3fn).float()
    mids = (values[:-1] + values[1:]) / 2
    probes = torch.cat([values, mids, torch.nextafter(mids, torch.zeros(1)), torch.nextafter(mids, mids + 1)])
    probes = torch.cat([probes, -probes, torch.tensor([448.0, -448.0, 2.0**-10, 2.0**-12])])
    block = probes[: probes.numel() // 64 * 64].view(-1, 1, 1, 64) * 1.0
    block[:, :, :, 0] = 448.0  # pin every block's scale to 1 so the probes are converted as they are
    expected, expected_scales = kv_quant.quantize_kv(block, "fp8_e4m3")
    for isa in _C.supported_cpu_isas():
        with cpu_isa(isa):
            q, scales = ops.quantize_kv(block, "fp8_e4m3")
        assert torch.equal(scales, expected_scales) and torch.equal(q, expected), isa


@st.composite
def write_sequences(draw):
    """A sequence of reshape_and_cache calls: slots filled in order per block, restarts, skips (-1), growth."""
    block_size = draw(st.sampled_from([4, 16]))
    num_blocks = draw(st.integers(1, 4))
    calls = []
    for _ in range(draw(st.integers(1, 5))):
        count = draw(st.integers(0, min(2 * block_size, num_blocks * block_size + 1)))
        slots = draw(
            st.lists(st.integers(-1, num_blocks * block_size - 1), min_size=count, max_size=count, unique=True)
        )
        magnitude = draw(st.sampled_from([0.01, 1.0, 30.0]))
        calls.append((slots, magnitude))
    return block_size, num_blocks, calls


@given(
    kv_dtype=st.sampled_from(KV_DTYPES),
    dtype=st.sampled_from(MODEL_DTYPES),
    writes=write_sequences(),
    head_dim=st.sampled_from([32, 64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_reshape_and_cache_is_bit_exact_through_scale_growth_and_restarts(kv_dtype, dtype, writes, head_dim, seed):
    g = torch.Generator().manual_seed(seed)
    block_size, num_blocks, calls = writes
    heads = 2
    reference = allocate(num_blocks, heads, block_size, head_dim, kv_dtype, dtype)
    natives = {
        isa: allocate(num_blocks, heads, block_size, head_dim, kv_dtype, dtype) for isa in _C.supported_cpu_isas()
    }
    for slots, magnitude in calls:
        key = random_values(g, len(slots), heads, head_dim, dtype=dtype) * magnitude
        value = random_values(g, len(slots), heads, head_dim, dtype=dtype) * magnitude
        slot_mapping = torch.tensor(slots, dtype=torch.int64)
        kv_quant.reshape_and_cache(key, value, reference, slot_mapping)
        for isa, cache in natives.items():
            with cpu_isa(isa):
                ops.reshape_and_cache(key, value, cache, slot_mapping.int())
            assert_same_cache(cache, reference)


def test_float_cache_takes_other_input_dtypes_and_strided_rows():
    g = torch.Generator().manual_seed(11)
    qkv = random_values(g, 9, 3, 2, 64)  # a fused projection: key rows are strided views
    key, value = qkv[:, 1], qkv[:, 2]
    for cache_dtype in MODEL_DTYPES:
        reference = allocate(3, 2, 4, 64, "auto", cache_dtype)
        native = allocate(3, 2, 4, 64, "auto", cache_dtype)
        slots = torch.tensor([0, 1, 2, 3, -1, 8, 9, 10, 11])
        kv_quant.reshape_and_cache(key.bfloat16(), value, reference, slots)
        ops.reshape_and_cache(key.bfloat16(), value, native, slots)
        assert_same_cache(native, reference)
