"""Dedup throughput and peak memory on synthetic short documents, next to a naive pairwise baseline.

    python benchmarks/data.py [--records 1000000] [--workers 2] [--baseline 2000] [--semantic 2000]

The corpus: random 25-40-word documents over a 50,000-word made-up vocabulary, with 1% planted
exact duplicates (case, punctuation, spacing changed) and 1% planted near duplicates (one word
substituted, inserted or deleted; exact 3-gram shingle Jaccard >= 0.8 with the original). llmkit
streams it through exact + near (MinHash LSH) dedup on a process pool; precision and recall are
measured against the planted truth. The baseline compares every pair of a subset by exact shingle
Jaccard (O(n^2)); both run on that subset and their verdicts are compared. `--semantic N` adds
semantic dedup (MiniLM) on the first N documents.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmkit.train.pipeline.dedup import DedupConfig, deduplicate_file, deduplicate_records
from llmkit.train.pipeline.execution import make_executor
from llmkit.train.pipeline.text import normalize_text

SYLLABLES = ["ka", "lo", "mi", "ter", "sun", "va", "ro", "pel", "di", "an", "qu", "zor", "ne", "bri", "ot", "fa"]
SYLLABLES += ["gu", "hel", "is", "jo", "ump", "wex", "yl", "cra", "st", "em"]


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    tokens = normalize_text(text).split()
    return {tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


def jaccard(first: set, second: set) -> float:
    return len(first & second) / len(first | second) if first or second else 1.0


def write_corpus(path: Path, records: int, seed: int = 0) -> dict[str, set[int]]:
    """Stream `records` documents to `path`; return the planted duplicates' indices by kind."""
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(80_000)})[:50_000]
    recent: list[str] = []  # planted copies come from the last 10,000 originals
    planted: dict[str, set[int]] = {"exact": set(), "near": set()}
    with path.open("w") as handle:
        for index in range(records):
            roll = rng.random()
            text = None
            if roll < 0.01 and recent:
                words = rng.choice(recent).split()
                words[0] = words[0].upper()
                text, kind = "  ".join(words) + rng.choice(["!", ".", " ?"]), "exact"
            elif roll < 0.02 and recent:
                source = rng.choice(recent)
                words = source.split()
                position = rng.randrange(3, len(words) - 3)
                action = rng.randrange(3)
                if action == 0:
                    words[position] = rng.choice(vocab)
                elif action == 1:
                    words.insert(position, rng.choice(vocab))
                else:
                    del words[position]
                candidate = " ".join(words)
                if 0.8 <= jaccard(shingles(candidate), shingles(source)) < 1.0:
                    text, kind = candidate, "near"
            if text is None:
                text, kind = " ".join(rng.choices(vocab, k=rng.randint(25, 40))), "original"
                recent.append(text)
                if len(recent) > 10_000:
                    recent.pop(rng.randrange(len(recent)))
            else:
                planted[kind].add(index)
            handle.write(json.dumps({"text": text}) + "\n")
    return planted


def precision_recall(found: set[int], expected: set[int]) -> tuple[float, float]:
    true = len(found & expected)
    return true / max(len(found), 1), true / max(len(expected), 1)


def naive_pairwise(texts: list[str], threshold: float) -> tuple[set[int], float]:
    """Greedy dedup comparing each document with every kept one by exact Jaccard: (dropped, seconds)."""
    started = time.perf_counter()
    kept: list[tuple[str, set]] = []
    dropped = set()
    for index, text in enumerate(texts):
        normalized, grams = normalize_text(text), shingles(text)
        if any(normalized == other or jaccard(grams, other_grams) >= threshold for other, other_grams in kept):
            dropped.add(index)
        else:
            kept.append((normalized, grams))
    return dropped, time.perf_counter() - started


def duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"


