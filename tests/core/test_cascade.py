"""Cascades: the cheap tier answers unless the escalation rule fires; then the next tier does."""

from __future__ import annotations

import pytest

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.backends import ModelBackend
from llmkit.core.errors import InvalidParameterError
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.scaling import BackendSampler, SampleBatch, Tier, agreement_below, cascade, verifier_fails
from llmkit.core.testing import write_tiny_model
from llmkit.core.verifiers import VerifierResult


class ByPrompt:
    """Fixed samples per prompt; each sample costs 2 tokens."""

    def __init__(self, table):
        self.table, self.asked = table, []

    def sample(self, prompt, n):
        self.asked.append(prompt)
        texts = self.table[prompt][:n]
        return SampleBatch(texts, [2] * len(texts), 5, 0)


class _Verifiers:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        register("test_easy_prompt", lambda p, c, r: VerifierResult.from_bool(p.startswith("easy"), "hard prompt"))
        register("test_equals", lambda p, c, r: VerifierResult.from_bool(c.strip() == r, f"not {r}"))


@pytest.fixture
def verifiers():
    register_plugin(_Verifiers(), "test-cascade-verifiers")
    yield
    unregister_plugin("test-cascade-verifiers")


def test_low_agreement_escalates_and_high_agreement_stays():
    small = ByPrompt({"confident": ["5", "5", "5", "7"], "unsure": ["5", "6", "7", "5"]})
    large = ByPrompt({"confident": ["9"], "unsure": ["6"]})
    tiers = [Tier("small", small, n=4), Tier("large", large, n=1)]
    rule = agreement_below(0.6)
    stays = cascade(tiers, "confident", rule)
    assert (stays.tier, stays.answer, [d.escalate for d in stays.decisions]) == ("small", "5", [False])
    escalated = cascade(tiers, "unsure", rule)
    assert (escalated.tier, escalated.answer) == ("large", "6")
    assert escalated.decisions[0].escalate and "agreement 0.50" in escalated.decisions[0].reason
    assert large.asked == ["unsure"]  # the large tier saw only the prompt that escalated
    assert escalated.generated_tokens == 4 * 2 + 2 and stays.generated_tokens == 8


def test_verifier_failure_escalates_and_the_last_tier_stands(verifiers):
    small = ByPrompt({"q": ["4"]})
    large = ByPrompt({"q": ["5"]})
    tiers = [Tier("small", small), Tier("large", large)]
    result = cascade(tiers, "q", verifier_fails("test_equals"), answer="exact", reference="5")
    assert result.tier == "large" and result.text == "5"
    assert [d.escalate for d in result.decisions] == [True, False] and "not 5" in result.decisions[0].reason
    wrong_everywhere = cascade(tiers, "q", verifier_fails("test_equals"), answer="exact", reference="7")
    assert wrong_everywhere.tier == "large" and wrong_everywhere.decisions[-1].escalate  # nothing left to ask


def test_two_local_models_of_different_cost(tmp_path, verifiers):
    """Two real reference backends (2 layers x 64 wide, 6 layers x 256 wide): the rule sends exactly the
    hard prompts to the large one, and the per-tier cost is measured."""
    small = ModelBackend(load_pretrained(write_tiny_model(tmp_path / "small", seed=1)))
    large = ModelBackend(
        load_pretrained(
            write_tiny_model(tmp_path / "large", seed=2, hidden_size=256, intermediate_size=512, num_hidden_layers=6)
        )
    )
    params = SamplingParams(temperature=0, max_tokens=4, ignore_eos=True)
    tiers = [Tier("small", BackendSampler(small, params)), Tier("large", BackendSampler(large, params))]
    prompts = ["easy one", "hard one", "easy two", "hard two"]
    results = [cascade(tiers, p, verifier_fails("test_easy_prompt"), answer="exact") for p in prompts]
    assert [r.tier for r in results] == ["small", "large", "small", "large"]
    assert [len(r.results) for r in results] == [1, 2, 1, 2]
    assert [r.generated_tokens for r in results] == [4, 8, 4, 8]
    assert all(r.wall_seconds > 0 for r in results)


def test_bad_cascades_are_clear_errors():
    with pytest.raises(InvalidParameterError, match="at least one tier"):
        cascade([], "q", agreement_below(0.5))
    with pytest.raises(InvalidParameterError, match="threshold"):
        agreement_below(0.0)
