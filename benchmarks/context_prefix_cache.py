"""Prefix-cache hit rate of a 50-turn session: ContextWindow's layout against a naive "rebuild everything" one.

    python benchmarks/context_prefix_cache.py [--turns 50] [--model smollm2] [--max-tokens 24]

Both layouts carry the same content each turn — a system prompt, two tool definitions, one long
reference document, the history, two chunks retrieved for the turn's question and a state object
that changes every turn — and run on a fresh llmkit-serve engine each (greedy, prefix caching on).
ContextWindow puts the static prefix first and the per-turn content last; the naive layout rebuilds
one system message with the state and retrieved chunks ahead of the document and the history.
Reported: the engine's prefix-cache hit rate (hit blocks / queried blocks), prompt tokens, wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from llmkit.context import ContextWindow, RetrievedChunk
from llmkit.context.render import render_retrieved, render_state, render_tools_text
from llmkit.context.retrieval import BM25Retriever, chunk_markdown
from llmkit.core.backends import open_backend
from llmkit.core.sampling import SamplingParams

DOCS = Path(__file__).resolve().parents[1] / "docs"
SYSTEM = "You are llmkit's support assistant. Answer from the reference document; be brief."
TOOLS = [
    {"type": "function", "function": {"name": "search_docs", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "open_issue", "parameters": {"type": "object", "properties": {"title": {"type": "string"}}}}},
]  # fmt: skip
TOPICS = ["prefix caching", "block size", "preemption", "metrics", "API keys", "streaming", "KV memory",
          "scheduling", "errors", "tools", "determinism", "chunked prefill", "overload", "models"]  # fmt: skip


def questions(turns: int) -> list[str]:
    return [f"Question {t + 1}: what does the server do about {TOPICS[t % len(TOPICS)]}?" for t in range(turns)]


def naive_messages(history: list[dict], question: str, chunks: list[RetrievedChunk], state: str, document: str):
    """Everything rebuilt into one system message per call, the changing parts first."""
    system = "\n\n".join(
        [
            SYSTEM,
            render_state(state),
            render_retrieved(chunks, list(range(len(chunks)))),
            render_tools_text(TOOLS),
            document,
        ]
    )
    return [{"role": "system", "content": system}, *history, {"role": "user", "content": question}]


def run(layout: str, args, document: str, retriever: BM25Retriever) -> dict:
    backend = open_backend("engine", model=args.model, kv_cache_memory=args.kv_cache_memory)
    engine = backend.engine
    params = SamplingParams(temperature=0.0, max_tokens=args.max_tokens)
    window = ContextWindow(backend)
    window.system, window.tools = SYSTEM, TOOLS
    window.add_document(document, "docs/serve.md")
    history: list[dict] = []
    prompt_tokens, hashes, start = 0, set(), time.perf_counter()
    for turn, question in enumerate(track(questions(args.turns), description=layout, transient=True)):
        chunks = [
            RetrievedChunk(retriever.chunks[i].text, retriever.chunks[i].label)
            for i, _ in retriever.search(question, 2)
        ]
        window.state.update({"turn": turn + 1, "topic": TOPICS[turn % len(TOPICS)]})
        if layout == "context_window":
            window.set_retrieved(chunks)
            rendered = window.render(question)
            messages, tools = rendered.messages, rendered.tools
            hashes.add(rendered.prefix_hash)
        else:
            messages, tools = naive_messages(history, question, chunks, window.state.render(), document), None
        result = backend.chat([messages], params, tools=tools)[0]
        prompt_tokens += result.prompt_tokens
        reply = result.choices[0].message.content or result.choices[0].text
        window.add_message("user", question)
        window.add_message("assistant", reply)
        history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    stats = engine.stats()
    return {
        "layout": layout,
        "hit_rate": stats.prefix_cache_hit_rate,
        "hit_blocks": stats.prefix_cache_hit_blocks,
        "queried_blocks": stats.prefix_cache_queried_blocks,
        "prompt_tokens": prompt_tokens,
        "seconds": time.perf_counter() - start,
        "distinct_prefix_hashes": len(hashes) if hashes else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--kv-cache-memory", default="1GiB")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    document = (DOCS / "serve.md").read_text().split("### Blocks and hashes")[0]
    chunks = [
        c
        for f in sorted(DOCS.glob("*.md"))
        for c in chunk_markdown(f.read_text(), f.name, lambda t: len(t.split()), 120, 20)
    ]
    retriever = BM25Retriever(chunks)
    results = [run(layout, args, document, retriever) for layout in ("context_window", "naive")]
    table = Table(
        "layout", "prefix-cache hit rate", "hit / queried blocks", "prompt tokens", "seconds", "distinct prefix hashes"
    )
    for r in results:
        table.add_row(
            r["layout"], f"{r['hit_rate']:.1%}", f"{r['hit_blocks']} / {r['queried_blocks']}", str(r["prompt_tokens"]),
            f"{r['seconds']:.0f}", str(r["distinct_prefix_hashes"] or "-"),
        )  # fmt: skip
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
