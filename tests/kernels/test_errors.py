"""Every bad argument is a ValueError/TypeError naming the argument; nothing is read out of range."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from foreign_tensors import K_DL_CUDA, K_DL_VULKAN, ForeignTensor
from kernel_helpers import paged_cache

from llmkit.core.ops import PagedKVCache, allocate
from llmkit.kernels import _C, ops


@pytest.fixture
def decode_inputs():
    g = torch.Generator().manual_seed(0)
    cache, tables, seq_lens = paged_cache(g, [20, 33], 2, 64, 16, "int8", torch.float32)
    query = torch.randn(2, 4, 64, generator=g)
    return torch.empty_like(query), query, cache, tables, seq_lens


def decode(out, query, cache, tables, seq_lens):
    ops.paged_attention_decode(out, query, cache, tables, seq_lens, 0.125)


def test_wrong_dtypes_are_type_errors_naming_the_argument(decode_inputs):
    out, query, cache, tables, seq_lens = decode_inputs
    with pytest.raises(TypeError, match=r"query must have dtype float32, bfloat16 or float16, got float64"):
        decode(out, query.double(), cache, tables, seq_lens)
    with pytest.raises(TypeError, match=r"block_tables must have dtype int32 or int64, got float32"):
        decode(out, query, cache, tables.float(), seq_lens)
    with pytest.raises(TypeError, match=r"seq_lens must have dtype int32 or int64, got int16"):
        decode(out, query, cache, tables, seq_lens.short())
    bad_scales = PagedKVCache(cache.key, cache.value, "int8", cache.key_scales.half(), cache.value_scales)
    with pytest.raises(TypeError, match=r"cache.key_scales must have dtype float32, got float16"):
        decode(out, query, bad_scales, tables, seq_lens)
    with pytest.raises(TypeError, match=r"cache.key must have dtype int8, got uint8"):
        decode(
            out,
            query,
            PagedKVCache(cache.key.view(torch.uint8), cache.value, "int8", *cache_scales(cache)),
            tables,
            seq_lens,
        )
    with pytest.raises(TypeError, match=r"slot_mapping must have dtype int32 or int64, got float32"):
        ops.reshape_and_cache(query[:, :2], query[:, :2], cache, torch.zeros(2))
    with pytest.raises(TypeError, match=r"bitmask must have dtype int32, got int64"):
        ops.apply_token_bitmask_(torch.zeros(1, 32), torch.zeros(1, 1, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"query must be a tensor"):
        _C.paged_attention_decode(out, [1.0], "auto", cache.key, cache.value, None, None, tables, seq_lens, 1.0)


def cache_scales(cache):
    return cache.key_scales, cache.value_scales


def test_wrong_shapes_are_value_errors_naming_the_argument(decode_inputs):
    out, query, cache, tables, seq_lens = decode_inputs
    with pytest.raises(ValueError, match=r"query must have size 64 in dimension 2 \(head_dim\)"):
        decode(torch.empty(2, 4, 32), torch.randn(2, 4, 32), cache, tables, seq_lens)
    with pytest.raises(ValueError, match=r"query must have a positive multiple of 2 heads"):
        decode(out[:, :3], query[:, :3], cache, tables, seq_lens)
    with pytest.raises(ValueError, match=r"out must have size 2 in dimension 0"):
        decode(out[:1], query, cache, tables, seq_lens)
    with pytest.raises(ValueError, match=r"block_tables must have 2 dimensions"):
        decode(out, query, cache, tables[0], seq_lens)
    with pytest.raises(ValueError, match=r"seq_lens must have size 2 in dimension 0"):
        decode(out, query, cache, tables, seq_lens[:1])
    with pytest.raises(ValueError, match=r"cache.value must have size"):
        decode(out, query, PagedKVCache(cache.key, cache.value[:-1], "int8", *cache_scales(cache)), tables, seq_lens)
    with pytest.raises(ValueError, match=r"cache.value_scales must have size"):
        decode(
            out,
            query,
            PagedKVCache(cache.key, cache.value, "int8", cache.key_scales, cache.value_scales[:-1]),
            tables,
            seq_lens,
        )
    with pytest.raises(ValueError, match=r"kv_dtype must be one of auto, fp8_e4m3, int8, int4, got 'int2'"):
        decode(out, query, PagedKVCache(cache.key, cache.value, "int2", *cache_scales(cache)), tables, seq_lens)
    with pytest.raises(ValueError, match=r"bitmask must have shape \(2, 2\) for logits \(2, 40\), got \(2, 1\)"):
        ops.apply_token_bitmask_(torch.zeros(2, 40), torch.zeros(2, 1, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"kv_dtype must be one of fp8_e4m3, int8, int4, got 'auto'"):
        ops.quantize_kv(torch.zeros(1, 1, 16, 64), "auto")
    with pytest.raises(ValueError, match=r"x needs head_dim divisible by 32 for int4"):
        ops.quantize_kv(torch.ones(1, 1, 16, 48), "int4")
    with pytest.raises(ValueError, match=r"x must have 4 dimensions"):
        ops.quantize_kv(torch.ones(16, 64), "int8")


def test_non_contiguous_tensors_are_rejected(decode_inputs):
    out, query, cache, tables, seq_lens = decode_inputs
    transposed = PagedKVCache(
        cache.key.transpose(2, 3).contiguous().transpose(2, 3), cache.value, "int8", *cache_scales(cache)
    )
    with pytest.raises(ValueError, match=r"cache.key must be contiguous, got strides"):
        decode(out, query, transposed, tables, seq_lens)
    heads_strided = torch.randn(4, 2, 64).transpose(0, 1)
    with pytest.raises(ValueError, match=r"query must be contiguous in its last 2 dimensions"):
        decode(out, heads_strided, cache, tables, seq_lens)
    with pytest.raises(ValueError, match=r"block_tables must be contiguous in its last 1 dimensions"):
        decode(out, query, cache, tables.t().contiguous().t(), seq_lens)
    with pytest.raises(ValueError, match=r"logits must be contiguous in its last 1 dimensions"):
        ops.apply_token_bitmask_(torch.zeros(64, 2).t(), torch.zeros(2, 2, dtype=torch.int32))


def test_ids_out_of_range_are_value_errors_and_nothing_is_read(decode_inputs):
    out, query, cache, tables, seq_lens = decode_inputs
    for bad in (cache.num_blocks, -1, 2**40):
        broken = tables.long().clone()
        broken[1, 2] = bad
        with pytest.raises(
            ValueError, match=rf"block_tables\[1, 2\] = {bad} is not a block id in \[0, {cache.num_blocks}\)"
        ):
            decode(out, query, cache, broken, seq_lens)
    for bad in (0, -5, tables.shape[1] * 16 + 1):
        with pytest.raises(ValueError, match=rf"seq_lens\[0\] = {bad} is outside \[1, {tables.shape[1] * 16}\]"):
            decode(out, query, cache, tables, torch.tensor([bad, 33]))
    key = torch.randn(3, 2, 64)
    capacity = cache.num_blocks * cache.block_size
    with pytest.raises(ValueError, match=rf"slot_mapping\[2\] = {capacity} is outside the cache's {capacity} slots"):
        ops.reshape_and_cache(key, key, cache, torch.tensor([0, -1, capacity]))
    with pytest.raises(ValueError, match=r"indices\[1\] = 2 is outside \[-2, 2\)"):
        ops.apply_token_bitmask_(torch.zeros(2, 32), torch.zeros(2, 1, dtype=torch.int32), torch.tensor([0, 2]))


def test_prefill_query_start_loc_must_be_consistent():
    g = torch.Generator().manual_seed(1)
    cache, tables, seq_lens = paged_cache(g, [10, 20], 1, 64, 16, "auto", torch.float32)
    query = torch.randn(6, 1, 64)
    out = torch.empty_like(query)

    def prefill(starts, lens=seq_lens):
        ops.paged_attention_prefill(out, query, cache, tables, lens, torch.tensor(starts), 0.125)

    with pytest.raises(ValueError, match=r"query_start_loc\[0\] must be 0"):
        prefill([1, 3, 6])
    with pytest.raises(ValueError, match=r"query_start_loc\[2\] must equal the number of query tokens 6"):
        prefill([0, 3, 5])
    with pytest.raises(ValueError, match=r"query_start_loc must not decrease"):
        prefill([0, 7, 6])
    with pytest.raises(ValueError, match=r"seq_lens\[1\] = 2 is outside \[3, 32\]"):
        prefill([0, 3, 6], torch.tensor([10, 2]))
    with pytest.raises(ValueError, match=r"query_start_loc must have size 3"):
        prefill([0, 6])


def test_devices_must_be_cpu_or_cuda_and_agree(decode_inputs):
    out, _, cache, tables, seq_lens = decode_inputs
    with pytest.raises(ValueError, match=r"query is on DLPack device type 7; expected a CPU or CUDA tensor"):
        _C.paged_attention_decode(
            out,
            ForeignTensor((2, 4, 64), K_DL_VULKAN),
            "auto",
            cache.key,
            cache.value,
            None,
            None,
            tables,
            seq_lens,
            1.0,
        )
    on_gpu = ForeignTensor((2, 4, 64), K_DL_CUDA)
    with pytest.raises(ValueError, match=r"query must be on the same device as cache.key \(cpu\), got cuda:0"):
        _C.paged_attention_decode(
            out, on_gpu, "int8", cache.key, cache.value, *cache_scales(cache), tables, seq_lens, 1.0
        )
    with pytest.raises(ValueError, match=r"bitmask must be on the same device as logits \(cpu\), got cuda:0"):
        _C.apply_token_bitmask(torch.zeros(1, 32), ForeignTensor((1, 1), K_DL_CUDA))


def test_read_only_outputs_are_rejected():
    logits = np.zeros((1, 32), dtype=np.float32)
    logits.flags.writeable = False
    with pytest.raises((ValueError, BufferError), match=r"logits|read"):
        _C.apply_token_bitmask(logits, np.zeros((1, 1), dtype=np.int32))


def test_quantized_scales_must_be_present():
    cache = allocate(2, 1, 16, 64, "fp8_e4m3")
    with pytest.raises(TypeError, match=r"cache.key_scales must be a tensor, got None"):
        ops.reshape_and_cache(
            torch.ones(1, 1, 64),
            torch.ones(1, 1, 64),
            PagedKVCache(cache.key, cache.value, "fp8_e4m3"),
            torch.tensor([0]),
        )
