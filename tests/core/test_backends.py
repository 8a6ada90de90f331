"""The backend interface and core's `reference` backend."""

from __future__ import annotations

import math

import pytest

from llmkit.core import SamplingParams
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


def test_loglikelihood_matches_transformers(backend, tiny, tiny_model_dir):
    transformers = pytest.importorskip("transformers")
    import torch

    hf = transformers.AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    requests = [("The quick brown", " fox jumps"), ("1 + 1 =", " 2"), ("Paris", " is the capital")]
    for (context, continuation), result in zip(requests, backend.loglikelihood(requests), strict=True):
        context_ids = tiny.tokenizer.encode(context)
        ids = tiny.tokenizer.encode(context + continuation)
        with torch.inference_mode():
            logprobs = hf(torch.tensor([ids])).logits[0].log_softmax(-1)
        targets = ids[len(context_ids) :]
        rows = logprobs[len(context_ids) - 1 : -1]
        expected = sum(float(rows[i, t]) for i, t in enumerate(targets))
        assert result.num_tokens == len(targets)
        assert math.isclose(result.logprob, expected, rel_tol=1e-4, abs_tol=1e-4)
        assert result.is_greedy == bool((rows.argmax(-1) == torch.tensor(targets)).all())


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
