"""Speculative decoding: exact at temperature 0, the target's distribution under sampling
(two-sample chi-square against plain sampling), exact block accounting, adaptive switch-off."""

from __future__ import annotations

import collections

import pytest
from scipy.stats import chi2_contingency

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.testing import write_tiny_model
from llmkit.serve.engine import Engine
from llmkit.serve.speculative import SpeculativeConfig
from llmkit.serve.speculative.proposers import Proposal

REPETITIVE = [5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7, 8, 9, 5, 6, 7]


@pytest.fixture(scope="module")
def draft_dir(tmp_path_factory):
    """A second tiny model with the same tokenizer (the BPE training is deterministic), other weights."""
    return write_tiny_model(tmp_path_factory.mktemp("draft"), seed=11, num_hidden_layers=1)


def configs(draft_dir):
    return {
        "ngram": SpeculativeConfig("ngram", num_tokens=4, ngram_min=1),
        "early_exit": SpeculativeConfig("early_exit", num_tokens=3, early_exit_layers=1),
        "draft": SpeculativeConfig("draft", num_tokens=3, draft_model=str(draft_dir), draft_num_blocks=64),
    }


def prompts():
    return [REPETITIVE, [*REPETITIVE[3:], 40, 41], list(range(50, 90)), [7, 8]]


@pytest.mark.parametrize("method", ["ngram", "early_exit", "draft"])
def test_greedy_output_identical_to_plain_decoding(tiny, draft_dir, method):
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True, logprobs=True)
    plain = Engine(tiny, num_blocks=128).generate(prompts(), params, progress=False)
    engine = Engine(tiny, num_blocks=128, speculative=configs(draft_dir)[method], max_num_batched_tokens=64)
    spec = engine.generate(prompts(), params, progress=False)
    for a, b in zip(spec, plain, strict=True):
        assert a.completions[0].token_ids == b.completions[0].token_ids
        assert max(abs(x - y) for x, y in zip(a.completions[0].logprobs, b.completions[0].logprobs, strict=True)) < 1e-4
    assert engine.speculator.stats.proposed > 0
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks
    if method == "ngram":
        assert engine.speculator.stats.accepted > 0


def speculated_tokens(engine, prompt, seeds):
    """Tokens 2 and 3 of each sample: the first comes from the prefill, the next ones from verification."""
    params = [SamplingParams(temperature=1.0, seed=s, max_tokens=5, ignore_eos=True) for s in seeds]
    outputs = engine.generate([prompt] * len(seeds), params, progress=False)
    return [tuple(o.completions[0].token_ids[1:3]) for o in outputs]


@pytest.fixture(scope="module")
def peaked(tmp_path_factory):
    """A tiny target with peaked next-token distributions and a draft model that differs from it."""
    target = load_pretrained(write_tiny_model(tmp_path_factory.mktemp("peaked"), seed=3, std=4.0))
    draft = write_tiny_model(tmp_path_factory.mktemp("peaked-draft"), seed=4, std=4.0, num_hidden_layers=1)
    base = [20, 21, 22, 23, 24, 25, 26, 27]
    continuation = Engine(target, num_blocks=64).generate(
        [base], SamplingParams(temperature=0, max_tokens=6, ignore_eos=True), progress=False
    )
    prompt = base + continuation[0].completions[0].token_ids + base  # prompt lookup proposes likely tokens
    return target, draft, prompt


@pytest.mark.parametrize("method", ["ngram", "early_exit", "draft"])
def test_sampling_keeps_the_target_distribution(peaked, method):
    """Pairs (t2, t3) drawn with speculation and without must come from one distribution."""
    target, draft, prompt = peaked
    seeds = range(1000)
    plain = speculated_tokens(Engine(target, num_blocks=512, max_num_seqs=256), prompt, seeds)
    config = configs(draft)[method]
    config.adaptive = False
    engine = Engine(target, num_blocks=512, max_num_seqs=256, speculative=config)
    spec = speculated_tokens(engine, prompt, [s + 10_000 for s in seeds])
    stats = engine.speculator.stats
    assert 0 < stats.accepted < stats.proposed, "both the accept and the reject branch must be exercised"
    counts_plain, counts_spec = collections.Counter(plain), collections.Counter(spec)
    common = [k for k in counts_plain if counts_plain[k] + counts_spec[k] >= 20]
    rest_plain = sum(v for k, v in counts_plain.items() if k not in common)
    rest_spec = sum(v for k, v in counts_spec.items() if k not in common)
    table = [[counts_plain[k] for k in common] + [rest_plain], [counts_spec[k] for k in common] + [rest_spec]]
    assert len(common) >= 3
    assert chi2_contingency(table).pvalue > 1e-3