def peak_rss_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def worker_peak_rss_mib(executor) -> float:
    """The largest peak RSS (VmHWM) among the process pool's live workers; read before the pool closes.

    RUSAGE_CHILDREN would also count every forked child of the driver (the `git describe` the manifest
    runs), whose peak includes the driver's own pages at fork time.
    """
    pool = getattr(executor, "_pool", None)
    peaks = [0.0]
    for pid in getattr(pool, "_processes", None) or {}:
        with open(f"/proc/{pid}/status") as status:
            peaks += [int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")]
    return max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--baseline", type=int, default=2000, help="documents in the pairwise baseline subset")
    parser.add_argument("--semantic", type=int, default=0, help="also time semantic (MiniLM) dedup on this many")
    args = parser.parse_args()
    console = Console()
    config = DedupConfig()
    with tempfile.TemporaryDirectory(prefix="llmkit-data-bench-") as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        started = time.perf_counter()
        planted = write_corpus(corpus, args.records)
        console.print(
            f"corpus: {args.records:,} documents, {corpus.stat().st_size / 2**20:,.0f} MiB, "
            f"{len(planted['exact']):,} exact + {len(planted['near']):,} near planted "
            f"({time.perf_counter() - started:.0f} s to write)"
        )
        rss_before = peak_rss_mib(resource.RUSAGE_SELF)
        with make_executor(args.workers) as executor:
            summary = deduplicate_file(
                corpus,
                Path(tmp) / "kept.jsonl",
                Path(tmp) / "report.jsonl",
                config,
                executor,
                batch_size=args.batch_size,
                quiet=True,
            )
            worker_peak = worker_peak_rss_mib(executor)
        main_peak = peak_rss_mib(resource.RUSAGE_SELF)
        dropped = [json.loads(line) for line in (Path(tmp) / "report.jsonl").read_text().splitlines()]
        found = {stage: {d["index"] for d in dropped if d["stage"] == stage} for stage in ("exact", "near")}
        with corpus.open() as handle:
            subset = [json.loads(next(handle))["text"] for _ in range(min(args.baseline, args.records))]
        baseline_dropped, baseline_seconds = naive_pairwise(subset, config.near_threshold)
        started = time.perf_counter()
        _, ours_subset = deduplicate_records([{"text": t} for t in subset], config)
        ours_subset_seconds = time.perf_counter() - started
        semantic = None
        if args.semantic:
            from llmkit.core.embeddings.minilm import MiniLMEmbedder

            embedder = MiniLMEmbedder()
            with corpus.open() as handle:
                texts = [json.loads(next(handle))["text"] for _ in range(min(args.semantic, args.records))]
            started = time.perf_counter()
            deduplicate_records([{"text": t} for t in texts], DedupConfig(semantic=True), embedder)
            semantic = (len(texts), time.perf_counter() - started)

    table = Table("", "records", "seconds", "records/s", "peak RSS")
    table.add_row(
        f"llmkit exact + near, {args.workers} workers",
        f"{summary.records:,}",
        f"{summary.seconds:.1f}",
        f"{summary.records / summary.seconds:,.0f}",
        f"main {main_peak:,.0f} MiB (before dedup {rss_before:,.0f}), each worker <= {worker_peak:,.0f} MiB",
    )
    table.add_row(
        "llmkit exact + near, inline, subset",
        f"{len(subset):,}",
        f"{ours_subset_seconds:.2f}",
        f"{len(subset) / ours_subset_seconds:,.0f}",
        "",
    )
    table.add_row(
        "naive pairwise Jaccard, subset",
        f"{len(subset):,}",
        f"{baseline_seconds:.2f}",
        f"{len(subset) / baseline_seconds:,.0f}",
        f"at {args.records:,}: ~{duration(baseline_seconds * (args.records / len(subset)) ** 2)} (n^2)",
    )
    if semantic:
        table.add_row(
            "llmkit + semantic (MiniLM), inline",
            f"{semantic[0]:,}",
            f"{semantic[1]:.1f}",
            f"{semantic[0] / semantic[1]:,.0f}",
            "",
        )
    console.print(table)
    quality = Table("planted", "count", "found", "precision", "recall")
    for stage in ("exact", "near"):
        precision, recall = precision_recall(found[stage], planted[stage])
        quality.add_row(
            stage, f"{len(planted[stage]):,}", f"{len(found[stage]):,}", f"{precision:.4f}", f"{recall:.4f}"
        )
    console.print(quality)
    ours = {d.index for d in ours_subset}
    console.print(
        f"subset of {len(subset):,}: baseline drops {len(baseline_dropped)}, llmkit drops {len(ours)}, "
        f"both {len(ours & baseline_dropped)}"
    )
    console.print(json.dumps(summary.as_dict()))


if __name__ == "__main__":
    main()
