"""Scaling on the engine: the n samples of a strategy share the prompt's KV blocks (computed once)."""

from __future__ import annotations

from llmkit.core import SamplingParams
from llmkit.core.scaling import BackendSampler, self_consistency
from llmkit.serve.backend import EngineBackend

PROMPT = list(range(3, 3 + 70))  # 4 full blocks of 16 (64 tokens) + 6


def test_n_samples_compute_the_prompt_once(make_engine):
    engine = make_engine()
    sampler = BackendSampler(EngineBackend(engine), SamplingParams(temperature=1.0, max_tokens=6, seed=3))
    before = engine.stats()
    result = self_consistency(sampler, engine.tokenizer.decode(PROMPT), 8, answer="exact")
    after = engine.stats()
    prompt = result.cost.prompt_tokens
    assert result.cost.samples == 8 and len(result.samples) == 8
    # the first sample computes the whole prompt; the other 7 reuse its full blocks and compute the tail
    full = (prompt - 1) // 16 * 16
    assert result.cost.prompt_tokens_reused == 7 * full
    assert result.cost.prompt_tokens_computed == prompt + 7 * (prompt - full)
    assert after.prefix_cache_hit_blocks - before.prefix_cache_hit_blocks == 7 * full // 16
    assert result.cost.generated_tokens == sum(result.completion_tokens) > 0
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_n_samples_in_one_engine_request_share_blocks(make_engine):
    engine = make_engine()
    output = engine.generate([PROMPT], SamplingParams(temperature=1.0, n=8, max_tokens=4, seed=1), progress=False)[0]
    assert [c.cached_prompt_tokens for c in output.completions] == [0] + [64] * 7
    assert engine.stats().prefix_cache_hit_blocks == 7 * 4
