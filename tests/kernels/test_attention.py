"""Paged attention (decode, split-K decode, prefill): native kernels against the reference."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from kernel_helpers import MODEL_DTYPES, RELATIVE_TOLERANCE, cpu_isa, paged_cache, random_values, relative_error

from llmkit.core.ops import KV_DTYPES, paged_attention
from llmkit.kernels import _C, ops

CASES = st.fixed_dictionaries(
    {
        "kv_dtype": st.sampled_from(KV_DTYPES),
        "model_dtype": st.sampled_from(MODEL_DTYPES),
        "block_size": st.sampled_from([16, 32]),
        "head_dim": st.sampled_from([64, 128]),
        "group": st.sampled_from([1, 2, 4, 8]),
        "num_kv_heads": st.integers(1, 2),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def tolerance(model_dtype):
    return RELATIVE_TOLERANCE[model_dtype]


@given(case=CASES, lens=st.lists(st.integers(1, 100), min_size=1, max_size=4), split=st.sampled_from([None, True]))
def test_decode_matches_the_reference(case, lens, split):
    g = torch.Generator().manual_seed(case["seed"])
    cache, tables, seq_lens = paged_cache(
        g, lens, case["num_kv_heads"], case["head_dim"], case["block_size"], case["kv_dtype"], case["model_dtype"]
    )
    heads = case["num_kv_heads"] * case["group"]
    query = random_values(g, len(lens), heads, case["head_dim"], dtype=case["model_dtype"])
    expected = torch.empty_like(query)
    scale = case["head_dim"] ** -0.5
    paged_attention.paged_attention_decode(expected, query, cache, tables, seq_lens, scale)
    for isa in _C.supported_cpu_isas():
        out = torch.full_like(query, float("nan"))
        with cpu_isa(isa):
            ops.paged_attention_decode(out, query, cache, tables, seq_lens, scale, split=split)
        assert relative_error(out, expected) <= tolerance(case["model_dtype"]), (isa, case, lens)


@given(
    kv_dtype=st.sampled_from(KV_DTYPES),
    lens=st.lists(st.integers(500, 1400), min_size=1, max_size=2),
    seed=st.integers(0, 2**31 - 1),
)
def test_long_decode_splits_into_partitions_and_matches(kv_dtype, lens, seed):
    g = torch.Generator().manual_seed(seed)
    cache, tables, seq_lens = paged_cache(g, lens, 1, 64, 16, kv_dtype, torch.float32)
    query = random_values(g, len(lens), 4, 64)
    expected = torch.empty_like(query)
    paged_attention.paged_attention_decode(expected, query, cache, tables, seq_lens, 0.125)
    for split in (None, False, True):  # None: automatic (splits when items < 2 x threads)
        out = torch.empty_like(query)
        ops.paged_attention_decode(out, query, cache, tables, seq_lens, 0.125, split=split)
        assert relative_error(out, expected) <= 1e-5, split


@given(
    case=CASES,
    sequences=st.lists(st.tuples(st.integers(0, 70), st.integers(0, 40)), min_size=1, max_size=4),
)
def test_prefill_matches_the_reference(case, sequences):
    g = torch.Generator().manual_seed(case["seed"])
    # (cached prefix, new tokens) per sequence; a sequence with no new tokens is skipped by both
    sequences = [(prefix, new) if prefix + new > 0 else (0, 1) for prefix, new in sequences]
    lens = [prefix + new for prefix, new in sequences]
    cache, tables, seq_lens = paged_cache(
        g, lens, case["num_kv_heads"], case["head_dim"], case["block_size"], case["kv_dtype"], case["model_dtype"]
    )
    new_tokens = torch.tensor([new for _, new in sequences])
    starts = torch.cat([torch.zeros(1, dtype=torch.int64), new_tokens.cumsum(0)])
    heads = case["num_kv_heads"] * case["group"]
    query = random_values(g, int(new_tokens.sum()), heads, case["head_dim"], dtype=case["model_dtype"])
    expected = torch.zeros_like(query)
    scale = case["head_dim"] ** -0.5
    paged_attention.paged_attention_prefill(expected, query, cache, tables, seq_lens, starts, scale)
    for isa in _C.supported_cpu_isas():
        out = torch.zeros_like(query)
        with cpu_isa(isa):
            ops.paged_attention_prefill(out, query, cache, tables, seq_lens, starts, scale)
        if query.shape[0]:
            assert relative_error(out, expected) <= tolerance(case["model_dtype"]), (isa, case, sequences)


@given(head_dim=st.sampled_from([32, 48, 96, 160]), seed=st.integers(0, 2**31 - 1))
def test_other_head_dims_take_the_generic_path(head_dim, seed):
    g = torch.Generator().manual_seed(seed)
    kv_dtype = "int4" if head_dim % 32 == 0 else "auto"
    cache, tables, seq_lens = paged_cache(g, [5, 40], 2, head_dim, 16, kv_dtype, torch.float32)
    query = random_values(g, 2, 6, head_dim)
    expected, out = torch.empty_like(query), torch.empty_like(query)
    paged_attention.paged_attention_decode(expected, query, cache, tables, seq_lens, 0.1)
    ops.paged_attention_decode(out, query, cache, tables, seq_lens, 0.1)
    assert relative_error(out, expected) <= 1e-5


def test_strided_query_and_out_rows_and_mixed_dtypes():
    g = torch.Generator().manual_seed(7)
    cache, tables, seq_lens = paged_cache(g, [33, 17, 64], 2, 64, 16, "auto", torch.bfloat16)
    packed = random_values(g, 3, 12, 64)  # query heads 0..3 of a wider projection: rows are strided
    query = packed[:, :4]
    expected = torch.empty(3, 4, 64, dtype=torch.float16)
    paged_attention.paged_attention_decode(expected, query, cache, tables, seq_lens, 0.125)
    wide_out = torch.zeros(3, 8, 64, dtype=torch.float16)
    ops.paged_attention_decode(wide_out[:, 2:6], query, cache, tables, seq_lens, 0.125)
    assert relative_error(wide_out[:, 2:6], expected) <= 1e-2
    assert not wide_out[:, :2].any() and not wide_out[:, 6:].any()


def test_block_tables_and_seq_lens_may_be_int64_and_wider_than_needed():
    g = torch.Generator().manual_seed(3)
    cache, tables, seq_lens = paged_cache(g, [20, 3], 1, 64, 16, "int8", torch.float32)
    padded = torch.cat([tables.long(), torch.full((2, 5), -1)], dim=1)  # unused entries are never read
    query = random_values(g, 2, 2, 64)
    expected, out = torch.empty_like(query), torch.empty_like(query)
    paged_attention.paged_attention_decode(expected, query, cache, tables, seq_lens, 0.125)
    ops.paged_attention_decode(out, query, cache, padded, seq_lens.long(), 0.125)
    assert relative_error(out, expected) <= 1e-5
