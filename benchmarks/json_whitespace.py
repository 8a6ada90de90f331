"""JSON whitespace policy on the default model: `compact` (no whitespace between JSON tokens, llmkit's
default) against `flexible` (runs of at most `max_whitespace` spaces/tabs/newlines, close to what
xgrammar's `any_whitespace=True` and llguidance allow by default).

    python benchmarks/json_whitespace.py [--model NAME] [--max-tokens 160] [--threads 2]

A small extraction set (30 short texts, each naming a person, an age, a city and a job) is sent as chat
turns asking for a JSON object with those fields; the reply is constrained by the schema under each
policy, greedy. Per policy: valid rate (parses and validates against the schema), field accuracy (fields
equal to the truth, case-insensitive, over all fields of all items), exact items (all four fields right),
mean output tokens and the whitespace characters in outputs. The table lands in docs/structured-outputs.md.
"""

from __future__ import annotations

import argparse
import json
import statistics

import jsonschema
import torch
from rich.console import Console
from rich.table import Table

from llmkit.core import DEFAULT_MODEL, SamplingParams
from llmkit.core.structured import JsonOptions, StructuredOutput
from llmkit.serve import Engine

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "job": {"type": "string"},
    },
    "required": ["name", "age", "city", "job"],
    "additionalProperties": False,
}

PEOPLE = [
    ("Maria Lopez", 34, "Madrid", "teacher"),
    ("John Smith", 52, "Boston", "carpenter"),
    ("Aiko Tanaka", 27, "Osaka", "nurse"),
    ("Peter Novak", 41, "Prague", "engineer"),
    ("Fatima Khan", 29, "Lahore", "doctor"),
    ("Lars Berg", 63, "Oslo", "fisherman"),
    ("Chen Wei", 38, "Shanghai", "chef"),
    ("Olga Ivanova", 45, "Moscow", "pilot"),
    ("Tom Baker", 19, "Leeds", "student"),
    ("Sara Rossi", 31, "Milan", "designer"),
    ("Ahmed Said", 57, "Cairo", "baker"),
    ("Emma Brown", 24, "Sydney", "lawyer"),
    ("Lucas Silva", 36, "Lisbon", "driver"),
    ("Nina Weber", 48, "Berlin", "architect"),
    ("Raj Patel", 33, "Mumbai", "programmer"),
    ("Anna Kowalski", 22, "Warsaw", "singer"),
    ("Diego Torres", 58, "Lima", "farmer"),
    ("Grace Kim", 40, "Seoul", "dentist"),
    ("Omar Haddad", 26, "Beirut", "journalist"),
    ("Julia Meyer", 67, "Vienna", "painter"),
    ("Ivan Petrov", 30, "Sofia", "mechanic"),
    ("Lea Dubois", 44, "Lyon", "pharmacist"),
    ("Kofi Mensah", 35, "Accra", "banker"),
    ("Mia Jensen", 28, "Copenhagen", "photographer"),
    ("Hugo Martin", 50, "Paris", "waiter"),
    ("Sofia Costa", 39, "Porto", "scientist"),
    ("Ben Cohen", 61, "Haifa", "plumber"),
    ("Yara Nunes", 23, "Recife", "dancer"),
    ("Karl Lind", 46, "Stockholm", "firefighter"),
    ("Ana Ruiz", 55, "Seville", "librarian"),
]
TEMPLATES = [
    "{name} is a {age}-year-old {job} who lives in {city}.",
    "Meet {name}: {age} years old, works as a {job}, and calls {city} home.",
    "In {city}, {name} ({age}) has worked as a {job} for years.",
]


def items() -> list[tuple[str, dict]]:
    out = []
    for i, (name, age, city, job) in enumerate(PEOPLE):
        text = TEMPLATES[i % len(TEMPLATES)].format(name=name, age=age, city=city, job=job)
        out.append((text, {"name": name, "age": age, "city": city, "job": job}))
    return out


def score(outputs: list[str], truths: list[dict]) -> dict:
    valid = right = exact = 0
    for text, truth in zip(outputs, truths, strict=True):
        try:
            value = json.loads(text)
            jsonschema.validate(value, SCHEMA)
        except (json.JSONDecodeError, jsonschema.ValidationError):
            continue
        valid += 1
        hits = sum(str(value[k]).strip().lower() == str(truth[k]).lower() for k in SCHEMA["required"])
        right += hits
        exact += hits == len(SCHEMA["required"])
    n = len(truths)
    return {"valid": valid / n, "fields": right / (n * len(SCHEMA["required"])), "exact": exact / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engine = Engine(args.model)
    data = items()
    prompts = [
        engine.pretrained.chat_prompt(
            [
                {
                    "role": "user",
                    "content": "Extract the person's name, age, city and job as JSON "
                    f'with keys "name", "age", "city", "job".\n\nText: {text}',
                }
            ]
        )
        for text, _ in data
    ]
    truths = [truth for _, truth in data]
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    rows = []
    for policy in ("compact", "flexible"):
        spec = StructuredOutput("json_schema", SCHEMA, JsonOptions(whitespace=policy))
        outputs = engine.generate(prompts, params, structured=spec)
        texts = [o.completions[0].text for o in outputs]
        tokens = statistics.mean(len(o.completions[0].token_ids) for o in outputs)
        spaces = sum(sum(ch in " \t\n\r" for ch in t) for t in texts)
        rows.append((policy, score(texts, truths), tokens, spaces, texts[0]))
    table = Table(title=f"JSON whitespace on {args.model}: {len(data)} extraction items, greedy")
    for column in ("whitespace", "valid", "field accuracy", "exact items", "mean tokens", "ws chars", "first"):
        table.add_column(column)
    for policy, s, tokens, spaces, first in rows:
        table.add_row(
            policy,
            f"{s['valid']:.0%}",
            f"{s['fields']:.1%}",
            f"{s['exact']:.0%}",
            f"{tokens:.1f}",
            str(spaces),
            first[:60],
        )
    Console().print(table)


if __name__ == "__main__":
    main()
