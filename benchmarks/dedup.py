"""Near-duplicate precision and recall: llmkit (exact verification, estimate only) next to datasketch's MinHashLSH.

    python benchmarks/dedup.py [--originals 18000] [--pairs 2000] [--threshold 0.8] [--num-perm 128] [--seed 0]

The planted corpus: `originals` random documents of 60-100 words over a 50,000-word made-up vocabulary
(so unrelated documents share no 3-gram) and `pairs` edited copies of distinct originals, each placed
after its original. A copy is made by random word substitutions, insertions and deletions until the exact
word-3-gram Jaccard with its original falls to a target drawn uniformly from [0.5, 1.0). The truth: a
copy is a duplicate when that exact Jaccard is at least `threshold`; nothing else is. Every method sees
the documents in order and keeps the first of each cluster; a method's "found" set is the documents it
drops (datasketch: the documents whose `query` returns a kept document, which are then not inserted).
All use word 3-grams of the same normalized text and `num_perm` permutations. Seconds (wall and this
process's CPU time: on a shared machine the second is the steadier) include MinHash; peak memory is
tracemalloc's peak (Python and numpy allocations) in a second, untimed run.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import tracemalloc
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from llmkit.train.pipeline.dedup import DedupConfig, deduplicate_records
from llmkit.train.pipeline.dedup.lsh import optimal_bands, recall_bands
from llmkit.train.pipeline.text import normalize_text

SYLLABLES = ["ka", "lo", "mi", "ter", "sun", "va", "ro", "pel", "di", "an", "qu", "zor", "ne", "bri", "ot", "fa"]
SYLLABLES += ["gu", "hel", "is", "jo", "ump", "wex", "yl", "cra", "st", "em"]
BINS = [(0.5, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.0)]


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    tokens = normalize_text(text).split()
    return {tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


def jaccard(first: set, second: set) -> float:
    return len(first & second) / len(first | second) if first or second else 1.0


def edit_to(source: str, target: float, vocab: list[str], rng: random.Random) -> tuple[str, float]:
    """Random word edits of `source` until its shingle Jaccard with it is at most `target` (and below 1)."""
    words, original = source.split(), shingles(source)
    similarity = 1.0
    while similarity > target or similarity == 1.0:
        position = rng.randrange(len(words))
        action = rng.randrange(3)
        if action == 0:
            words[position] = rng.choice(vocab)
        elif action == 1:
            words.insert(position, rng.choice(vocab))
        elif len(words) > 20:
            del words[position]
        similarity = jaccard(shingles(" ".join(words)), original)
    return " ".join(words), similarity


def planted_corpus(originals: int, pairs: int, seed: int) -> tuple[list[str], dict[int, float]]:
    """(texts, copy index -> exact Jaccard with its original); copies come after their originals."""
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(80_000)})[:50_000]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(60, 100))) for _ in range(originals)]
    copies = []
    for source in rng.sample(range(originals), pairs):
        text, similarity = edit_to(texts[source], rng.uniform(0.5, 1.0), vocab, rng)
        copies.append((source, text, similarity))
    # Originals at keys 0, 1, ...; each copy at a random key after its original's.
    keyed = [(float(i), t, None) for i, t in enumerate(texts)]
    keyed += [(rng.uniform(source + 1e-9, originals), text, s) for source, text, s in copies]
    keyed.sort(key=lambda item: item[0])
    return [t for _, t, _ in keyed], {i: s for i, (_, _, s) in enumerate(keyed) if s is not None}


def run_llmkit(texts: list[str], config: DedupConfig) -> set[int]:
    _, dropped = deduplicate_records([{"text": t} for t in texts], config, batch_size=2048)
    return {d.index for d in dropped}


def run_datasketch(texts: list[str], threshold: float, num_perm: int, seed: int) -> set[int]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    found = set()
    for index, text in enumerate(texts):
        signature = MinHash(num_perm=num_perm, seed=seed)
        signature.update_batch([" ".join(gram).encode("utf-8") for gram in shingles(text)])
        if lsh.query(signature):
            found.add(index)
        else:
            lsh.insert(str(index), signature)
    return found


def measure(run: Callable[[], set[int]]) -> tuple[set[int], float, float, float]:
    """(found, wall seconds, CPU seconds of this process, peak MiB by tracemalloc in a second run)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    found = run()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    tracemalloc.start()
    try:
        run()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return found, seconds, cpu_seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=18_000)
    parser.add_argument("--pairs", type=int, default=2_000)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    texts, copies = planted_corpus(args.originals, args.pairs, args.seed)
    truth = {i for i, s in copies.items() if s >= args.threshold}
    console.print(
        f"corpus: {len(texts):,} documents, {len(copies):,} planted copies, {len(truth):,} at Jaccard >= "
        f"{args.threshold} ({time.perf_counter() - started:.0f} s to build)"
    )
    bands, rows = optimal_bands(args.threshold, args.num_perm)
    exact_bands, exact_rows = recall_bands(args.threshold, args.num_perm)
    common = dict(exact=False, near_threshold=args.threshold, num_perm=args.num_perm, seed=1)
    runs = {
        f"llmkit, exact verification ({exact_bands}x{exact_rows} bands)": lambda: run_llmkit(
            texts, DedupConfig(**common, near_verification="exact")
        ),
        f"llmkit, estimate only ({bands}x{rows} bands)": lambda: run_llmkit(
            texts, DedupConfig(**common, near_verification="estimate")
        ),
        "datasketch MinHashLSH": lambda: run_datasketch(texts, args.threshold, args.num_perm, seed=1),
    }
    table = Table("", "found", "precision", "recall", "F1", "seconds", "CPU seconds", "peak MiB")
    by_bin = Table("true Jaccard", "planted", *runs)
    results = {}
    for name, run in runs.items():
        found, seconds, cpu_seconds, peak = measure(run)
        true = len(found & truth)
        precision, recall = true / max(len(found), 1), true / max(len(truth), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        table.add_row(
            name,
            f"{len(found):,}",
            f"{precision:.3f}",
            f"{recall:.3f}",
            f"{f1:.3f}",
            f"{seconds:.1f}",
            f"{cpu_seconds:.1f}",
            f"{peak:.0f}",
        )
        results[name] = {
            "found": len(found),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "peak_mib": peak,
            "false_positives_not_copies": len(found - set(copies)),
        }
        results[name]["found_by_bin"] = [
            sum(1 for i in found if i in copies and low <= copies[i] < high) for low, high in BINS
        ]
    for b, (low, high) in enumerate(BINS):
        planted = sum(1 for s in copies.values() if low <= s < high)
        by_bin.add_row(f"[{low}, {high})", f"{planted:,}", *(f"{r['found_by_bin'][b]:,}" for r in results.values()))
    console.print(table)
    console.print("documents dropped, by the copy's true Jaccard with its original:")
    console.print(by_bin)
    console.print(json.dumps({"args": vars(args), "truth": len(truth), "results": results}))


if __name__ == "__main__":
    main()
