"""On the default model: 32 concurrent greedy requests through the engine equal core's reference
generate() run one request at a time — as is, under a KV budget small enough to force preemption,
and with a long shared prefix served from the prefix cache.

Batch composition and cache hits change float summation order (CPU GEMM kernels differ by batch
size), so logits are not bitwise identical: the documented tolerance is a logprob drift of at most
DRIFT per token (measured: 1.6e-5), and the greedy tokens must be identical."""

from __future__ import annotations

import random

import pytest

from llmkit.core import SamplingParams, generate
from llmkit.serve.engine import Engine

QUESTIONS = [
    "What is the capital of France?",
    "List three colors.",
    "Write a haiku about rain.",
    "Explain photosynthesis in one sentence.",
    "What is 12 times 7?",
    "Name a famous painter.",
    "How many legs does a spider have?",
    "Translate 'good morning' to Spanish.",
    "Give me a synonym for happy.",
    "What is the boiling point of water?",
    "Who wrote Hamlet?",
    "Describe a cat in five words.",
    "What is the largest planet?",
    "Suggest a name for a dog.",
    "Why is the sky blue?",
    "What does CPU stand for?",
]
DRIFT = 1e-4
SYSTEM = (
    "You are a meticulous assistant for a museum. Visitors ask short questions. Answer briefly, "
    "in plain English, without lists unless asked. Opening hours are 9 to 5, tickets cost 12 euros, "
    "children under 12 enter free, photography without flash is allowed, the cafe is on the second floor, "
    "and the gift shop closes at 4:30. Be polite and never invent facts about the collection."
)


@pytest.fixture(scope="module")
def workload(smollm2):
    rng = random.Random(0)
    prompts, params = [], []
    for i in range(32):
        question = QUESTIONS[i % len(QUESTIONS)] + (" Please be brief." if i >= len(QUESTIONS) else "")
        prompts.append(smollm2.chat_prompt([{"role": "user", "content": question}]))
        params.append(SamplingParams(temperature=0, max_tokens=rng.randint(4, 20), ignore_eos=True, logprobs=True))
    return prompts, params


def reference(smollm2, prompts, params):
    return [
        generate(smollm2.model, smollm2.tokenizer, [p], sp)[0].completions[0]
        for p, sp in zip(prompts, params, strict=True)
    ]


@pytest.fixture(scope="module")
def expected(smollm2, workload):
    return reference(smollm2, *workload)


def assert_same(engine, prompts, params, expected):
    outputs = [o.completions[0] for o in engine.generate(prompts, params, progress=False)]
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks
    assert [o.token_ids for o in outputs] == [e.token_ids for e in expected]
    drift = max(
        abs(a - b) for o, e in zip(outputs, expected, strict=True) for a, b in zip(o.logprobs, e.logprobs, strict=True)
    )
    assert drift <= DRIFT


def test_32_concurrent_requests_equal_the_reference(smollm2, workload, expected):
    engine = Engine(smollm2, num_blocks=512, max_num_seqs=32)
    assert_same(engine, *workload, expected)


def test_with_preemption(smollm2, workload, expected):
    engine = Engine(smollm2, num_blocks=24, max_num_seqs=32, max_num_batched_tokens=512)
    assert_same(engine, *workload, expected)
    assert engine.stats().preemptions > 0


def test_with_a_shared_prefix_from_the_cache(smollm2, workload):
    prompts = [
        smollm2.chat_prompt([{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]) for q in QUESTIONS
    ]
    params = workload[1][: len(prompts)]
    engine = Engine(smollm2, num_blocks=512, max_num_seqs=32)
    engine.generate(prompts[:1], params[:1], progress=False)
    assert_same(engine, prompts, params, reference(smollm2, prompts, params))
    stats = engine.stats()
    assert stats.prefix_cache_hit_blocks >= 5 * len(prompts)
