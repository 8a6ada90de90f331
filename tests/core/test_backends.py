"""The backend interface and core's `reference` backend."""

from __future__ import annotations

import math

import pytest

from llmkit.core import SamplingParams, generate
from llmkit.core.backends import Backend, ModelBackend, open_backend
from llmkit.core.plugins import registry


@pytest.fixture(scope="module")
def backend(tiny):
    return ModelBackend(tiny)


def test_reference_backend_is_registered_by_core():
    assert registry("backends").owner("reference").startswith("llmkit-core")


def test_backend_satisfies_the_protocol(backend):
    assert isinstance(backend, Backend)
    assert backend.context_length == 256 and backend.count_tokens("The capital") == len(
        backend.tokenizer.encode("The capital")
    )


def test_loglikelihood_equals_teacher_forced_generation(backend, tiny):
    context, continuation = "The quick brown", " fox jumps"
    greedy = generate(
        tiny.model,
        tiny.tokenizer,
        [context],
        SamplingParams(temperature=0, max_tokens=3, ignore_eos=True, logprobs=True),
    )
    completion = greedy[0].completions[0]
    text = tiny.tokenizer.decode(completion.token_ids)
    scored = backend.loglikelihood([(context, text), (context, continuation)])
    assert scored[0].is_greedy and scored[0].num_tokens == 3
    assert math.isclose(scored[0].logprob, sum(completion.logprobs), rel_tol=1e-4, abs_tol=1e-4)
    assert not scored[1].is_greedy or scored[1].logprob <= scored[0].logprob + 1e-6


def test_loglikelihood_without_context_starts_from_bos(backend):
    (result,) = backend.loglikelihood([("", "Paris")])
    assert result.num_tokens == len(backend.tokenizer.encode("Paris")) and result.logprob < 0


def test_chat_returns_parsed_messages(backend):
    results = backend.chat(
        [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "hello there"}]],
        SamplingParams(temperature=0, max_tokens=5, n=2, seed=1),
    )
    assert len(results) == 2 and all(len(r.choices) == 2 for r in results)
    assert results[0].prompt_tokens == len(backend.pretrained.chat_prompt([{"role": "user", "content": "hi"}]))
    assert results[0].choices[0].message.content == results[0].choices[0].text.strip()


def test_open_backend_by_name_loads_a_model(tiny_model_dir):
    backend = open_backend("reference", model=str(tiny_model_dir))
    out = backend.generate([[5, 6, 7]], SamplingParams(temperature=0, max_tokens=2, ignore_eos=True))
    assert len(out[0].completions[0].token_ids) == 2
