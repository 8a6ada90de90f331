"""Escalation rules as plugins: the built-in rules by name, a plugin's own rule, the logprob margin over the
answer's tokens, and a cascade of two real tiny models where the margin rule escalates exactly the prompts
whose answer margin (computed here from a separate forward pass) is below the threshold."""

from __future__ import annotations

import pytest
import torch

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.backends import ModelBackend
from llmkit.core.errors import InvalidParameterError, PluginError
from llmkit.core.hookspecs import hookimpl
from llmkit.core.models.attention import DenseCausalAttention
from llmkit.core.plugins import register_plugin, registry, unregister_plugin
from llmkit.core.scaling import (
    BackendSampler,
    Escalation,
    SampleBatch,
    Tier,
    TokenTop,
    answer_margin,
    cascade,
    escalation_rule,
    escalation_rule_names,
    self_consistency,
)
from llmkit.core.testing import write_tiny_model


class Scripted:
    """Fixed samples (with per-token top logprobs) per prompt; records which prompts it was asked."""

    def __init__(self, table):
        self.table, self.asked = table, []

    def sample(self, prompt, n):
        self.asked.append(prompt)
        texts, tokens = self.table[prompt]
        return SampleBatch(texts[:n], [len(t) for t in tokens[:n]], 3, 0, tokens[:n])


def tokens(*pieces):
    """('The', 0.1), (' 42', 3.0) -> TokenTops whose top-1 minus top-2 logprob is the given margin."""
    return [TokenTop(text, (-0.1, -0.1 - margin)) for text, margin in pieces]


SURE = ["The answer is 42"], [tokens(("The", 0.1), (" answer", 0.2), (" is", 0.05), (" 4", 2.5), ("2", 3.0))]
UNSURE = ["The answer is 42"], [tokens(("The", 2.0), (" answer", 2.0), (" is", 2.0), (" 4", 0.4), ("2", 3.0))]


def test_the_margin_counts_only_the_answer_tokens():
    sure = self_consistency(Scripted({"q": SURE}), "q", 1, "number")
    found = answer_margin(sure)
    assert (found.margin, found.tokens, found.located) == (pytest.approx(2.5), 2, True)  # not the 0.05 of " is"
    rule = escalation_rule("logprob_margin_below:threshold=1.0")
    assert rule("q", sure, None) == Escalation(False, "margin 2.500 vs 1.000 over 2 answer tokens")
    unsure = self_consistency(Scripted({"q": UNSURE}), "q", 1, "number")
    decision = rule("q", unsure, None)
    assert decision.escalate and "margin 0.400" in decision.reason


def test_an_answer_not_found_verbatim_uses_every_token_and_says_so():
    sample = ["It is 1,200"], [tokens(("It", 1.5), (" is", 0.7), (" 1", 2.0), (",", 2.0), ("200", 2.0))]
    result = self_consistency(Scripted({"q": sample}), "q", 1, "number")
    assert result.answer == "1200"
    found = answer_margin(result)
    assert (found.margin, found.located) == (pytest.approx(0.7), False)
    assert (
        "all 5 tokens (answer not verbatim)"
        in escalation_rule("logprob_margin_below:threshold=1")("q", result, 0).reason
    )


def test_the_margin_needs_top_logprobs():
    plain = Scripted({"q": (["42"], [[]])})
    plain.sample = lambda prompt, n: SampleBatch(["42"], [1], 3, 0)  # a sampler that reports no logprobs
    result = self_consistency(plain, "q", 1, "number")
    with pytest.raises(InvalidParameterError, match="top_logprobs=2"):
        escalation_rule("logprob_margin_below:threshold=1")("q", result, None)
    one_top = self_consistency(Scripted({"q": (["42"], [[TokenTop("42", (-0.1,))]])}), "q", 1, "number")
    with pytest.raises(InvalidParameterError, match="two top logprobs"):
        answer_margin(one_top)


class _Rules:
    @hookimpl
    def llmkit_register_escalation_rules(self, register):
        def longer_than(chars):
            return lambda prompt, result, reference: Escalation(len(result.text) > int(chars), "long")

        register("test_longer_than", longer_than)


@pytest.fixture
def rules_plugin():
    register_plugin(_Rules(), "test-escalation-rules")
    yield
    unregister_plugin("test-escalation-rules")


def test_rules_are_a_registry_that_plugins_extend(rules_plugin):
    assert {"agreement_below", "verifier_fails", "logprob_margin_below", "test_longer_than"} <= set(
        escalation_rule_names()
    )
    assert registry("escalation_rules").owner("test_longer_than") == "test-escalation-rules"
    small = Scripted({"short": (["7"], [tokens(("7", 3.0))]), "long": (["7 7 7 7"], [tokens(("7 7 7 7", 3.0))])})
    large = Scripted({"long": (["9"], [tokens(("9", 3.0))])})
    tiers = [Tier("small", small), Tier("large", large)]
    assert cascade(tiers, "short", "test_longer_than:chars=3", answer="exact").tier == "small"
    assert cascade(tiers, "long", {"name": "test_longer_than", "chars": 3}, answer="exact").tier == "large"
    assert large.asked == ["long"]


