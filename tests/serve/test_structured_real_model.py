"""The default model under constraint: a subset of benchmarks/structured_schemas.json (nested objects,
arrays of objects, enums, anyOf, recursive $ref, patterns, numeric bounds, formats) at temperature 0
and 1; every output parses and validates with jsonschema. `benchmarks/structured_suite.py` runs all."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from llmkit.core.sampling import SamplingParams
from llmkit.core.structured import StructuredOutput
from llmkit.serve.engine import Engine

SUITE = json.loads((Path(__file__).parents[2] / "benchmarks" / "structured_schemas.json").read_text())
SUBSET = [
    "nested_order",
    "any_of_value",
    "recursive_list",
    "pattern_codes",
    "numeric_bounds",
    "dates",
    "array_of_objects",
]


@pytest.fixture(scope="module")
def engine(smollm2):
    return Engine(smollm2, num_blocks=1024, max_num_seqs=32)


def test_constrained_outputs_validate_on_the_default_model(engine):
    jobs = []
    for name in SUBSET:
        messages = [
            {"role": "system", "content": "You answer with JSON only."},
            {"role": "user", "content": SUITE[name]["prompt"] + " Reply in JSON."},
        ]
        prompt = engine.pretrained.chat_prompt(messages)
        for temperature in (0.0, 1.0):
            jobs.append((name, prompt, SamplingParams(temperature=temperature, seed=11, max_tokens=256)))
    outputs = engine.generate(
        [j[1] for j in jobs],
        [j[2] for j in jobs],
        progress=False,
        structured=[StructuredOutput("json_schema", SUITE[j[0]]["schema"]) for j in jobs],
    )
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    for (name, _, params), output in zip(jobs, outputs, strict=True):
        completion = output.completions[0]
        assert completion.finish_reason == "stop", (name, params.temperature, completion.text)
        jsonschema.validate(json.loads(completion.text), SUITE[name]["schema"], format_checker=checker)
    assert engine.block_manager.num_free_blocks == engine.block_manager.num_blocks
