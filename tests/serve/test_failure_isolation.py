"""A step that raises ends only the requests that make it fail; every other request keeps its exact
greedy tokens, and every block comes back."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest

from llmkit.core import InvalidParameterError, SamplingParams, generate

GREEDY = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True)


def prompts(count: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, 384) for _ in range(rng.randint(4, 40))] for _ in range(count)]


def alone(tiny, prompt: list[int]) -> list[int]:
    return generate(tiny.model, tiny.tokenizer, [prompt], GREEDY)[0].completions[0].token_ids


def drive(engine, max_steps: int = 2000) -> tuple[dict[str, list[int]], dict[str, str], dict[str, str]]:
    """Step until idle: tokens, final finish reason and error message per request."""
    tokens: dict[str, list[int]] = defaultdict(list)
    finish: dict[str, str] = {}
    errors: dict[str, str] = {}
    for _ in range(max_steps):
        if not engine.has_unfinished():
            return tokens, finish, errors
        for output in engine.step():
            for delta in output.deltas:
                tokens[output.request_id] += delta.token_ids
                if output.finished:
                    finish[output.request_id] = delta.finish_reason
            if output.error is not None:
                errors[output.request_id] = output.error
    raise AssertionError(f"the engine did not drain in {max_steps} steps")


def assert_drained(engine) -> None:
    assert engine.requests == {} and not engine.has_unfinished()
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


def fail_for(engine, monkeypatch, request_id: str, after_tokens: int) -> None:
    """The model runner raises whenever `request_id` is in the batch with `after_tokens` outputs or more."""
    prepare = engine.runner.prepare

    def poisoned(batch):
        if any(s.request_id == request_id and len(s.output_token_ids) >= after_tokens for s, _ in batch):
            raise RuntimeError(f"injected failure for {request_id}")
        return prepare(batch)

    monkeypatch.setattr(engine.runner, "prepare", poisoned)


@pytest.mark.parametrize("after_tokens", [0, 5], ids=["in-prefill", "mid-decode"])
def test_a_failing_request_ends_alone_and_the_others_keep_their_tokens(tiny, make_engine, monkeypatch, after_tokens):
    batch = prompts(6)
    engine = make_engine(max_num_batched_tokens=64)  # chunked prefills mixed with decodes
    ids = [engine.add_request(p, GREEDY, request_id=f"r{i}") for i, p in enumerate(batch)]
    fail_for(engine, monkeypatch, "r2", after_tokens)
    tokens, finish, errors = drive(engine)
    assert list(errors) == ["r2"] and "injected failure for r2" in errors["r2"]
    assert finish["r2"] == "error" and len(tokens["r2"]) == after_tokens
    for i, request_id in enumerate(ids):
        if request_id != "r2":
            assert tokens[request_id] == alone(tiny, batch[i]), request_id
            assert finish[request_id] == "length"
    assert_drained(engine)


def test_a_failure_of_the_batch_not_of_a_request_ends_nobody(tiny, make_engine, monkeypatch):
    """A step that fails only when certain requests share it: each solo run succeeds, so every
    request goes on (one token per solo round) and finishes with its exact tokens."""
    batch = prompts(3, seed=1)
    engine = make_engine()
    for i, p in enumerate(batch):
        engine.add_request(p, GREEDY, request_id=f"r{i}")
    prepare = engine.runner.prepare

    def fails_together(scheduled):
        names = {s.request_id for s, _ in scheduled}
        if {"r0", "r1"} <= names:
            raise RuntimeError("r0 and r1 cannot share a step")
        return prepare(scheduled)

    monkeypatch.setattr(engine.runner, "prepare", fails_together)
    tokens, finish, errors = drive(engine)
    assert set(finish.values()) == {"length"}
    assert errors == {}
    assert [tokens[f"r{i}"] for i in range(3)] == [alone(tiny, p) for p in batch]
    assert_drained(engine)


def test_a_failure_after_tokens_were_handed_out_ends_that_batch_only(tiny, make_engine, monkeypatch):
    """Past the point where a step can be recomputed, the batch's requests end with an error; a request
    outside that batch and every later one run on, exactly."""
    batch = prompts(3, seed=2)
    engine = make_engine(max_num_seqs=2)
    for i, p in enumerate(batch):
        engine.add_request(p, GREEDY, request_id=f"r{i}")
    append = engine.scheduler.output_processor.append
    calls = {"n": 0}

    def breaks_once(seq, *args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected failure while appending")
        return append(seq, *args)

    monkeypatch.setattr(engine.scheduler.output_processor, "append", breaks_once)
    tokens, finish, errors = drive(engine)
    assert set(errors) == {"r0", "r1"} and finish["r0"] == finish["r1"] == "error"
    assert tokens["r2"] == alone(tiny, batch[2])
    assert_drained(engine)
    engine.add_request(batch[0], GREEDY, request_id="again")
    assert drive(engine)[0]["again"] == alone(tiny, batch[0])
    assert_drained(engine)


@pytest.mark.parametrize("bad", [[-1], [10**9], [5, 384], [2**70]])
def test_token_ids_outside_the_vocabulary_are_refused_when_added(make_engine, bad):
    engine = make_engine()
    with pytest.raises(InvalidParameterError, match="outside the vocabulary"):
        engine.add_request(bad, GREEDY)
    assert engine.requests == {} and not engine.has_unfinished()
