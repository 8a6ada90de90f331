"""A built corpus with planted duplicates whose ground truth is known exactly.

Base documents are random sequences of made-up words (so unrelated documents share almost no
shingles). Planted: exact duplicates (case, punctuation and spacing changed), near duplicates (a few
word edits, exact shingle Jaccard >= 0.8 with their original) and hard negatives (heavy edits,
Jaccard <= 0.5: they must be kept).
"""

from __future__ import annotations

import dataclasses
import random

from llmkit.train.pipeline.dedup.minhash import exact_jaccard
from llmkit.train.pipeline.text import words

SYLLABLES = ["ka", "lo", "mi", "ter", "sun", "va", "ro", "pel", "di", "an", "qu", "zor", "ne", "bri", "ot", "fa"]


def vocabulary(size: int, rng: random.Random) -> list[str]:
    out = set()
    while len(out) < size:
        out.add("".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))))
    return sorted(out)


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1))}


def exact_variant(text: str, rng: random.Random) -> str:
    tokens = text.split()
    tokens[0] = tokens[0].upper()
    return "  ".join(tokens) + rng.choice(["!", ".", " ?", " ..."])


def edited(text: str, edits: int, vocab: list[str], rng: random.Random) -> str:
    tokens = text.split()
    for _ in range(edits):
        position = rng.randrange(len(tokens))
        action = rng.choice(["substitute", "insert", "delete"])
        if action == "substitute":
            tokens[position] = rng.choice(vocab)
        elif action == "insert":
            tokens.insert(position, rng.choice(vocab))
        elif len(tokens) > 5:
            del tokens[position]
    return " ".join(tokens)


@dataclasses.dataclass
class PlantedCorpus:
    texts: list[str]
    duplicate_of: dict[int, int]  # planted duplicate index -> original index
    kind: dict[int, str]  # planted index -> "exact" | "near" | "negative"

    def planted(self, kind: str) -> set[int]:
        return {i for i, k in self.kind.items() if k == kind}


def build_corpus(
    originals: int = 600, exact: int = 60, near: int = 80, negatives: int = 40, seed: int = 0
) -> PlantedCorpus:
    rng = random.Random(seed)
    vocab = vocabulary(3000, rng)
    texts = [" ".join(rng.choices(vocab, k=rng.randint(40, 80))) for _ in range(originals)]
    duplicate_of, kind = {}, {}

    def plant(text: str, original: int, label: str) -> None:
        duplicate_of[len(texts)] = original
        kind[len(texts)] = label
        texts.append(text)

    for _ in range(exact):
        source = rng.randrange(originals)
        plant(exact_variant(texts[source], rng), source, "exact")
    while len(kind) < exact + near:
        source = rng.randrange(originals)
        variant = edited(texts[source], rng.randint(1, 2), vocab, rng)
        similarity = exact_jaccard(shingles(variant), shingles(texts[source]))
        if 0.8 <= similarity < 1.0 and words(variant) != words(texts[source]):
            plant(variant, source, "near")
    while len(kind) < exact + near + negatives:
        source = rng.randrange(originals)
        variant = edited(texts[source], rng.randint(15, 25), vocab, rng)
        if exact_jaccard(shingles(variant), shingles(texts[source])) <= 0.5:
            plant(variant, source, "negative")
    # Shuffle the planted copies among the originals, keeping every copy after its original.
    order = list(range(originals))
    for index in range(originals, len(texts)):
        order.insert(rng.randint(order.index(duplicate_of[index]) + 1, len(order)), index)
    position = {old: new for new, old in enumerate(order)}
    return PlantedCorpus(
        [texts[i] for i in order],
        {position[i]: position[o] for i, o in duplicate_of.items()},
        {position[i]: k for i, k in kind.items()},
    )


def precision_recall(found: set[int], expected: set[int]) -> tuple[float, float]:
    true = len(found & expected)
    return (true / len(found) if found else 1.0, true / len(expected) if expected else 1.0)
