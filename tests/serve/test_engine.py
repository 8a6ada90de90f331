"""The engine on a tiny random model against core's reference generate()."""

from __future__ import annotations

import random

import pytest

from llmkit.core import InvalidParameterError, SamplingParams, generate

GREEDY = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)


def mixed_prompts(count=20, seed=0, shared=0):
    rng = random.Random(seed)
    prefix = [rng.randrange(3, 384) for _ in range(shared)]
    return [prefix + [rng.randrange(3, 384) for _ in range(rng.randint(1, 70))] for _ in range(count)]


def reference(tiny, prompts, params):
    return [generate(tiny.model, tiny.tokenizer, [p], params)[0].completions[0].token_ids for p in prompts]


def engine_ids(engine, prompts, params):
    return [o.completions[0].token_ids for o in engine.generate(prompts, params, progress=False)]


def assert_drained(engine):
    assert not engine.has_unfinished() and engine.requests == {}
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


@pytest.mark.parametrize(
    "config",
    [
        dict(),
        dict(max_num_batched_tokens=16, max_num_seqs=4),  # chunked prefill, few seats
        dict(enable_prefix_caching=False, block_size=32),
    ],
    ids=["default", "chunked", "no-prefix-cache"],
)
def test_greedy_output_equals_reference(tiny, make_engine, config):
    prompts = mixed_prompts()
    engine = make_engine(**config)
    assert engine_ids(engine, prompts, GREEDY) == reference(tiny, prompts, GREEDY)
    assert_drained(engine)


def test_preemption_resumes_exactly(tiny, make_engine):
    prompts = mixed_prompts(seed=1)
    engine = make_engine(num_blocks=12, max_num_batched_tokens=64)  # 192 slots for 20 sequences
    assert engine_ids(engine, prompts, GREEDY) == reference(tiny, prompts, GREEDY)
    assert engine.stats().preemptions > 0
    assert_drained(engine)


def test_shared_prefix_comes_from_the_cache(tiny, make_engine):
    prompts = mixed_prompts(seed=2, shared=48)
    engine = make_engine()
    engine.generate(prompts[:1], GREEDY, progress=False)
    assert engine_ids(engine, prompts, GREEDY) == reference(tiny, prompts, GREEDY)
    stats = engine.stats()
    assert stats.prefix_cache_hit_blocks >= 3 * (len(prompts) - 1)
    assert_drained(engine)


def test_seeded_sampling_equals_reference_whatever_the_batch(tiny, make_engine):
    params = SamplingParams(temperature=0.9, top_p=0.95, seed=123, max_tokens=16, ignore_eos=True)
    prompts = mixed_prompts(count=6, seed=3)
    engine = make_engine(max_num_batched_tokens=32)
    assert engine_ids(engine, prompts, params) == reference(tiny, prompts, params)


def test_n_samples_logprobs_and_stop_strings_match_reference(tiny, make_engine):
    params = SamplingParams(temperature=1.0, seed=7, n=3, max_tokens=20, ignore_eos=True, logprobs=True, top_logprobs=2)
    prompt = mixed_prompts(count=1, seed=4)[0]
    expected = generate(tiny.model, tiny.tokenizer, [prompt], params)[0]
    actual = make_engine().generate([prompt], params, progress=False)[0]
    for mine, theirs in zip(actual.completions, expected.completions, strict=True):
        assert mine.token_ids == theirs.token_ids and mine.text == theirs.text
        assert max(abs(a - b) for a, b in zip(mine.logprobs, theirs.logprobs, strict=True)) < 1e-4
        assert [list(t) for t in mine.top_logprobs] == [list(t) for t in theirs.top_logprobs]
    stop = expected.completions[0].text[4:6]
    with_stop = params.replace(stop=(stop,), n=1)
    assert make_engine().generate([prompt], with_stop, progress=False)[0].completions[0].text == (
        generate(tiny.model, tiny.tokenizer, [prompt], with_stop)[0].completions[0].text
    )


def test_abort_mid_flight_frees_every_block(make_engine):
    engine = make_engine()
    ids = [engine.add_request(p, GREEDY) for p in mixed_prompts(count=8, seed=5)]
    for _ in range(3):
        engine.step()
    for request_id in ids[::2]:
        assert engine.abort(request_id)
    assert not engine.abort("no-such-request")
    while engine.has_unfinished():
        engine.step()
    assert_drained(engine)


def test_update_weights_invalidates_the_prefix_cache(tiny, make_engine):
    engine = make_engine()
    prompt = mixed_prompts(count=1, seed=6, shared=40)[0]
    engine.generate([prompt], GREEDY, progress=False)
    assert engine.block_manager.cached_prefix_blocks(engine_seq(engine, prompt))
    engine.update_weights({"norm.weight": tiny.model.norm.weight.detach().clone()})
    assert not engine.block_manager.cached_prefix_blocks(engine_seq(engine, prompt))
    with pytest.raises(InvalidParameterError, match="unknown parameters"):
        engine.update_weights({"nope.weight": tiny.model.norm.weight})


