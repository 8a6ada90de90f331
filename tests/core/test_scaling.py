"""Inference-time scaling strategies on a scripted sampler with fixed samples."""

from __future__ import annotations

import pytest

from llmkit.core.errors import InvalidParameterError
from llmkit.core.hookspecs import hookimpl
from llmkit.core.plugins import register_plugin, unregister_plugin
from llmkit.core.scaling import (
    SampleBatch,
    answer_extractor,
    best_of_n,
    majority_vote,
    run_strategy,
    self_consistency,
    verify_and_retry,
    weighted_vote,
    weighted_vote_strategy,
)
from llmkit.core.verifiers import VerifierResult


class ScriptedSampler:
    """Hands out fixed completions in order; each costs its word count in tokens; the prompt is 10 tokens,
    and every sample after the first of a round reuses 8 of them (as a prefix cache would)."""

    def __init__(self, texts):
        self.texts, self.calls = list(texts), []

    def sample(self, prompt, n):
        self.calls.append((prompt if isinstance(prompt, str) else [dict(m) for m in prompt], n))
        out, self.texts = self.texts[:n], self.texts[n:]
        return SampleBatch(out, [len(t.split()) for t in out], 10, 8 * (n - 1))


class _Verifiers:
    @hookimpl
    def llmkit_register_verifiers(self, register):
        def equals(prompt, completion, reference):
            answer = answer_extractor("number")(completion)
            return VerifierResult.from_bool(answer == reference, f"expected another number than {answer}")

        register("test_number_equals", equals)


@pytest.fixture
def verifiers():
    register_plugin(_Verifiers(), "test-scaling-verifiers")
    yield
    unregister_plugin("test-scaling-verifiers")


def test_majority_picks_the_mode_and_ties_go_to_the_first_seen():
    assert majority_vote(["3", "5", "5", None, "3", "5"]) == "5"
    assert majority_vote(["7", "3", "3", "7"]) == "7"  # tie: 7 was seen first
    assert majority_vote([None, ""]) is None
    assert weighted_vote(["1", "2", "2"], [0.9, 0.4, 0.4]) == "1"


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("number", "3 + 4 = 7, so the answer is 7.", "7"),
        ("number", "we get 1,200.50 dollars", "1200.5"),
        ("number", "#### 12\nthen 13", "12"),
        ("choice", "I think the answer is (C).", "C"),
        ("choice", "B because", "B"),
        ("code", "```python\n# add\ndef f(x):\n    return x + 1  \n\n```", "def f(x):\n    return x + 1"),
        ("exact", "  Paris. ", "paris"),
    ],
)
def test_answer_extractors_per_task_kind(kind, text, expected):
    assert answer_extractor(kind)(text) == expected


def test_self_consistency_votes_and_accounts_every_token():
    sampler = ScriptedSampler(["so 4", "it is 5", "answer is 5", "maybe 4 or 6", "nothing"])
    result = self_consistency(sampler, "2+3?", 5, answer="number")
    assert result.answer == "5" and result.index == 1 and result.text == "it is 5"
    assert result.answers == ["4", "5", "5", "6", None]
    assert result.votes == {"4": 1.0, "5": 2.0, "6": 1.0}
    assert sampler.calls == [("2+3?", 5)]  # one request with n=5: the samples share the prompt
    cost = result.cost
    assert cost.generated_tokens == 2 + 3 + 3 + 4 + 1 == sum(result.completion_tokens)
    assert (cost.samples, cost.rounds, cost.prompt_tokens) == (5, 1, 10)
    assert (cost.prompt_tokens_reused, cost.prompt_tokens_computed) == (32, 50 - 32)
    assert cost.wall_seconds >= 0


def test_self_consistency_with_a_verifier_lets_only_passing_samples_vote(verifiers):
    sampler = ScriptedSampler(["4", "4", "5", "4"])
    result = self_consistency(sampler, "2+3?", 4, verifier="test_number_equals", reference="5")
    assert result.answer == "5" and result.index == 2


def test_best_of_n_picks_the_top_score_earliest_among_equals():
    sampler = ScriptedSampler(["a", "bbb", "cc", "ddd"])
    result = best_of_n(sampler, "q", 4, scorer=lambda prompt, text: float(len(text)))
    assert (result.index, result.text, result.scores) == (1, "bbb", [1.0, 3.0, 2.0, 3.0])


def test_best_of_n_by_verifier(verifiers):
    result = best_of_n(ScriptedSampler(["6", "5", "5"]), "2+3?", 3, verifier="test_number_equals", reference="5")
    assert result.index == 1 and result.passed is True and result.scores == [0.0, 1.0, 1.0]


def test_weighted_vote_lets_a_confident_minority_win():
    scores = {"x 3": 0.9, "y 4": 0.2, "z 4": 0.3}
    result = weighted_vote_strategy(ScriptedSampler(list(scores)), "q", 3, scorer=lambda p, t: scores[t])
    assert result.answer == "3" and result.votes == pytest.approx({"3": 0.9, "4": 0.5})


def test_verify_and_retry_stops_at_the_first_pass_and_sends_the_error_back(verifiers):
    sampler = ScriptedSampler(["it is 4", "it is 6", "it is 5", "it is 5"])
    question = [{"role": "user", "content": "2+3?"}]
    result = verify_and_retry(sampler, question, "test_number_equals", reference="5", max_attempts=4)
    assert result.passed and result.text == "it is 5" and len(result.samples) == 3
    assert [n for _, n in sampler.calls] == [1, 1, 1]
    third_prompt = sampler.calls[2][0]
    assert [m["role"] for m in third_prompt] == ["user", "assistant", "user", "assistant", "user"]
    assert third_prompt[1]["content"] == "it is 4"
    assert "expected another number than 4" in third_prompt[2]["content"]
    assert "expected another number than 6" in third_prompt[4]["content"]
    assert result.cost.generated_tokens == 9 and result.cost.rounds == 3 and result.cost.prompt_tokens == 30


def test_verify_and_retry_gives_up_after_k(verifiers):
    sampler = ScriptedSampler(["1", "2", "3"])
    result = verify_and_retry(sampler, [{"role": "user", "content": "q"}], "test_number_equals", "5", max_attempts=2)
    assert result.passed is False and result.samples == ["1", "2"] and len(sampler.calls) == 2


def test_bad_values_are_clear_errors():
    with pytest.raises(InvalidParameterError, match="unknown strategy 'vote_harder'"):
        run_strategy("vote_harder", ScriptedSampler([]), "q", 2)
    with pytest.raises(InvalidParameterError, match="n must be a positive integer"):
        self_consistency(ScriptedSampler([]), "q", 0)
    with pytest.raises(InvalidParameterError, match="unknown answer kind 'poem'"):
        self_consistency(ScriptedSampler(["a"]), "q", 1, answer="poem")
    with pytest.raises(InvalidParameterError, match="exactly one of scorer"):
        best_of_n(ScriptedSampler(["a"]), "q", 1)
    with pytest.raises(InvalidParameterError, match="needs a verifier"):
        run_strategy("verify_and_retry", ScriptedSampler(["a"]), [{"role": "user", "content": "q"}], 2)
