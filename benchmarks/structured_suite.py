"""Every schema of benchmarks/structured_schemas.json on the default model, constrained, at temperature 0
and at temperature 1 with several seeds; each output is parsed and validated with `jsonschema` (formats
checked too). Prints one row per schema and the overall validity.

    python benchmarks/structured_suite.py [--seeds 3] [--max-tokens 320]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jsonschema
from rich.console import Console
from rich.table import Table

from llmkit.core import SamplingParams, load_pretrained
from llmkit.core.structured import StructuredOutput
from llmkit.serve.engine import Engine

SUITE = json.loads((Path(__file__).parent / "structured_schemas.json").read_text())
SYSTEM = "You are a helpful assistant. You answer with JSON only."


def validate(text: str, schema: dict) -> str | None:
    """None when valid, else why not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return f"not JSON: {err.msg}"
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    return None if error is None else error.message


def run_suite(engine: Engine, seeds: int, max_tokens: int, names: list[str] | None = None) -> list[dict]:
    """One record per (schema, temperature, seed): text, finish reason, validity."""
    jobs = []
    for name, case in SUITE.items():
        if names and name not in names:
            continue
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": case["prompt"] + " Reply in JSON."},
        ]
        prompt = engine.pretrained.chat_prompt(messages)
        for temperature, seed in [(0.0, 0)] + [(1.0, s) for s in range(seeds)]:
            jobs.append(
                (
                    name,
                    case["schema"],
                    prompt,
                    SamplingParams(temperature=temperature, seed=seed, max_tokens=max_tokens),
                )
            )
    outputs = engine.generate(
        [j[2] for j in jobs],
        [j[3] for j in jobs],
        progress=False,
        structured=[StructuredOutput("json_schema", j[1]) for j in jobs],
    )
    records = []
    for (name, schema, _, params), output in zip(jobs, outputs, strict=True):
        completion = output.completions[0]
        problem = validate(completion.text, schema)
        records.append(
            {
                "schema": name,
                "temperature": params.temperature,
                "seed": params.seed,
                "finish": completion.finish_reason,
                "tokens": len(completion.token_ids),
                "valid": problem is None,
                "problem": problem,
                "text": completion.text,
            }
        )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    args = parser.parse_args()
    engine = Engine(load_pretrained(args.model), kv_cache_memory="1GiB", max_num_seqs=128)
    started = time.perf_counter()
    records = run_suite(engine, args.seeds, args.max_tokens)
    seconds = time.perf_counter() - started
    table = Table(title=f"{len(SUITE)} schemas x (T=0, T=1 x {args.seeds} seeds) on {args.model}")
    for column in ("schema", "valid", "tokens (mean)", "example (T=0)"):
        table.add_column(column)
    for name in SUITE:
        rows = [r for r in records if r["schema"] == name]
        valid = sum(r["valid"] for r in rows)
        example = next(r["text"] for r in rows if r["temperature"] == 0)
        table.add_row(name, f"{valid}/{len(rows)}", f"{sum(r['tokens'] for r in rows) / len(rows):.0f}", example[:70])
    console = Console(width=160)
    console.print(table)
    total = sum(r["valid"] for r in records)
    console.print(f"valid: {total}/{len(records)} ({100 * total / len(records):.1f}%) in {seconds:.0f} s")
    for record in records:
        if not record["valid"]:
            console.print(f"INVALID {record['schema']} T={record['temperature']} seed={record['seed']} "
                          f"({record['finish']}): {record['problem']}: {record['text'][:120]!r}")  # fmt: skip


if __name__ == "__main__":
    main()