def engine_seq(engine, prompt):
    from llmkit.serve.sequence import Sequence

    return Sequence(-1, "probe", 0, list(prompt), GREEDY, 0, engine.tokenizer, 1)


def test_requests_that_cannot_fit_are_refused(make_engine):
    engine = make_engine(num_blocks=2, block_size=16)
    with pytest.raises(InvalidParameterError, match="needs up to 40 KV slots; the cache holds 32"):
        engine.add_request(list(range(3, 23)), SamplingParams(max_tokens=20))
    with pytest.raises(InvalidParameterError, match="empty"):
        engine.add_request([], GREEDY)
    from llmkit.core import ContextLengthError

    with pytest.raises(ContextLengthError):
        make_engine().add_request([5] * 300, GREEDY)


def test_kv_budget_sizes_the_cache(tiny):
    from llmkit.serve.engine import Engine

    engine = Engine(tiny, kv_cache_memory="1MiB")
    per_token = 2 * 2 * 16 * 4 * 2  # K+V, kv heads, head_dim, fp32, layers
    assert engine.capacity_tokens == (2**20 // (per_token * 16)) * 16
    assert "KV cache:" in engine.describe() and f"{engine.capacity_tokens} tokens" in engine.describe()
    with pytest.raises(InvalidParameterError, match="use bytes with a unit"):
        Engine(tiny, kv_cache_memory="lots")


def test_prompt_logprobs_match_the_reference(tiny, make_engine):
    params = SamplingParams(temperature=0, max_tokens=3, ignore_eos=True, prompt_logprobs=True)
    prompts = mixed_prompts(count=3, seed=8, shared=20)
    expected = [generate(tiny.model, tiny.tokenizer, [p], params)[0].prompt_logprobs for p in prompts]
    engine = make_engine(max_num_batched_tokens=16)  # chunked, so logprobs span several steps
    engine.generate(prompts[:1], params.replace(prompt_logprobs=False), progress=False)  # warm the prefix cache
    actual = [o.prompt_logprobs for o in engine.generate(prompts, params, progress=False)]
    for mine, theirs, prompt in zip(actual, expected, prompts, strict=True):
        assert len(mine) == len(theirs) == len(prompt) and mine[0] is None and theirs[0] is None
        assert max(abs(a - b) for a, b in zip(mine[1:], theirs[1:], strict=True)) < 1e-4


def test_quantized_cache_without_native_kernels_is_refused(tiny, monkeypatch):
    from llmkit.core import ops
    from llmkit.serve.engine import Engine

    monkeypatch.delenv("LLMKIT_KERNELS", raising=False)
    monkeypatch.setattr(ops, "implementation", lambda op, device: ops.reference(op))
    with pytest.raises(InvalidParameterError, match="kv_cache_dtype='int8' needs native kernels on cpu"):
        Engine(tiny, num_blocks=16, kv_cache_dtype="int8")
    monkeypatch.setenv("LLMKIT_KERNELS", "reference")
    assert Engine(tiny, num_blocks=16, kv_cache_dtype="int8").config.kv_cache_dtype == "int8"


def test_unknown_engine_option_is_named(tiny):
    from llmkit.serve.engine import Engine

    with pytest.raises(InvalidParameterError, match=r"unknown engine option\(s\) \['max_seqs'\]"):
        Engine(tiny, max_seqs=4)


def test_default_activations_are_int8_on_stored_layers_only(tiny_model_dir):
    """The engine's int8 default applies to layers kept as stored; a dense float model loads as it is
    (an explicit activations='int8' on it stays an error)."""
    from llmkit.core.models.quantized import QuantizedLinear
    from llmkit.serve import Engine

    dense = Engine(str(tiny_model_dir), num_blocks=16)
    assert not any(isinstance(m, QuantizedLinear) for m in dense.pretrained.model.modules())
    stored = Engine(str(tiny_model_dir), quantize="q8_0", num_blocks=16)
    layers = [m for m in stored.pretrained.model.modules() if isinstance(m, QuantizedLinear)]
    assert layers and all(m.activations == "int8" for m in layers)
    assert "activations int8" in stored.describe()
    explicit = Engine(str(tiny_model_dir), quantize="q8_0", activations="float32", num_blocks=16)
    assert all(
        m.activations == "float32" for m in explicit.pretrained.model.modules() if isinstance(m, QuantizedLinear)
    )
    with pytest.raises(InvalidParameterError, match="needs weights kept as stored"):
        Engine(str(tiny_model_dir), activations="int8", num_blocks=16)