def test_a_list_of_rules_escalates_when_any_does():
    table = {"q": (["42", "42", "41"], [tokens(("42", 0.2)), tokens(("42", 0.2)), tokens(("41", 3.0))])}
    small, large = Scripted(table), Scripted({"q": (["42"], [tokens(("42", 3.0))])})
    tiers = [Tier("small", small, n=3), Tier("large", large)]
    agreement_only = cascade(tiers, "q", ["agreement_below:threshold=0.6"])
    assert agreement_only.tier == "small"  # 2 of 3 agree
    both = cascade(tiers, "q", ["agreement_below:threshold=0.6", "logprob_margin_below:threshold=1"])
    assert both.tier == "large"
    assert both.decisions[0].reason == "agreement 0.67 vs 0.60; margin 0.200 vs 1.000 over 1 answer tokens"


def test_bad_rule_specs_are_clear_errors(rules_plugin):
    with pytest.raises(InvalidParameterError, match="no escalation_rules entry named 'nope'.*agreement_below"):
        escalation_rule("nope")
    with pytest.raises(InvalidParameterError, match="threshold must be a number"):
        escalation_rule("agreement_below:threshold=high")
    with pytest.raises(InvalidParameterError, match="is not key=value"):
        escalation_rule("agreement_below:0.5")
    with pytest.raises(InvalidParameterError, match="unexpected keyword"):
        escalation_rule("logprob_margin_below:margin=1")
    with pytest.raises(InvalidParameterError, match=">= 0"):
        escalation_rule("logprob_margin_below:threshold=-1")

    class _Clash:
        @hookimpl
        def llmkit_register_escalation_rules(self, register):
            register("agreement_below", lambda threshold: None)

    register_plugin(_Clash(), "test-escalation-clash")
    try:
        with pytest.raises(PluginError, match="registered twice"):
            registry("escalation_rules")
    finally:
        unregister_plugin("test-escalation-clash")


@torch.inference_mode()
def _independent_margin(backend: ModelBackend, prompt: str, generated: list[int], text: str) -> float:
    """From one forward pass over prompt + output: top-1 minus top-2 logprob at each generated position whose token
    starts inside the output text (a trailing incomplete UTF-8 byte token adds nothing to the text), the minimum."""
    model = backend.pretrained.model
    prompt_ids = backend.tokenizer.encode(prompt, add_special_tokens=True)
    ids = prompt_ids + generated
    hidden = model(torch.tensor(ids), torch.arange(len(ids)), DenseCausalAttention(1, len(ids)))
    logprobs = model.compute_logits(hidden[len(prompt_ids) - 1 : -1]).log_softmax(-1)
    top2 = logprobs.topk(2, dim=-1).values
    inside = [i for i in range(len(generated)) if len(backend.tokenizer.decode(generated[:i])) < len(text)]
    return float((top2[inside, 0] - top2[inside, 1]).min())


def test_two_local_models_the_margin_rule_escalates_exactly_the_unsure_prompts(tmp_path):
    small = ModelBackend(load_pretrained(write_tiny_model(tmp_path / "small", seed=1)))
    large = ModelBackend(
        load_pretrained(
            write_tiny_model(tmp_path / "large", seed=2, hidden_size=256, intermediate_size=512, num_hidden_layers=6)
        )
    )
    params = SamplingParams(temperature=0, max_tokens=3, ignore_eos=True, top_logprobs=2)
    prompts = [f"item {i} says" for i in range(8)]
    margins = []
    for prompt in prompts:
        output = small.generate([prompt], params)[0].completions[0]
        margins.append(_independent_margin(small, prompt, output.token_ids, output.text))
    threshold = sorted(margins)[len(margins) // 2]  # the median: about half escalate
    expected = [m < threshold for m in margins]
    assert 0 < sum(expected) < len(prompts)

    whole_text = lambda text: text or None  # noqa: E731 -- the answer is the whole output text
    tiers = [Tier("small", BackendSampler(small, params)), Tier("large", BackendSampler(large, params))]
    rule = f"logprob_margin_below:threshold={threshold!r}"
    results = [cascade(tiers, p, rule, answer=whole_text) for p in prompts]
    assert [r.tier == "large" for r in results] == expected
    for result, margin in zip(results, margins, strict=True):
        assert f"margin {margin:.3f}" in result.decisions[0].reason
    assert [r.generated_tokens for r in results] == [6 if e else 3 for e in expected]  # the large tier's cost


def test_chat_samples_carry_top_logprobs(tmp_path):
    backend = ModelBackend(load_pretrained(write_tiny_model(tmp_path / "m", seed=3)))
    params = SamplingParams(temperature=0, max_tokens=3, ignore_eos=True, top_logprobs=2)
    batch = BackendSampler(backend, params).sample([{"role": "user", "content": "hi"}], 1)
    assert batch.tokens is not None and len(batch.tokens[0]) == 3
    assert "".join(t.text for t in batch.tokens[0]) == batch.texts[0]
    assert all(t.top[0] >= t.top[1] for t in batch.tokens[0])
