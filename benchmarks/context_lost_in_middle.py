"""Lost in the middle on the default model: llmkit-eval's probe as written, and through ContextWindow.

    python benchmarks/context_lost_in_middle.py [--facts 8] [--plot docs/context_lost_in_middle.png]

The probe (llmkit.eval.probes.lost_in_the_middle) hides a code at depths 0, 0.25, 0.5, 0.75, 1 of a
40-sentence context. "probe as written": the whole context in one user message. "ContextWindow":
the sentences are chunked, the top 5 by BM25 for the question are placed U-shaped (best first) in
the retrieved zone, labeled as data. Scored with the probe's own RecallByPositionScorer (greedy,
16 tokens, llmkit-serve engine). Prints recall by depth and prompt tokens; plots both curves.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.console import Console
from rich.table import Table

from llmkit.context import ContextWindow, RetrievedChunk
from llmkit.context.retrieval import BM25Retriever, Chunk
from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams
from llmkit.eval.probes import lost_in_the_middle
from llmkit.eval.probes.scorers import RecallByPositionScorer


def windowed(backend, prompt: str) -> list[dict]:
    notes, question = prompt.split("\n\nQuestion: ")
    instruction, body = notes.split("\n\n", 1)
    sentences = re.split(r"(?<=\.) ", body)
    chunks = [Chunk(s, "notes", i) for i, s in enumerate(sentences)]
    window = ContextWindow(backend)
    window.system = instruction.strip()
    window.set_retrieved(
        [RetrievedChunk(chunks[i].text, f"notes#{i}", s) for i, s in BM25Retriever(chunks).search(question, 5)]
    )
    return window.render(f"Question: {question}").messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--facts", type=int, default=8)
    parser.add_argument("--plot", default="docs/context_lost_in_middle.png")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    backend = open_backend("engine", model=args.model, kv_cache_memory="1GiB")
    params = SamplingParams(temperature=0.0, max_tokens=16)
    samples = lost_in_the_middle(facts=args.facts).samples
    scorer = RecallByPositionScorer()
    conditions = {
        "probe as written": [[{"role": "user", "content": s.fields["question"]}] for s in samples],
        "ContextWindow (BM25 top 5, U-shaped)": [windowed(backend, s.fields["question"]) for s in samples],
    }
    results = {}
    for name, conversations in conditions.items():
        replies = backend.chat(conversations, params)
        by_depth: dict[float, list[float]] = {}
        for sample, reply in zip(samples, replies, strict=True):
            metrics = scorer.score(sample, {"completions": [reply.choices[0].text]})["metrics"]
            by_depth.setdefault(sample.fields["depth"], []).append(metrics["recall"])
        results[name] = {
            "recall_by_depth": {d: sum(v) / len(v) for d, v in sorted(by_depth.items())},
            "prompt_tokens": sum(r.prompt_tokens for r in replies) / len(replies),
        }
    depths = sorted(next(iter(results.values()))["recall_by_depth"])
    table = Table("condition", *[f"recall@{d:.2f}" for d in depths], "prompt tokens")
    for name, r in results.items():
        table.add_row(name, *[f"{r['recall_by_depth'][d]:.2f}" for d in depths], f"{r['prompt_tokens']:.0f}")
    Console().print(table)
    figure, axis = plt.subplots(figsize=(6, 3.5))
    for name, r in results.items():
        axis.plot(depths, [r["recall_by_depth"][d] for d in depths], marker="o", label=name)
    axis.set(xlabel="depth of the fact in the source context (0 = start)", ylabel="recall", ylim=(-0.05, 1.05))
    axis.set_title(f"Lost in the middle, {args.model}, {args.facts} facts per depth")
    axis.legend()
    figure.tight_layout()
    figure.savefig(args.plot, dpi=110)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
