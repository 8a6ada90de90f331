"""Steering in the engine: a per-engine setting that hooks the model, takes the torch reference forward
(the reason is logged) and gives the same greedy ids as core's generate with the same vector."""

from __future__ import annotations

import logging

import torch

from llmkit.core import load_pretrained, ops
from llmkit.core.generate import generate
from llmkit.core.interp import SteeringVector
from llmkit.core.sampling import SamplingParams
from llmkit.serve.engine import Engine

PROMPTS = ["The quick brown fox", "What is the capital of France?", "def reverse(s):"]
GREEDY = SamplingParams(max_tokens=16, temperature=0, ignore_eos=True)


def _vector(hidden: int, scale: float) -> SteeringVector:
    direction = torch.randn(hidden, generator=torch.Generator().manual_seed(11))
    return SteeringVector(1, direction, scale=scale)


def test_engine_steering_matches_core_generate(tiny_model_dir, caplog):
    reference = load_pretrained(tiny_model_dir)
    vector = _vector(reference.config.hidden_size, 8.0)
    with caplog.at_level(logging.INFO, logger="llmkit.serve.engine"):
        engine = Engine(str(tiny_model_dir), steering=vector, num_blocks=64)
    assert "steering layer 1 (scale 8" in caplog.text
    assert "torch reference" in caplog.text and "torch reference" in engine.describe()
    assert not ops.forward_is_native(engine.pretrained.model)
    served = [o.completions[0].token_ids for o in engine.generate(PROMPTS, GREEDY)]
    steered = [
        o.completions[0].token_ids for o in generate(reference.model, reference.tokenizer, PROMPTS, GREEDY, vector)
    ]
    plain = [o.completions[0].token_ids for o in generate(reference.model, reference.tokenizer, PROMPTS, GREEDY)]
    assert served == steered
    assert steered != plain  # the vector is large enough to matter


def test_engine_without_steering_is_unhooked(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), num_blocks=64)
    assert engine.steering is None
    assert all(not m._forward_hooks for m in engine.pretrained.model.modules())


def test_removing_engine_steering_detaches_the_hooks(tiny_model_dir):
    engine = Engine(str(tiny_model_dir), steering=_vector(64, 1.0), num_blocks=64)
    assert any(m._forward_hooks for m in engine.pretrained.model.modules())
    engine.steering.remove()
    assert all(not m._forward_hooks for m in engine.pretrained.model.modules())
