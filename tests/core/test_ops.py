"""The op references in llmkit.core.ops against independent dense math, and the dispatcher."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from llmkit.core import PluginError, ops
from llmkit.core.hookspecs import hookimpl
from llmkit.core.ops import kv_quant
from llmkit.core.ops.token_bitmask import unpack_bitmask
from llmkit.core.plugins import register_plugin, unregister_plugin

# How far attention over a quantized cache may drift from attention over the original floats.
QUANTIZATION_DRIFT = {"auto": 1e-5, "fp8_e4m3": 0.25, "int8": 0.05, "int4": 0.5}


def fill_cache(kv_dtype, lens, num_kv_heads=2, head_dim=64, block_size=16, seed=0, chunks=2):
    """Random K/V for sequences of `lens`, written into a paged cache in `chunks` writes each."""
    g = torch.Generator().manual_seed(seed)
    total = sum(math.ceil(n / block_size) for n in lens) + 3
    cache = ops.allocate(total, num_kv_heads, block_size, head_dim, kv_dtype)
    order = torch.randperm(total, generator=g)
    tables = torch.zeros(len(lens), max(math.ceil(n / block_size) for n in lens), dtype=torch.int32)
    keys, values, used = [], [], 0
    for b, n in enumerate(lens):
        blocks = math.ceil(n / block_size)
        tables[b, :blocks] = order[used : used + blocks].int()
        used += blocks
        k, v = torch.randn(n, num_kv_heads, head_dim, generator=g), torch.randn(n, num_kv_heads, head_dim, generator=g)
        slots = torch.tensor([int(tables[b, i // block_size]) * block_size + i % block_size for i in range(n)])
        for piece in torch.arange(n).chunk(chunks):
            ops.reshape_and_cache(k[piece], v[piece], cache, slots[piece])
        keys.append(k)
        values.append(v)
    return cache, tables, keys, values


def stored_kv(cache, table, length):
    """What the cache holds for one sequence, dequantized independently of the attention path: [L, Hkv, D]."""

    def one(storage, scales):
        blocks = storage if cache.kv_dtype == "auto" else ops.dequantize_kv(storage, scales, cache.kv_dtype)
        return blocks.float()[table.long()].transpose(1, 2).flatten(0, 1)[:length]

    return one(cache.key, cache.key_scales), one(cache.value, cache.value_scales)


def dense_attention(q, k, v, causal_offset=None):
    """q [H, Lq, D], k/v [L, Hkv, D] -> [H, Lq, D] with GQA by repetition."""
    group = q.shape[0] // k.shape[1]
    k, v = k.transpose(0, 1).repeat_interleave(group, 0), v.transpose(0, 1).repeat_interleave(group, 0)
    mask = None
    if causal_offset is not None:
        mask = torch.arange(k.shape[1])[None, :] <= (causal_offset + torch.arange(q.shape[1]))[:, None]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("kv_dtype", ops.KV_DTYPES)
@pytest.mark.parametrize("group", [1, 3])
def test_decode_reference_equals_dense_attention(kv_dtype, group):
    lens = [1, 15, 16, 17, 50]
    cache, tables, keys, values = fill_cache(kv_dtype, lens)
    query = torch.randn(len(lens), 2 * group, 64)
    out = torch.empty_like(query)
    ops.paged_attention_decode(out, query, cache, tables, torch.tensor(lens), 64**-0.5)
    for b, n in enumerate(lens):
        exact = dense_attention(query[b][:, None], *stored_kv(cache, tables[b], n))[:, 0]
        assert (out[b] - exact).abs().max() < 1e-5
        original = dense_attention(query[b][:, None], keys[b], values[b])[:, 0]
        assert (out[b] - original).abs().max() < QUANTIZATION_DRIFT[kv_dtype]


@pytest.mark.parametrize("kv_dtype", ["auto", "int8"])
def test_prefill_reference_reads_the_cached_prefix(kv_dtype):
    lens, new = [20, 33, 5], [4, 33, 1]  # sequence 1 has no cached prefix
    cache, tables, keys, values = fill_cache(kv_dtype, lens)
    starts = torch.tensor([0, *torch.tensor(new).cumsum(0).tolist()])
    query = torch.randn(sum(new), 4, 64)
    out = torch.empty_like(query)
    ops.paged_attention_prefill(out, query, cache, tables, torch.tensor(lens), starts, 64**-0.5)
    for b, (n, q_len) in enumerate(zip(lens, new, strict=True)):
        q = query[starts[b] : starts[b + 1]].transpose(0, 1)
        exact = dense_attention(q, *stored_kv(cache, tables[b], n), causal_offset=n - q_len).transpose(0, 1)
        assert (out[starts[b] : starts[b + 1]] - exact).abs().max() < 1e-5
        original = dense_attention(q, keys[b], values[b], causal_offset=n - q_len).transpose(0, 1)
        assert (out[starts[b] : starts[b + 1]] - original).abs().max() < QUANTIZATION_DRIFT[kv_dtype]


@pytest.mark.parametrize("kv_dtype", ["fp8_e4m3", "int8", "int4"])
def test_quantize_roundtrip_error_is_bounded(kv_dtype):
    x = torch.randn(5, 2, 16, 64) * torch.rand(5, 2, 1, 1) * 10
    q, scales = ops.quantize_kv(x, kv_dtype)
    back = ops.dequantize_kv(q, scales, kv_dtype)
    step = {"fp8_e4m3": 2**-3, "int8": 1 / 127, "int4": 1 / 7}[kv_dtype]
    if kv_dtype == "int4":  # per group of 32; the float16 scale may round by 2**-11
        amax = x.unflatten(-1, (-1, 32)).abs().amax(-1, keepdim=True).expand(-1, -1, -1, -1, 32).flatten(-2)
        assert ((back - x).abs() <= amax * (step / 2 + 2**-10) + 1e-6).all()
    elif kv_dtype == "fp8_e4m3":  # relative precision of 3 mantissa bits, plus the subnormal floor
        amax = x.abs().amax(dim=(-2, -1), keepdim=True)
        assert ((back - x).abs() <= x.abs() * step / 2 + amax * 2**-9 / 448 * 2).all()
    else:
        amax = x.abs().amax(dim=(-2, -1), keepdim=True)
        assert ((back - x).abs() <= amax * step / 2 + 1e-6).all()
    assert q.dtype == ops.allocate(1, 1, 16, 64, kv_dtype).key.dtype


def test_int4_packing_roundtrip():
    q = torch.randint(-8, 8, (3, 64), dtype=torch.int8)
    assert torch.equal(kv_quant.unpack_int4(kv_quant.pack_int4(q)), q)


def test_growing_block_scale_requantizes_what_the_block_holds():
    cache = ops.allocate(2, 1, 16, 64, "int8")
    small, large = torch.full((1, 1, 64), 0.5), torch.full((1, 1, 64), 8.0)
    ops.reshape_and_cache(small, small, cache, torch.tensor([0]))
    assert math.isclose(float(cache.key_scales[0, 0]), 0.5 / 127, rel_tol=1e-6)
    ops.reshape_and_cache(large, large, cache, torch.tensor([1]))
    assert math.isclose(float(cache.key_scales[0, 0]), 8.0 / 127, rel_tol=1e-6)
    blocks = ops.dequantize_kv(cache.key, cache.key_scales, "int8")
    assert abs(float(blocks[0, 0, 0, 0]) - 0.5) <= 8.0 / 127 / 2 + 1e-6
    assert abs(float(blocks[0, 0, 1, 0]) - 8.0) < 1e-5
    # a write at offset 0 restarts the block: the old large scale does not linger
    ops.reshape_and_cache(small, small, cache, torch.tensor([0]))
    assert math.isclose(float(cache.key_scales[0, 0]), 0.5 / 127, rel_tol=1e-6)


def test_negative_slots_are_skipped():
    cache = ops.allocate(2, 1, 16, 8)
    ops.reshape_and_cache(torch.ones(2, 1, 8), torch.ones(2, 1, 8), cache, torch.tensor([-1, 3]))
    assert cache.key[0, 0, 3].tolist() == [1.0] * 8 and cache.key.sum() == 8


def test_bitmask_reference():
    vocab = 70
    logits = torch.randn(3, vocab)
    allowed = torch.rand(3, vocab) < 0.3
    words = torch.zeros(3, 3, dtype=torch.int64)
    for row, token in allowed.nonzero().tolist():
        words[row, token // 32] |= 1 << (token % 32)
    bitmask = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    assert torch.equal(unpack_bitmask(bitmask, vocab), allowed)
    masked = logits.clone()
    ops.apply_token_bitmask_(masked, bitmask, torch.tensor([0, 2]))
    assert torch.equal(torch.isinf(masked[0]), ~allowed[0]) and torch.equal(masked[1], logits[1])
    assert torch.equal(masked[2][allowed[2]], logits[2][allowed[2]])
    with pytest.raises(ValueError, match="bitmask must have shape"):
        ops.apply_token_bitmask_(logits, bitmask[:, :2])


class FakeKernels:
    def __init__(self, priority):
        self.priority, self.calls = priority, []

    @hookimpl
    def llmkit_register_kernels(self, register):
        register("apply_token_bitmask_", "cpu", lambda *args: self.calls.append(args), priority=self.priority)


def test_dispatch_prefers_the_registered_kernel_and_honours_the_override(monkeypatch):
    fake = FakeKernels(priority=10)
    register_plugin(fake, "fake-kernels")
    try:
        logits, bitmask = torch.zeros(1, 32), torch.zeros(1, 1, dtype=torch.int32)
        ops.apply_token_bitmask_(logits, bitmask)
        assert len(fake.calls) == 1 and not torch.isinf(logits).any()
        monkeypatch.setenv("LLMKIT_KERNELS", "reference")
        ops.apply_token_bitmask_(logits, bitmask)
        assert len(fake.calls) == 1 and torch.isinf(logits).all()
        assert ops.implementation("apply_token_bitmask_", "cuda") is ops.reference("apply_token_bitmask_")
    finally:
        unregister_plugin("fake-kernels")


def test_kernel_collisions_and_unknown_ops_are_loud():
    first, second = FakeKernels(priority=5), FakeKernels(priority=5)
    register_plugin(first, "kernels-a")
    register_plugin(second, "kernels-b")
    try:
        with pytest.raises(PluginError, match="registered twice: by kernels-a and by kernels-b"):
            ops.apply_token_bitmask_(torch.zeros(1, 32), torch.zeros(1, 1, dtype=torch.int32))
    finally:
        unregister_plugin("kernels-a")
        unregister_plugin("kernels-b")
    with pytest.raises(PluginError, match="unknown op 'flash'"):
        ops.implementation("flash", "cpu")


def test_reference_refuses_meaningless_arguments():
    from llmkit.core import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="not a quantized format"):
        ops.reference("quantize_kv")(torch.randn(1, 1, 16, 64), "auto")
    cache = ops.allocate(2, 1, 16, 64)
    with pytest.raises(InvalidParameterError, match="seq_lens must be >= 1"):
        ops.reference("paged_attention_decode")(
            torch.empty(1, 1, 64),
            torch.randn(1, 1, 64),
            cache,
            torch.zeros(1, 1, dtype=torch.int32),
            torch.tensor([0]),
            0.125,
        )
