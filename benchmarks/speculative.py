"""Speculative decoding on the default model: decode tokens/s with and without it, per proposer,
on a copy-heavy workload (editing code, quoting a passage) and an open-ended one, in one run.

    python benchmarks/speculative.py [--batch 4] [--max-tokens 160] [--repeats 2]

Greedy decoding, so every configuration emits the same tokens (checked) and tokens/s ratios are
pure speed. The draft-model proposer needs a smaller sibling with the same tokenizer, which the
default model does not have offline; it is measured in the tests on tiny models only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from llmkit.core import SamplingParams, load_pretrained
from llmkit.serve.engine import Engine
from llmkit.serve.speculative import SpeculativeConfig

CODE = """def mean(values):
    total = 0
    for value in values:
        total = total + value
    return total / len(values)


def variance(values):
    center = mean(values)
    total = 0
    for value in values:
        total = total + (value - center) ** 2
    return total / len(values)
"""
PASSAGE = (
    "The lighthouse keeper wrote in his log every evening. On the first night he noted that the sea was calm "
    "and the lamp burned steadily. On the second night a storm arrived from the west, and he wrote that the "
    "waves rose higher than the rocks. On the third night the fog was so thick that he rang the bell every "
    "minute until dawn. On the fourth night a ship passed safely, and he wrote that the light had done its work."
)
COPY_HEAVY = [
    f"Rewrite this code, renaming the variable `total` to `acc`. Output only the code.\n\n{CODE}",
    f"Add type hints to this code and output the full code.\n\n{CODE}",
    f"Quote, word for word, the sentences about the second and third nights.\n\n{PASSAGE}",
    f"Repeat the following passage exactly.\n\n{PASSAGE}",
]
OPEN_ENDED = [
    "Write a short story about a robot who learns to paint.",
    "Explain why the sky is blue to a ten-year-old.",
    "Give me five ideas for a weekend trip.",
    "Describe your ideal breakfast.",
]


def run(smol, prompts, params, speculative):
    engine = Engine(smol, kv_cache_memory="1GiB", speculative=speculative)
    start = time.perf_counter()
    outputs = engine.generate(prompts, params, progress=False)
    elapsed = time.perf_counter() - start
    tokens = [o.completions[0].token_ids for o in outputs]
    return tokens, sum(len(t) for t in tokens) / elapsed, engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="concurrent requests per workload")
    parser.add_argument("--max-tokens", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--early-exit-layers", type=int, default=8)
    args = parser.parse_args()
    console = Console()
    smol = load_pretrained(quiet=True)
    params = SamplingParams(temperature=0, max_tokens=args.max_tokens)
    methods = {
        "none": None,
        "ngram (prompt lookup)": SpeculativeConfig("ngram", num_tokens=5),
        f"early_exit ({args.early_exit_layers} of {smol.config.num_layers} layers)": SpeculativeConfig(
            "early_exit", num_tokens=3, early_exit_layers=args.early_exit_layers
        ),
    }
    table = Table(
        title=f"greedy decode tokens/s, batch {args.batch}, median of {args.repeats}, {torch.get_num_threads()} threads, fp32"
    )
    for column in (
        "workload",
        "proposer",
        "tokens/s",
        "vs none",
        "acceptance",
        "accepted/proposal",
        "seqs switched off",
        "same tokens",
    ):
        table.add_column(column, justify="left" if column in ("workload", "proposer") else "right")
    for workload, texts in (("copy-heavy", COPY_HEAVY), ("open-ended", OPEN_ENDED)):
        prompts = [smol.chat_prompt([{"role": "user", "content": t}]) for t in (texts * args.batch)[: args.batch]]
        baseline_tokens, baseline_speed = None, None
        for name, config in methods.items():
            speeds, tokens, engine = [], None, None
            for _ in range(args.repeats):
                with console.status(f"{workload}: {name}"):
                    tokens, speed, engine = run(smol, prompts, params, config)
                speeds.append(speed)
            speed = statistics.median(speeds)
            if config is None:
                baseline_tokens, baseline_speed = tokens, speed
            stats = engine.stats()
            table.add_row(
                workload,
                name,
                f"{speed:.1f}",
                f"{speed / baseline_speed:.2f}x",
                f"{stats.draft_acceptance_rate:.2f}" if config else "-",
                f"{stats.mean_accepted_length:.2f}" if config else "-",
                "-" if config is None else str(engine.speculator.stats.disabled_sequences),
                str(tokens == baseline_tokens),
            )
    console.print(table)


if __name__ == "__main__":
    main()
