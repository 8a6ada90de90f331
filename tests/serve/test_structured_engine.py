"""Grammar-constrained decoding in the engine (tiny model): outputs follow their grammar at temperature 0
and 1, jump-forward does not change what is sampled, speculative drafts are verified under the mask, and
compilation runs beside decoding (its errors end only their request)."""

from __future__ import annotations

import json
import re
import time

import jsonschema
import pytest

from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import StructuredOutput, compile_structured
from llmkit.serve.speculative import SpeculativeConfig
from llmkit.serve.structured import manager

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 18, "maximum": 99},
        "role": {"enum": ["admin", "user"]},
        "scores": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "maxItems": 3},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
SPEC = StructuredOutput("json_schema", SCHEMA)
PROMPTS = ["Describe a user:", "hello", "JSON please"]


def params(temperature: float, seed: int = 0) -> SamplingParams:
    return SamplingParams(temperature=temperature, seed=seed, max_tokens=120)


def texts(outputs) -> list[str]:
    return [o.completions[0].text for o in outputs]


def assert_all_free(engine) -> None:
    assert not engine.requests and not engine.has_unfinished()
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_json_schema_outputs_validate(make_engine, temperature):
    engine = make_engine()
    outputs = engine.generate(
        PROMPTS, [params(temperature, seed) for seed in range(3)], progress=False, structured=SPEC
    )
    for output in outputs:
        completion = output.completions[0]
        assert completion.finish_reason == "stop", completion.text
        jsonschema.validate(json.loads(completion.text), SCHEMA)
    assert_all_free(engine)


def test_regex_and_grammar_outputs_match(make_engine):
    engine = make_engine()
    pattern = r"[a-d]{2,4}-\d{3}"
    grammar = 'root ::= "(" item (" " item)* ")"\nitem ::= [xyz] | root'
    outputs = engine.generate(
        ["a", "b"],
        params(1.0, 7),
        progress=False,
        structured=[StructuredOutput("regex", pattern), StructuredOutput("grammar", grammar)],
    )
    assert re.fullmatch(pattern, outputs[0].completions[0].text)
    assert re.fullmatch(r"[()xyz ]+", outputs[1].completions[0].text) and outputs[1].completions[0].text.startswith("(")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_jump_forward_takes_exactly_the_tokens_sampling_would(make_engine, monkeypatch, temperature):
    engine = make_engine()
    jumped = texts(engine.generate(PROMPTS, params(temperature, 3), progress=False, structured=SPEC))
    assert engine.structured.jump_forward_tokens > 0
    monkeypatch.setattr(manager, "MAX_JUMP_FORWARD", 0)
    plain = make_engine()
    assert texts(plain.generate(PROMPTS, params(temperature, 3), progress=False, structured=SPEC)) == jumped
    assert plain.structured.jump_forward_tokens == 0


def test_speculative_drafts_are_verified_under_the_mask(make_engine):
    reference = texts(make_engine().generate(PROMPTS, params(0.0), progress=False, structured=SPEC))
    engine = make_engine(speculative=SpeculativeConfig("ngram", num_tokens=3))
    assert texts(engine.generate(PROMPTS, params(0.0), progress=False, structured=SPEC)) == reference
    sampled = engine.generate(PROMPTS, params(1.0, 5), progress=False, structured=SPEC)
    for text in texts(sampled):
        jsonschema.validate(json.loads(text), SCHEMA)
    assert engine.stats().draft_tokens_proposed > 0
    assert_all_free(engine)


def test_compilation_does_not_hold_up_other_requests(make_engine):
    engine = make_engine()
    slow = StructuredOutput("json_schema", {"type": "string", "minLength": 5, "maxLength": 1500})
    constrained = engine.add_request("x", params(0.0), structured=slow)
    plain = engine.add_request("y", SamplingParams(temperature=0, max_tokens=4))
    finished_plain_while_compiling = False
    while engine.has_unfinished():
        for output in engine.step():
            if output.request_id == plain and output.finished:
                finished_plain_while_compiling = bool(engine.scheduler.waiting_for_grammar)
    assert finished_plain_while_compiling
    assert constrained not in engine.requests
    assert_all_free(engine)


def test_a_failed_compilation_ends_only_its_request(make_engine):
    engine = make_engine()
    bad = engine.add_request(
        "x", params(0.0), structured=StructuredOutput("json_schema", {"type": "string", "format": "ipv9"})
    )
    good = engine.add_request("y", SamplingParams(temperature=0, max_tokens=3))
    reasons = {}
    while engine.has_unfinished():
        for output in engine.step():
            if output.finished:
                reasons[output.request_id] = output.deltas[0].finish_reason
    assert reasons == {bad: "error", good: "length"}
    assert_all_free(engine)


def test_abort_while_compiling_and_compiled_grammars_are_reused(make_engine):
    engine = make_engine()
    spec = StructuredOutput("json_schema", {"type": "string", "maxLength": 1200})
    request = engine.add_request("x", params(0.0), structured=spec)
    assert bool(engine.scheduler.waiting_for_grammar) and engine.abort(request)
    assert not engine.has_unfinished()
    started = time.monotonic()
    grammar = engine.structured.compiler.compile(spec)
    assert engine.structured.compiler.cached(spec) is grammar
    engine.add_request("x", params(0.0), structured=spec)
    assert not bool(engine.scheduler.waiting_for_grammar)  # cached: admitted at once
    engine.generate(["z"], params(0.0), progress=False, structured=compile_structured(StructuredOutput("regex", "ok")))
    while engine.has_unfinished():
        engine.step()
    assert time.monotonic() - started < 120
    assert_all_free(engine)


def test_recursive_grammars_finish_within_max_tokens(make_engine):
    """A model that would nest forever is closed in time: every output is complete, whatever max_tokens."""
    engine = make_engine()
    schema = {
        "$defs": {"cell": {"type": "object", "properties": {"v": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#/$defs/cell"}, {"type": "null"}]}}, "required": ["v", "next"], "additionalProperties": False}},
        "$ref": "#/$defs/cell",
    }  # fmt: skip
    budgets = [40, 60, 90]
    outputs = engine.generate(
        ["a"] * len(budgets),
        [SamplingParams(temperature=1.0, seed=k, max_tokens=n) for k, n in enumerate(budgets)],
        progress=False,
        structured=StructuredOutput("json_schema", schema),
    )
    for output, budget in zip(outputs, budgets, strict=True):
        completion = output.completions[0]
        assert len(completion.token_ids) <= budget and completion.finish_reason == "stop"
        jsonschema.validate(json.loads(completion.text), schema)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_max_tokens_below_the_shortest_completion_is_cut_by_length(make_engine, temperature):
    """No way to finish in time: the output follows the grammar as far as it goes and ends by length
    (never an empty reply ending in 'stop')."""
    engine = make_engine()
    (output,) = engine.generate(
        ["a"], SamplingParams(temperature=temperature, seed=1, max_tokens=3), progress=False, structured=SPEC
    )
    completion = output.completions[0]
    assert len(completion.token_ids) == 3 and completion.finish_reason == "length", completion
    without_whitespace = "".join(completion.text.split())  # JSON whitespace is flexible by default
    assert '{"name"'.startswith(without_whitespace) and completion.text
    assert_all_free(engine)