class WrongProposer:
    """Always proposes tokens the tiny model never picks greedily: every draft is rejected."""

    name = "wrong"

    def propose(self, sequences, num_tokens):
        return [Proposal([383] * num_tokens) for _ in sequences]

    def release(self, seq):
        pass


def test_rejections_roll_back_blocks_and_speculation_switches_off(tiny):
    engine = Engine(tiny, num_blocks=64, block_size=4, speculative=SpeculativeConfig("ngram", num_tokens=4))
    engine.speculator.proposer = WrongProposer()
    params = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)
    request = engine.add_request(list(range(10, 21)), params)
    seq = engine.requests[request].sequences[0]
    while engine.has_unfinished():
        engine.step()
        if not seq.is_finished:
            assert -(-seq.num_computed_tokens // 4) <= len(seq.block_table) <= -(-seq.num_tokens // 4), (
                "rejected drafts left blocks behind"
            )
            assert seq.num_computed_tokens == seq.num_tokens - 1
    assert engine.speculator.stats.accepted == 0 and engine.speculator.stats.disabled_sequences == 1
    assert seq.speculation.proposals == engine.speculator.config.min_proposals
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def test_greedy_speculation_on_the_default_model_matches_reference(smollm2):
    """Copy-heavy prompt: prompt lookup accepts many drafts and changes nothing."""
    text = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n"
    prompt = smollm2.chat_prompt([{"role": "user", "content": f"Repeat this code exactly:\n{text}"}])
    params = SamplingParams(temperature=0, max_tokens=40, ignore_eos=True)
    plain = Engine(smollm2, num_blocks=64).generate([prompt], params, progress=False)[0].completions[0].token_ids
    engine = Engine(smollm2, num_blocks=64, speculative=SpeculativeConfig("ngram", num_tokens=5))
    spec = engine.generate([prompt], params, progress=False)[0].completions[0].token_ids
    assert spec == plain
    assert engine.speculator.stats.mean_accepted_length > 1.0


def test_bad_speculative_configs(tiny):
    from llmkit.core import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="method must be one of"):
        Engine(tiny, num_blocks=16, speculative=SpeculativeConfig("magic"))
    with pytest.raises(InvalidParameterError, match="needs draft_model"):
        Engine(tiny, num_blocks=16, speculative=SpeculativeConfig("draft"))
    other = write_tiny_model(load_pretrained.__globals__["Path"]("/tmp") / "llmkit-vocab-mismatch", vocab_size=320)
    with pytest.raises(InvalidParameterError, match="share the target's tokenizer"):
        Engine(tiny, num_blocks=16, speculative=SpeculativeConfig("draft", draft_model=str(other)))


def test_speculation_metrics_are_exported(tiny):
    from llmkit.serve.server.metrics import ServerMetrics

    engine = Engine(tiny, num_blocks=64, speculative=SpeculativeConfig("ngram", num_tokens=4, ngram_min=1))
    engine.generate([REPETITIVE], SamplingParams(temperature=0, max_tokens=16, ignore_eos=True), progress=False)
    stats = engine.stats()
    assert stats.speculative_method == "ngram" and stats.draft_tokens_proposed > 0
    assert 0 <= stats.draft_acceptance_rate <= 1
    text = ServerMetrics(engine).render().decode()
    assert f'llmkit_draft_tokens_proposed_total{{proposer="ngram"}} {float(stats.draft_tokens_proposed)}' in text
    assert 'llmkit_mean_accepted_length{proposer="ngram"}' in text
