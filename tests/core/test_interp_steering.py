"""Steering vectors through core's generate: a zero vector changes nothing, a large one changes the
greedy continuation, and the hooks are gone afterwards."""

from __future__ import annotations

import pytest
import torch

from llmkit.core.errors import InvalidParameterError
from llmkit.core.generate import generate, stream_generate
from llmkit.core.interp import SteeringVector, capture_activations, difference_of_means, steer
from llmkit.core.sampling import SamplingParams

GREEDY = SamplingParams(max_tokens=12, temperature=0, ignore_eos=True)
PROMPTS = ["The quick brown fox", "What is the capital of"]


def _ids(tiny, steering=None):
    out = generate(tiny.model, tiny.tokenizer, PROMPTS, GREEDY, steering=steering)
    return [o.completions[0].token_ids for o in out]


def _no_hooks(model):
    return all(not m._forward_hooks for m in model.modules())


def test_zero_vector_changes_nothing(tiny):
    zero = SteeringVector(1, torch.zeros(tiny.model.config.hidden_size))
    assert _ids(tiny, zero) == _ids(tiny)
    assert _no_hooks(tiny.model)


def test_large_vector_changes_the_greedy_continuation(tiny):
    plain = _ids(tiny)
    direction = torch.randn(tiny.model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    steered = _ids(tiny, SteeringVector(1, direction, scale=20.0))
    assert steered != plain
    assert _no_hooks(tiny.model) and _ids(tiny) == plain


def test_steering_adds_the_vector_to_the_residual(tiny):
    ids = tiny.tokenizer.encode("Hello there", add_special_tokens=True)
    vector = torch.randn(tiny.model.config.hidden_size, generator=torch.Generator().manual_seed(4))
    plain = capture_activations(tiny.model, [ids], [(1, "resid")], "all")[(1, "resid")]
    with steer(tiny.model, SteeringVector(1, vector, scale=0.5)):
        steered = capture_activations(tiny.model, [ids], [(1, "resid")], "all")[(1, "resid")]
    torch.testing.assert_close(steered, plain + 0.5 * vector)


def test_difference_of_means_points_from_negative_to_positive(tiny):
    tok = tiny.tokenizer
    positive = [tok.encode(t, add_special_tokens=True) for t in ("good day", "great work", "lovely fox")]
    negative = [tok.encode(t, add_special_tokens=True) for t in ("bad day", "awful work", "lazy dog")]
    vector = difference_of_means(tiny.model, positive, negative, layer=2)
    key = (2, "resid")
    pos = capture_activations(tiny.model, positive, [key])[key].mean((0, 1))
    neg = capture_activations(tiny.model, negative, [key])[key].mean((0, 1))
    assert vector.layer == 2
    torch.testing.assert_close(vector.vector, pos - neg)


def test_streamed_generation_is_steered_and_unhooked_after(tiny):
    direction = torch.randn(tiny.model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    vector = SteeringVector(1, direction, scale=20.0)
    streamed = [e.token_id for e in stream_generate(tiny.model, tiny.tokenizer, PROMPTS[:1], GREEDY, vector)]
    assert streamed == _ids(tiny, vector)[0]
    assert _no_hooks(tiny.model)


def test_bad_vectors_fail_clearly_and_leave_no_hook(tiny):
    hidden = tiny.model.config.hidden_size
    with pytest.raises(InvalidParameterError, match="shape"):
        _ids(tiny, [SteeringVector(0, torch.ones(hidden)), SteeringVector(1, torch.ones(hidden + 1))])
    with pytest.raises(InvalidParameterError, match="outside"):
        _ids(tiny, SteeringVector(tiny.model.config.num_layers + 1, torch.ones(hidden)))
    assert _no_hooks(tiny.model)


def test_sentiment_words_count_whole_lexicon_words():
    from llmkit.core.interp.sentiment import sentiment_words

    assert sentiment_words("A GREAT day, not bad at all; greatness is no word here. Awful!") == (1, 2)
